"""The lifecycle brought up to date one arrival at a time equals the lifecycle rebuilt from everything
(issue 28): row for row in every lifecycle table, and byte for byte in every week's kpis.json. The
landing zones arrive in random orders and batches, nightly with late files, and the SLA table or a
reader's version changing rebuilds every lineage."""

from __future__ import annotations

import importlib.util
import random
import shutil
from datetime import date
from pathlib import Path

import pytest

from ifc_scan.demo.generator import generate
from ifc_scan.ingest.runner import ingest
from ifc_scan.lifecycle.store import derive_lifecycle
from ifc_scan.policy import load_policy
from ifc_scan.warehouse.db import connect
from ifc_scan_tests.arrivals import (arrival_units, assert_same_as_full_rebuild, lifecycle_rows, nightly_batches,
                                     random_batches, replay)

pytestmark = pytest.mark.slow   # the slow layer (make e2e): minutes of subprocesses or generated batteries

BENCH_GEN = Path(__file__).resolve().parent.parent / "bench" / "gen_org.py"


def _gen_org():
    spec = importlib.util.spec_from_file_location("gen_org", BENCH_GEN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_zone(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "landing"
    generate(out, weeks=10)
    return out


@pytest.fixture(scope="module")
def org_zone(tmp_path_factory):
    """A generated organisation (bench/gen_org.py): 6 images, 40 nightly registry scans each, a weekly CI run
    per image with a build, a scan artifact, a push and a production deploy, a monthly global .trivyignore."""
    out = tmp_path_factory.mktemp("org") / "landing"
    _gen_org().generate(out, images=6, days=40, findings=15, seed=3)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_demo_in_random_batches_equals_full_rebuild(demo_zone, tmp_path, seed):
    policy = load_policy()
    batches = random_batches(arrival_units(demo_zone), random.Random(seed), 5)
    wh, counts = replay(demo_zone, tmp_path, batches, policy)
    assert counts[-1].findings > 0
    assert_same_as_full_rebuild(wh, policy)


def test_demo_nightly_with_late_files_equals_full_rebuild(demo_zone, tmp_path):
    policy = load_policy()
    batches = nightly_batches(demo_zone, arrival_units(demo_zone), random.Random(5), late_share=0.08)
    wh, counts = replay(demo_zone, tmp_path, batches, policy)
    assert sum(c.lineages_extended for c in counts) > len(batches) // 2     # the incremental path was taken
    assert any(c.lineages_rebuilt for c in counts[1:])                      # and late files rebuilt lineages
    assert_same_as_full_rebuild(wh, policy)


@pytest.mark.parametrize("seed", [11, 12])
def test_org_zone_in_random_orders_equals_full_rebuild(org_zone, tmp_path, seed):
    policy = load_policy()
    rng = random.Random(seed)
    units = arrival_units(org_zone)
    batches = random_batches(units, rng, 6) if seed % 2 else nightly_batches(org_zone, units, rng, late_share=0.1)
    wh, _ = replay(org_zone, tmp_path, batches, policy)
    assert_same_as_full_rebuild(wh, policy)


def test_a_night_extends_every_lineage_and_a_late_scan_rebuilds_only_its_own(org_zone, tmp_path):
    """Nightly deliveries in order: after the first night no lineage is walked from its start again. A nightly
    scan of svc-0002 from Thursday 2026-11-12 (of its image in production since Monday's deploy), delivered
    two weeks late, rebuilds that lineage alone, and changes its lifecycle only from that week on (the week's
    `present` event, which begins at Monday's deploy, gains a presence)."""
    policy = load_policy()
    units = arrival_units(org_zone)
    late = next(u for u in units if u.parts[0] == "trivy" and u.name == "svc-0002.json" and "2026-11-12" in str(u))
    batches = nightly_batches(org_zone, [u for u in units if u != late], random.Random(0), late_share=0.0)
    wh, counts = replay(org_zone, tmp_path, batches + [[late]], policy)
    nightly, last = counts[1:-1], counts[-1]
    assert all(c.lineages_rebuilt == 0 for c in nightly), [c.lineages_rebuilt for c in nightly]
    extended = [c.lineages_extended for c in nightly]   # every lineage, but svc-0002 on the night its scan is late
    assert extended.count(5) == 1 and extended.count(6) == len(nightly) - 1, extended
    assert (last.lineages_rebuilt, last.lineages_extended) == (1, 0)
    assert last.earliest_change is not None and date(2026, 11, 9) <= last.earliest_change.date() <= date(2026, 11, 12)
    assert_same_as_full_rebuild(wh, policy)


def test_nothing_new_leaves_every_lineage_alone(org_zone, tmp_path):
    policy = load_policy()
    wh, counts = replay(org_zone, tmp_path, [arrival_units(org_zone)], policy)
    with connect(wh) as con:
        before = lifecycle_rows(con)
        again = derive_lifecycle(con, policy)
        assert (again.lineages_rebuilt, again.lineages_extended, again.earliest_change) == (0, 0, None)
        assert lifecycle_rows(con) == before


def test_sla_table_change_rebuilds_every_lineage(org_zone, tmp_path):
    """Due times depend on the SLA table: a lineage extended under the old table would keep old due times."""
    policy = load_policy()
    units = arrival_units(org_zone)
    half = len(units) // 2
    wh, _ = replay(org_zone, tmp_path, [sorted(units)[:half]], policy)
    stricter = {**policy, "sla_hours": {k: (v // 2 if v else v) for k, v in policy["sla_hours"].items()}}
    shutil.copytree(org_zone, tmp_path / "landing", dirs_exist_ok=True)
    ingest(tmp_path / "landing", wh, progress=lambda m: None)
    with connect(wh) as con:
        counts = derive_lifecycle(con, stricter)
    assert counts.lineages_rebuilt == 6
    assert_same_as_full_rebuild(wh, stricter, mondays=[])


def test_reader_version_change_rebuilds_every_lineage(org_zone, tmp_path):
    policy = load_policy()
    wh, _ = replay(org_zone, tmp_path, [arrival_units(org_zone)], policy)
    with connect(wh) as con:
        con.execute("INSERT OR REPLACE INTO derived_meta VALUES ('ci_reader_version', 'a later reader')")
        counts = derive_lifecycle(con, policy)
    assert counts.lineages_rebuilt == 6


def test_a_week_read_alone_equals_the_same_week_in_a_backfill(demo_zone, tmp_path):
    """A week read alone starts from the stored state at its start (lifecycle/state.py _STATE_AT), not from
    every event before it: weeks read latest first (each one alone) equal the weeks of an ascending backfill,
    and each equals design/KPIS.md's as-of-T recomputation."""
    from ifc_scan.kpis.stage import WeeklyStage, data_weeks, oracle_week
    from ifc_scan.lifecycle.observations import load
    policy = load_policy()
    wh, _ = replay(demo_zone, tmp_path, [arrival_units(demo_zone)], policy)
    with connect(wh) as con:
        mondays = data_weeks(con, policy)
        backfill = WeeklyStage(con, policy)
        ascending = {m: backfill.compute(m).kpis_json for m in mondays}
        alone = WeeklyStage(con, policy)
        descending = {m: alone.compute(m).kpis_json for m in reversed(mondays)}
        full = load(con)
        for m in mondays[-3:]:
            assert descending[m] == oracle_week(con, policy, m, full).kpis_json
    assert len(mondays) >= 8
    assert descending == ascending
