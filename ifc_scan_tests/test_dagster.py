import json

import dagster as dg

from ifc_scan.definitions import defs
from ifc_scan.defs.assets import finding_lifecycle, warehouse_ingest, weekly_report
from ifc_scan.defs.automation import landing_zone_sensor
from ifc_scan.defs.checks import zero_critical_in_production
from ifc_scan.defs.resources import IfcScanSettings
from ifc_scan.demo.generator import generate


def test_definitions_load_with_jobs_schedule_and_sensor():
    d = defs()
    assert {a.key.path[0] for a in d.resolve_all_asset_specs()} == {"github_evidence", "warehouse_ingest",
                                                                     "finding_lifecycle", "weekly_report"}
    sched = d.resolve_schedule_def("weekly_job_schedule")
    assert sched.cron_schedule == "0 6 * * 1"
    from datetime import datetime, timezone
    reqs = sched.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 9, 6, tzinfo=timezone.utc))).run_requests
    assert reqs[0].partition_key == "2026-03-02"
    # the collector's schedule is off by default and skips itself without a token
    collect_sched = d.resolve_schedule_def("collect_github_schedule")
    assert collect_sched.default_status == dg.DefaultScheduleStatus.STOPPED
    import os
    os.environ.pop("GITHUB_TOKEN", None)
    res = collect_sched.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 3, 9, 5, tzinfo=timezone.utc)))
    assert res.run_requests == [] and "IFC_SCAN_GITHUB_REPO" in res.skip_message


def test_materialize_a_week_and_rerun_is_untouched(tmp_path, monkeypatch):
    generate(tmp_path / "landing", weeks=4, seed=5, end=__import__("datetime").date(2026, 3, 9))
    settings = IfcScanSettings(landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "w.duckdb"),
                               reports=str(tmp_path / "reports"))
    r = dg.materialize([warehouse_ingest, finding_lifecycle], resources={"settings": settings})
    assert r.success
    assets = [weekly_report, zero_critical_in_production]
    r = dg.materialize(assets, partition_key="2026-02-23", resources={"settings": settings})
    assert r.success
    k = json.loads((tmp_path / "reports" / "2026-W09" / "kpis.json").read_text())
    assert k["week"] == "2026-W09" and k["period_end"] == "2026-03-02T00:00:00Z"
    assert len(r.get_asset_check_evaluations()) == 1
    before = (tmp_path / "reports" / "2026-W09" / "manifest.json").read_bytes()
    r = dg.materialize(assets, partition_key="2026-02-23", resources={"settings": settings})
    assert r.success and (tmp_path / "reports" / "2026-W09" / "manifest.json").read_bytes() == before


def test_sensor_requests_ingest_only_for_new_files(tmp_path, monkeypatch):
    (tmp_path / "trivy").mkdir()
    (tmp_path / "trivy" / "a.json").write_text("{}")
    monkeypatch.setenv("IFC_SCAN_LANDING", str(tmp_path))
    ctx = dg.build_sensor_context(cursor=None)
    assert isinstance(landing_zone_sensor(ctx), dg.RunRequest)
    ctx2 = dg.build_sensor_context(cursor=ctx.cursor)
    assert isinstance(landing_zone_sensor(ctx2), dg.SkipReason)


def test_range_run_evaluates_checks_for_every_week(tmp_path):
    from datetime import date
    from ifc_scan.defs import automation, checks
    generate(tmp_path / "landing", weeks=5, seed=2, end=date(2026, 3, 9))
    settings = IfcScanSettings(landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "w.duckdb"),
                               reports=str(tmp_path / "reports"))
    d = dg.Definitions(assets=[warehouse_ingest, finding_lifecycle, weekly_report],
                       asset_checks=dg.load_asset_checks_from_modules([checks]),
                       jobs=[automation.weekly_job, automation.ingest_job], resources={"settings": settings})
    assert d.resolve_job_def("ingest_job").execute_in_process().success
    r = d.resolve_job_def("weekly_job").execute_in_process(
        tags={"dagster/asset_partition_range_start": "2026-02-09", "dagster/asset_partition_range_end": "2026-03-02"})
    assert r.success
    evals = {e.check_name: e for e in r.get_asset_check_evaluations()}
    assert len(evals) == 6
    weeks = ["2026-W07", "2026-W08", "2026-W09", "2026-W10"]
    kp = {w: json.loads((tmp_path / "reports" / w / "kpis.json").read_text()) for w in weeks}
    zc = evals["zero_critical_in_production"]
    assert sorted(zc.metadata["value_by_week"].value) == weeks
    expected_failing = [w for w in weeks if kp[w]["critical_in_prod"]["count"] != 0]
    assert zc.metadata["failing_weeks"].value == expected_failing and zc.passed == (not expected_failing)
    nc = evals["nightly_coverage_100"]
    gaps = [g for w in weeks for g in kp[w]["coverage"]["nightly"]["gaps"]]
    assert nc.metadata["offending_count"].value == len(gaps)
