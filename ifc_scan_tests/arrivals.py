"""A landing zone delivered in pieces: its files arrive in some order, in batches, and after each batch the
warehouse is ingested and the lifecycle brought up to date incrementally. The end state must be the one a
full rebuild gives (ifc_scan/lifecycle/incremental.py)."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

from ifc_scan.ingest.runner import ingest
from ifc_scan.kpis.stage import WeeklyStage, data_weeks
from ifc_scan.lifecycle.store import derive_lifecycle
from ifc_scan.warehouse.db import connect

LIFECYCLE_TABLES = ("findings", "finding_events", "timeline_moments", "current_images", "lifecycle_corrections",
                    "lifecycle_finding_state", "lifecycle_lineage_state")


def arrival_units(landing: Path) -> list[Path]:
    """What arrives as one piece: a scan report; a CI run's folder; a dated snapshot folder (exceptions,
    approvals, tickets); an inventory file."""
    units = set()
    for p in Path(landing).rglob("*"):
        if p.is_file():
            parts = p.relative_to(landing).parts
            units.add(Path(*parts) if parts[0] == "trivy" else Path(*parts[:3]))
    return sorted(units)


def unit_day(landing: Path, unit: Path) -> str:
    """The day a unit belongs to (its dated folder, or its CI run's creation), '' when undated."""
    m = re.search(r"\d{4}-\d{2}-\d{2}", str(unit))
    if m:
        return m.group(0)
    run = Path(landing) / unit / "run.json"
    return json.loads(run.read_text())["created_at"][:10] if run.exists() else ""


def random_batches(units: list[Path], rng: random.Random, batches: int) -> list[list[Path]]:
    order = list(units)
    rng.shuffle(order)
    cuts = sorted(rng.sample(range(1, len(order)), min(batches, len(order)) - 1))
    return [order[a:b] for a, b in zip([0, *cuts], [*cuts, len(order)])]


def nightly_batches(landing: Path, units: list[Path], rng: random.Random, late_share: float) -> list[list[Path]]:
    """One batch per day in day order (undated units with the first day's); a share of the units held back
    and delivered one to five days late."""
    by_day: dict[str, list[Path]] = {}
    for u in units:
        by_day.setdefault(unit_day(landing, u), []).append(u)
    days = sorted(by_day)
    if "" in by_day and len(days) > 1:
        by_day[days[1]] = by_day.pop("") + by_day[days[1]]
        days = days[1:]
    batches = [[] for _ in days]
    for i, day in enumerate(days):
        for u in by_day[day]:
            late = i > 0 and rng.random() < late_share
            batches[min(len(days) - 1, i + rng.randint(1, 5)) if late else i].append(u)
    return [b for b in batches if b]


def deliver(src: Path, landing: Path, units: list[Path]) -> None:
    for u in units:
        s, d = Path(src) / u, Path(landing) / u
        if s.is_dir():
            shutil.copytree(s, d, dirs_exist_ok=True)     # copytree keeps mtimes (copy2)
        else:
            d.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(s, d)


def replay(src: Path, work: Path, batches: list[list[Path]], policy: dict) -> tuple[Path, list]:
    """Deliver each batch, ingest it and bring the lifecycle up to date; returns the warehouse and the
    LifecycleCounts of every build."""
    landing, wh = Path(work) / "landing", Path(work) / "w.duckdb"
    landing.mkdir(parents=True)
    counts = []
    for batch in batches:
        deliver(src, landing, batch)
        ingest(landing, wh, progress=lambda m: None)
        with connect(wh) as con:
            counts.append(derive_lifecycle(con, policy))
    return wh, counts


def lifecycle_rows(con) -> dict[str, list]:
    return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in LIFECYCLE_TABLES}


def week_documents(con, policy: dict, mondays=None) -> dict[str, str]:
    stage = WeeklyStage(con, policy)
    return {str(monday): stage.compute(monday).kpis_json
            for monday in (data_weeks(con, policy) if mondays is None else mondays)}


def assert_same_as_full_rebuild(wh: Path, policy: dict, mondays=None) -> None:
    """Every lifecycle table row for row, and the kpis.json of every week (or of `mondays`) byte for byte,
    against a full rebuild of the same warehouse."""
    with connect(wh) as con:
        incremental = lifecycle_rows(con)
        docs = week_documents(con, policy, mondays)
        derive_lifecycle(con, policy, full=True)
        full = lifecycle_rows(con)
        full_docs = week_documents(con, policy, mondays)
    for table in LIFECYCLE_TABLES:
        only_inc = sorted(set(incremental[table]) - set(full[table]))[:3]
        only_full = sorted(set(full[table]) - set(incremental[table]))[:3]
        assert incremental[table] == full[table], f"{table}: incremental-only {only_inc}, full-only {only_full}"
    assert docs.keys() == full_docs.keys()
    for week in docs:
        assert docs[week] == full_docs[week], f"week {week}: kpis.json differs from the full rebuild's"


def replay_in_random_batches(src: Path, work: Path, policy: dict, mondays=None, batches: int = 3) -> None:
    """The landing zone in src delivered in random batches (the order seeded by its file list, so a failure
    repeats), the lifecycle brought up to date after each: the same as a full rebuild."""
    units = arrival_units(src)
    if len(units) < 2:
        return
    rng = random.Random(",".join(map(str, units)))
    wh, _ = replay(src, work, random_batches(units, rng, batches), policy)
    assert_same_as_full_rebuild(wh, policy, mondays)
