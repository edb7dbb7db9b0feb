import json
import os
from pathlib import Path
from datetime import date, datetime, timezone

import dagster as dg
import pytest

from ifc_scan.definitions import defs
from ifc_scan.defs.collect import github_evidence
from ifc_scan.defs.ingest import landing_zone_sensor, warehouse_ingest
from ifc_scan.defs.lifecycle import finding_lifecycle
from ifc_scan.defs.resources import IfcScanSettings, resources_for
from ifc_scan.defs.weekly import CHECKS, weekly_job, weekly_kpis, weekly_report, weekly_targets
from ifc_scan.demo.generator import generate
from ifc_scan.report.markdown import md_escape

# The graph as users see it in the UI; a change here is a change of the product, made on purpose.
SNAPSHOT = {
    "assets": {"github_evidence": [], "exception_history": [], "ticket_evidence": [], "intel_evidence": [],
               "warehouse_ingest": ["exception_history", "github_evidence", "intel_evidence", "ticket_evidence"],
               "finding_lifecycle": ["warehouse_ingest"], "weekly_kpis": ["finding_lifecycle"],
               "iceberg_tables": ["finding_lifecycle"],
               "weekly_report": ["weekly_kpis"], "audit_period_pack": ["weekly_report"]},
    "partitioned": ["weekly_kpis", "weekly_report"],
    "checks": sorted(f"weekly_kpis:{c}" for c in CHECKS),
    "jobs": ["collect_intel_job", "collect_job", "deliver_job", "ingest_job", "period_job", "weekly_job"],
    "schedules": {"collect_github_schedule": "0 5 * * 1", "collect_intel_schedule": "30 4 * * *",
                  "weekly_job_schedule": "0 6 * * 1"},
    "sensors": ["delivery_sensor", "landing_zone_sensor"],
    "resources": ["settings", "warehouse"],
}


def test_definitions_snapshot():
    d = defs()
    specs = {s.key.to_user_string(): s for s in d.resolve_all_asset_specs()}
    assert {k: sorted(dep.asset_key.to_user_string() for dep in s.deps) for k, s in specs.items()} == SNAPSHOT["assets"]
    assert sorted(k for k, s in specs.items() if s.partitions_def is not None) == SNAPSHOT["partitioned"]
    checks = sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in d.resolve_asset_graph().asset_check_keys)
    assert checks == SNAPSHOT["checks"]
    assert sorted(j.name for j in d.jobs) == SNAPSHOT["jobs"]
    assert {s.name: s.cron_schedule for s in d.schedules} == SNAPSHOT["schedules"]
    assert [s.name for s in d.sensors] == SNAPSHOT["sensors"]
    assert sorted(d.resources) == SNAPSHOT["resources"]
    # the schedule asks for the week that just ended; the collector's is off and skips without a token
    sched = d.resolve_schedule_def("weekly_job_schedule")
    reqs = sched.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 9, 6, tzinfo=timezone.utc))).run_requests
    assert reqs[0].partition_key == "2026-03-02"
    collect_sched = d.resolve_schedule_def("collect_github_schedule")
    assert collect_sched.default_status == dg.DefaultScheduleStatus.STOPPED
    os.environ.pop("GITHUB_TOKEN", None)
    res = collect_sched.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 9, 5, tzinfo=timezone.utc)))
    assert res.run_requests == [] and "IFC_SCAN_GITHUB_REPO" in res.skip_message
    # the daily KEV/EPSS collection is off by default (it reaches the internet); once on, one run per day
    intel_sched = d.resolve_schedule_def("collect_intel_schedule")
    assert intel_sched.default_status == dg.DefaultScheduleStatus.STOPPED
    reqs = intel_sched.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 9, 4, 30, tzinfo=timezone.utc))).run_requests
    assert [r.run_key for r in reqs] == ["intel:2026-03-09"]
    # descriptions render as text: no angle-bracket placeholder that Markdown would swallow
    assert all("<" not in (s.description or "") for s in specs.values())


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """5 demo weeks ingested once; each test writes its own reports."""
    root = tmp_path_factory.mktemp("dagster")
    generate(root / "landing", weeks=5, seed=2, end=date(2026, 3, 9))
    settings = IfcScanSettings(landing=str(root / "landing"), warehouse=str(root / "w.duckdb"),
                               reports=str(root / "reports"))
    assert dg.materialize([github_evidence, warehouse_ingest, finding_lifecycle], resources=resources_for(settings)).success
    return root, settings


def _range_run(settings, start, end, policy_file=None, instance=None):
    if policy_file:
        settings = IfcScanSettings(**{**settings.__dict__, "policy": str(policy_file)})
    d = dg.Definitions(assets=[weekly_kpis, weekly_report], asset_checks=[weekly_targets], jobs=[weekly_job],
                       resources=resources_for(settings))
    return d.resolve_job_def("weekly_job").execute_in_process(
        instance=instance, tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end})


def _per_partition(result, asset):
    return {e.materialization.partition: {k: getattr(v, "value", v) for k, v in e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events() if e.materialization.asset_key.to_user_string() == asset}


def test_range_run_gives_each_partition_its_own_figures_and_checks(demo):
    root, settings = demo
    r = _range_run(settings, "2026-02-09", "2026-03-02")
    assert r.success
    weeks = {"2026-02-09": "2026-W07", "2026-02-16": "2026-W08", "2026-02-23": "2026-W09", "2026-03-02": "2026-W10"}
    kp = {key: json.loads((root / "reports" / w / "kpis.json").read_text()) for key, w in weeks.items()}
    meta = _per_partition(r, "weekly_kpis")
    rep = _per_partition(r, "weekly_report")
    assert sorted(meta) == sorted(weeks) and sorted(rep) == sorted(weeks)
    for key, w in weeks.items():
        k = kp[key]
        assert meta[key]["iso_week"] == w
        assert meta[key]["critical_in_prod"] == k["critical_in_prod"]["count"]
        assert meta[key]["build_gate_pct"] == (k["coverage"]["build_gate"]["pct"] if k["coverage"]["build_gate"]["pct"]
                                                is not None else "n/a")
        assert meta[key]["failing_controls"] == [f"{c['framework']} {c['id']}" for c in k["controls"] if c["status"] == "fail"]
        assert rep[key]["report_path"] == str((root / "reports" / w / "report.html").resolve())
        assert rep[key]["report_url"].startswith("file:///") and rep[key]["report_url"].endswith(f"/{w}/report.html")
    # the partitions do not share the last week's values (weeks differ in the demo)
    assert len({json.dumps(meta[key]["build_gate_pct"]) + json.dumps(meta[key]["nightly_pct"]) for key in weeks}) > 1
    evals = r.get_asset_check_evaluations()
    assert len(evals) == len(weeks) * len(CHECKS)
    by = {(e.partition, e.check_name): e for e in evals}
    for key in weeks:
        k = kp[key]
        zc = by[(key, "zero_critical_in_production")]
        # a 0 read from a stale scan is not a pass (D23)
        assert zc.passed == (k["critical_in_prod"]["count"] == 0 and k["freshness"]["stale"] == 0)
        nc = by[(key, "nightly_coverage")]
        assert nc.passed == (k["coverage"]["nightly"]["pct"] == 100.0)     # no data is not a pass
        assert nc.metadata["offending_items"].value == k["coverage"]["nightly"]["gaps"]
        overdue = sum(k["sla"][s]["open_overdue"] or 0 for s in k["sla"])
        od = by[(key, "no_open_overdue")]
        assert od.passed == (overdue == 0) and od.metadata["offending_count"].value == overdue
        if overdue:   # each offending item names the CVE, lineage and due time
            assert {"finding", "lineage", "due_at"} <= set(od.metadata["offending_items"].value[0])
        ctl = by[(key, "every_control_passes")]
        assert ctl.passed == all(c["status"] != "fail" for c in k["controls"])


def test_each_checks_partitions_view_shows_every_week_passed_or_failed(demo):
    """The Partitions view of a check reads the check's state per partition: an evaluation counts only when
    it names the partition's materialization it judged. Without that every week showed "Missing"."""
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionResolvedStatus as Status
    from dagster._core.storage.asset_check_state import AssetCheckState, bulk_update_asset_check_state

    from ifc_scan.defs.resources import weekly_partitions
    root, settings = demo
    instance = dg.DagsterInstance.ephemeral()
    r = _range_run(settings, "2026-02-16", "2026-03-02", instance=instance)
    weeks = ["2026-02-16", "2026-02-23", "2026-03-02"]
    by = {(e.partition, e.check_name): e.passed for e in r.get_asset_check_evaluations()}
    keys = [(dg.AssetCheckKey(dg.AssetKey("weekly_kpis"), name), weekly_partitions) for name in CHECKS]
    states = bulk_update_asset_check_state(instance, keys, {k: AssetCheckState.empty() for k, _ in keys})
    for check_key, _ in keys:
        subsets = states[check_key].subsets
        passed = set(subsets[Status.SUCCEEDED].subset_value.get_partition_keys())
        failed = set(subsets[Status.FAILED].subset_value.get_partition_keys())
        assert passed | failed == set(weeks), check_key.name          # none Missing
        assert passed == {w for w in weeks if by[(w, check_key.name)]}, check_key.name
    assert any(not p for p in by.values())          # the demo has failing weeks
    # the run is green (checks do not block publishing) but its log names what failed
    logs = [e.user_message for e in instance.all_logs(r.run_id) if e.user_message]
    warning = next(m for m in logs if "check(s) did not pass" in m)
    assert f"{sum(1 for p in by.values() if not p)} check(s) did not pass" in warning


def test_a_week_without_builds_is_no_data_not_a_pass_and_a_failure_is_an_error(tmp_path):
    from ifc_scan.defs.weekly import judge_checks
    from ifc_scan.kpis.targets import Targets
    from ifc_scan.policy import load_policy
    from ifc_scan_tests.scenario import Scenario, vuln
    sc = Scenario(tmp_path)
    for day in (2, 3, 5, 6, 7, 8):          # registry scans only (no CI build), no scan on Wed 03-04
        sc.registry_scan("A", datetime(2026, 3, day, 2), [vuln("CVE-1", "zlib", "LOW")])
    k = sc.kpis(date(2026, 3, 2))
    assert k["coverage"]["build_gate"]["builds"] == 0
    checks = judge_checks(sc.result.view, sc.result.populations["findings"], Targets.from_policy(load_policy()))
    gate = checks["build_gate_coverage"]
    assert (gate["passed"], gate["status"], gate["severity"]) == (False, "no data", dg.AssetCheckSeverity.WARN)
    night = checks["nightly_coverage"]                          # 6 of 7 nights: a failure, shown as an error
    assert (night["passed"], night["status"], night["severity"]) == (False, "not met", dg.AssetCheckSeverity.ERROR)
    assert checks["mttr_critical"]["passed"] and checks["mttr_critical"]["status"] == "no data"   # no fix: nothing to judge
    assert checks["evidence_current"]["passed"]                # newest scan Sun 02:00, 22 h before T


def test_a_policy_target_edit_changes_the_check_and_the_control(demo, tmp_path):
    root, settings = demo
    r = _range_run(settings, "2026-03-02", "2026-03-02")
    k = json.loads((root / "reports" / "2026-W10" / "kpis.json").read_text())
    pct = k["coverage"]["nightly"]["pct"]
    assert pct is not None and pct < 100, "the demo week should have a nightly gap for this test"
    by = {e.check_name: e for e in r.get_asset_check_evaluations()}
    assert not by["nightly_coverage"].passed
    cis = next(c for c in k["controls"] if c["framework"] == "CIS Controls")
    assert "nightly coverage 100 %" in cis["failed"]
    # a team that sets its coverage target to the week's own figure: the check passes and the condition moves
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"targets:\n  coverage_pct: {pct}\n")
    r2 = _range_run(settings, "2026-03-02", "2026-03-02", policy_file=policy)
    by2 = {e.check_name: e for e in r2.get_asset_check_evaluations()}
    assert by2["nightly_coverage"].passed and by2["nightly_coverage"].metadata["target"].value == f">= {pct:g} %"
    k2 = json.loads((root / "reports" / "2026-W10" / "kpis.json").read_text())
    cis2 = next(c for c in k2["controls"] if c["framework"] == "CIS Controls")
    assert f"nightly coverage {pct:g} %" not in cis2["failed"]
    # ... and the report's card shows the new target, met
    html = (root / "reports" / "2026-W10" / "report.html").read_text()
    card = html[html.index("Nightly coverage %"):][:400]
    assert f"target &gt;= {pct:g} %" in card and "not met" not in card


def test_rerun_of_an_unchanged_week_leaves_the_report_untouched(demo):
    root, settings = demo
    assert _range_run(settings, "2026-02-23", "2026-02-23").success
    before = (root / "reports" / "2026-W09" / "manifest.json").read_bytes()
    r = _range_run(settings, "2026-02-23", "2026-02-23")
    assert _per_partition(r, "weekly_report")["2026-02-23"]["status"] == "unchanged"
    assert _per_partition(r, "weekly_kpis")["2026-02-23"]["kpis"] == "fresh"
    assert (root / "reports" / "2026-W09" / "manifest.json").read_bytes() == before


def test_unconfigured_collector_does_not_stop_ingest(tmp_path):
    generate(tmp_path / "landing", weeks=1, seed=3, end=date(2026, 3, 9))
    settings = IfcScanSettings(landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "w.duckdb"),
                               reports=str(tmp_path / "reports"))
    r = dg.materialize([github_evidence, warehouse_ingest], resources=resources_for(settings))
    assert r.success
    meta = {e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in r.get_asset_materialization_events()}
    assert meta["github_evidence"]["configured"].value is False
    assert meta["warehouse_ingest"]["ingested"].value > 0


def test_sensor_first_tick_starts_nothing_when_the_warehouse_holds_every_file(demo, monkeypatch, tmp_path):
    root, settings = demo
    monkeypatch.setenv("IFC_SCAN_LANDING", settings.landing)
    monkeypatch.setenv("IFC_SCAN_WAREHOUSE", settings.warehouse)
    ctx = dg.build_sensor_context(cursor=None)
    first = landing_zone_sensor(ctx)
    assert isinstance(first, dg.SkipReason) and "already holds" in first.skip_message
    assert len(ctx.cursor) == 64          # a digest, not a file list
    # the collector's hidden working folders are not evidence
    hidden = root / "landing" / "ci" / "github-actions" / ".tmp-collect-99"
    hidden.mkdir(parents=True)
    (hidden / "run.json").write_text("{}")
    assert isinstance(landing_zone_sensor(dg.build_sensor_context(cursor=ctx.cursor)), dg.SkipReason)
    # a new report is
    new = root / "landing" / "trivy" / "registry" / "new.json"
    new.write_text("{}")
    try:
        req = landing_zone_sensor(dg.build_sensor_context(cursor=ctx.cursor))
        assert isinstance(req, dg.RunRequest)
    finally:
        new.unlink()
        (hidden / "run.json").unlink()
        hidden.rmdir()


@pytest.mark.parametrize("hostile", [
    "evil](https://attacker.example/x) ![img](https://attacker.example/i.png)",
    "[click](https://attacker.example) <https://attacker.example/auto> https://attacker.example/bare",
    "<script>alert(1)</script><img src=https://attacker.example/i.png>",
    "`code` **bold** <a href='https://attacker.example'>x</a>",
    "line\n# heading\n![x](https://attacker.example/i.png)",
])
def test_markdown_metadata_cannot_carry_links_or_images(hostile):
    """Rendered by a CommonMark renderer with raw HTML allowed (the worst case for a metadata viewer):
    the escaped text yields no link, image, tag or code span, and the text is still shown."""
    from markdown_it import MarkdownIt
    html = MarkdownIt("commonmark", {"html": True, "linkify": False}).render(f"- {md_escape(hostile)}")
    for token in ("<a ", "<img", "<script", "<code", "<strong", "<h1"):
        assert token not in html, html
    assert "attacker.example" in html


def test_the_period_pack_asset_writes_the_configured_period(demo):
    """Launched as a user would from the UI's launchpad: the period as run config."""
    from ifc_scan.defs.period import audit_period_pack, period_job
    root, settings = demo
    assert _range_run(settings, "2026-02-02", "2026-02-23").success
    d = dg.Definitions(assets=[audit_period_pack], jobs=[period_job], resources=resources_for(settings))
    result = d.resolve_job_def("period_job").execute_in_process(run_config={"ops": {"audit_period_pack": {"config": {
        "period_from": "2026-02", "period_to": "2026-02", "sample": 3, "seed": 11, "verify": False}}}})
    assert result.success
    (m,) = [e.materialization for e in result.get_asset_materialization_events()]
    meta = {k: getattr(v, "value", v) for k, v in m.metadata.items()}
    # February 2026: Thursdays 5, 12, 19, 26 -> weeks W06-W09, all four published by the range run
    assert (meta["period"], meta["weeks_published"], meta["sample_seed"]) == ("2026-02-01 to 2026-02-28", 4, 11)
    assert (Path(meta["pack_path"]) / "period.html").is_file() and Path(meta["zip_path"]).is_file()


def test_backfill_of_older_weeks_targets_only_those_weeks_on_any_date():
    """A backfill of weekly_kpis + weekly_report over two November weeks, planned as Dagster's backfill daemon plans
    it, with the clock pinned half a year later (many weeks ended since, none computed). Only the two weeks asked
    for are targeted: with the earlier 12-week partition mapping, weekly_report of every later week whose trend
    window overlapped them was added (11 more here) and the run failed on weeks never computed."""
    from dagster._core.execution.asset_backfill import AssetBackfillData
    graph = defs().resolve_asset_graph()
    asked = ["2026-11-02", "2026-11-09"]
    for pinned in (datetime(2026, 12, 7, 12, tzinfo=timezone.utc), datetime(2027, 6, 1, tzinfo=timezone.utc)):
        plan = AssetBackfillData.from_asset_partitions(
            asset_graph=graph, partition_names=asked, asset_selection=[dg.AssetKey("weekly_kpis"), dg.AssetKey("weekly_report")],
            dynamic_partitions_store=dg.DagsterInstance.ephemeral(), backfill_start_timestamp=pinned.timestamp(),
            all_partitions=False)
        for key in ("weekly_kpis", "weekly_report"):
            assert sorted(plan.target_subset.get_partitions_subset(dg.AssetKey(key)).get_partition_keys()) == asked, key


def test_weekly_steps_log_their_progress_in_dagster(tmp_path):
    """The weeks computed and the reports written are counted, with the time left, in the run's log (a
    warehouse of its own: the module's shared one has its weeks computed by the tests before)."""
    generate(tmp_path / "landing", weeks=3, seed=2, end=date(2026, 3, 9))
    settings = IfcScanSettings(landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "w.duckdb"),
                               reports=str(tmp_path / "reports"))
    assert dg.materialize([github_evidence, warehouse_ingest, finding_lifecycle], resources=resources_for(settings)).success
    d = dg.Definitions(assets=[weekly_kpis, weekly_report], jobs=[weekly_job], resources=resources_for(settings))
    instance = dg.DagsterInstance.ephemeral()
    r = d.resolve_job_def("weekly_job").execute_in_process(
        instance=instance, tags={"dagster/asset_partition_range_start": "2026-02-16",
                                 "dagster/asset_partition_range_end": "2026-03-02"})
    assert r.success
    messages = [e.user_message for e in instance.all_logs(r.run_id) if e.user_message]
    # W08-W10 asked with their trend windows, cut at the partitions' first week (Monday 2025-12-01): the 14
    # weeks 2025-W49..W52 (4), 2026-W01..W10 (10), none stored yet, all computed; the last line names W10
    assert any(m.startswith("weekly figures computed: 14/14 (2026-W10)") for m in messages), messages
    assert any(m.startswith("weekly reports written: 3/3 (2026-W10 written)") for m in messages), messages


def test_a_week_without_evidence_fails_evidence_current_and_says_since_when(tmp_path):
    from ifc_scan.defs.weekly import judge_checks, week_metadata
    from ifc_scan.kpis.targets import Targets
    from ifc_scan.policy import load_policy
    from ifc_scan_tests.scenario import Scenario, vuln
    sc = Scenario(tmp_path)
    sc.registry_scan("A", datetime(2026, 2, 27, 2), [vuln("CVE-1", "zlib", "LOW")])    # W09; nothing in W10
    sc.kpis(date(2026, 3, 2))
    checks = judge_checks(sc.result.view, sc.result.populations["findings"], Targets.from_policy(load_policy()))
    ev = checks["evidence_current"]
    assert (ev["passed"], ev["status"], ev["severity"]) == (False, "not met", dg.AssetCheckSeverity.ERROR)
    assert ev["value"] == "no evidence received since 2026-02-27 02:00Z, check the collectors"
    meta = week_metadata(sc.result, "computed")
    assert meta["verdict"] == "NO NEW EVIDENCE" and meta["evidence"] == ev["value"]
    # the image's one scan is 238 h old at T (Fri 02-27 02:00 -> Mon 03-09 00:00)
    assert meta["stale_images"].value == ["ghcr.io/acme/api"]
