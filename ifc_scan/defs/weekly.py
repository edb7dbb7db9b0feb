"""Weekly: KPIs from the persisted lifecycle (weekly_kpis), the report rendered from them (weekly_report),
and one check per policy target on every week. Each partition gets its own metadata and check results,
also inside a single-run backfill of many weeks."""

from pathlib import Path

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData
from dagster._core.storage.event_log.base import AssetRecordsFilter

from ifc_scan.defs.resources import IfcScanSettings, WarehouseResource, weekly_partitions
from ifc_scan.kpis.stage import compute_and_store, load_week
from ifc_scan.kpis.targets import Targets, judge_targets
from ifc_scan.kpis.view import WeekKpis
from ifc_scan.policy import load_policy
from ifc_scan.report.run import TREND_WEEKS, later_published, render_stored_weeks, trend_weeks
from ifc_scan.timeutil import parse_week, week_label
from ifc_scan.warehouse.parquet import connect_parquet

OWNERS = ["team:security-engineering"]
FIRST_WEEK = parse_week(weekly_partitions.start.strftime("%Y-%m-%d"))


def _num(v):
    return dg.MetadataValue.text("n/a") if v is None else v


def week_metadata(result, status: str) -> dict:
    v = result.view
    failing = [f"{c['framework']} {c['id']}" for c in v.failing_controls]
    met, judged = v.requirements_met()
    passing, controls_judged = v.controls_passing()
    fr = v.freshness or {}
    return {"iso_week": v.week, "period": f"{result.kpis['period_start']} .. {result.kpis['period_end']} (exclusive)",
            "verdict": v.verdict,
            "evidence": v.evidence_line() if v.no_new_evidence else f"{fr.get('scans_in_week', 0)} scan(s), "
                        f"{fr.get('ci_events_in_week', 0)} CI event(s) this week; last {fr.get('last_evidence_at')}",
            "stale_images": dg.MetadataValue.json([i["lineage"] for i in fr.get("images", []) if i["stale"]]),
            "requirements_met": f"{met} of {judged}", "controls_passing": f"{passing} of {controls_judged}",
            "unmet_requirements": dg.MetadataValue.json([r["label"] for r in v.unmet_requirements]),
            "failing_controls": dg.MetadataValue.json(failing), "kpis": status,
            "critical_in_prod": v.critical_in_prod, "build_gate_pct": _num(v.build_gate["pct"]),
            "nightly_pct": _num(v.nightly["pct"]), "mttr_critical_h": _num(v.mttr_mean("CRITICAL")),
            "mttr_high_h": _num(v.mttr_mean("HIGH")), "open_overdue": v.open_overdue, "open_backlog": v.open_backlog,
            "new_findings": v.new_findings, "remediated": v.remediated}


@dg.asset(group_name="weekly", kinds={"duckdb", "python"}, pool="duckdb", owners=OWNERS, deps=["finding_lifecycle"],
          partitions_def=weekly_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
          description="The week's KPIs, controls and populations as of the week's end (KPIS.md), computed from the "
                      "persisted lifecycle and stored in the table weekly_kpis: the only place a figure is computed. "
                      "Also fills in the trend window's earlier weeks when they are missing or stale.")
def weekly_kpis(context: dg.AssetExecutionContext, settings: IfcScanSettings,
                warehouse: WarehouseResource) -> dg.MaterializeResult:
    mondays = [parse_week(k) for k in context.partition_keys]
    later = later_published(settings.reports, mondays)
    window = sorted({w for m in mondays + later for w in trend_weeks(m) if w >= FIRST_WEEK} | set(mondays) | set(later))
    policy = load_policy(settings.policy or None)
    with warehouse.connection(log=context.log.info) as con:
        source = connect_parquet(settings.parquet_dir) if settings.parquet_dir else None
        done = compute_and_store(con, policy, window, source=source)
        for key, m in zip(context.partition_keys, mondays):
            context.add_asset_metadata(week_metadata(load_week(con, week_label(m)), done[week_label(m)]),
                                       partition_key=key)
    computed = sum(1 for s in done.values() if s == "computed")
    context.log.info(f"weekly_kpis: {len(mondays)} week(s) asked, {computed} computed, "
                     f"{len(done) - computed} already stored and fresh (trend window {TREND_WEEKS} weeks)")
    return dg.MaterializeResult()


@dg.asset(group_name="weekly", kinds={"html"}, pool="duckdb", owners=OWNERS,
          # Same week only: weekly_kpis(W) also stores W's trend window, so the report of W needs nothing
          # more. A window mapping (W-11..W) made a backfill of older weeks add every later week whose window
          # overlaps them, including weeks that ended but were never computed, and the run failed on those.
          deps=["weekly_kpis"],
          partitions_def=weekly_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
          description="The weekly report folder (report.html, kpis.json, CSVs, manifest.json), rendered from the "
                      "stored weekly KPIs and the stored trend of the previous weeks; it computes nothing.")
def weekly_report(context: dg.AssetExecutionContext, settings: IfcScanSettings,
                  warehouse: WarehouseResource) -> dg.MaterializeResult:
    mondays = [parse_week(k) for k in context.partition_keys]
    later = later_published(settings.reports, mondays)     # revising a week brings the later published ones along
    with warehouse.connection(read_only=True, log=context.log.info) as con:
        statuses = render_stored_weeks(con, mondays + later, settings.reports, landing=settings.landing,
                                       run_id=context.run_id, signing_key=settings.signing_key or None)
    cascaded = [f"{st['week']} {st['status']}" for st in statuses[len(mondays):]]
    if cascaded:
        context.log.info("later published weeks brought up to date: " + ", ".join(cascaded))
    for key, st in zip(context.partition_keys, statuses):
        path = (Path(st["path"]) / "report.html").resolve()
        context.add_asset_metadata({"iso_week": st["week"], "status": st["status"],
                                    "revision": st.get("revision") or 1,
                                    "verdict": st["verdict"], "report_path": dg.MetadataValue.path(str(path)),
                                    "report_url": dg.MetadataValue.url(path.as_uri()),
                                    "later_weeks_republished": dg.MetadataValue.json(
                                        [c for c in cascaded if not c.endswith("unchanged")])}, partition_key=key)
    return dg.MaterializeResult()


CHECKS = {  # check name -> description; each is judged by ifc_scan/kpis/targets.py (targets from the policy)
    "evidence_current": "Every deployable image scanned within the policy's scan_gap_hours at the week's end, no "
                        "scan gap over it, and evidence received this week (docs/kpi-decisions.md D23).",
    "zero_critical_in_production": "Policy target: unexcepted CRITICAL findings in production at most the target (0); "
                                   "a 0 read from a stale scan is not a pass.",
    "build_gate_coverage": "Policy target: every build of a deployable image scanned before push/deploy; a week "
                           "without builds is no data, not a pass.",
    "nightly_coverage": "Policy target: every deployable image scanned every night.",
    "mttr_critical": "Policy target: MTTR CRITICAL under the target (24 h); no fix this week = nothing to judge.",
    "mttr_high": "Policy target: MTTR HIGH under the target (7 d); no fix this week = nothing to judge.",
    "no_open_overdue": "No open, unexcepted finding past its SLA due time at the week's end.",
    "no_expired_exception_listed": "Expired exceptions are removed (none still listed).",
    "every_control_passes": "No control of the catalog fails this week (the report's verdict).",
}
# no data on these is not a pass: a week without builds never exercised the gate (MTTR without a fix is
# nothing to judge, and passes)
NO_DATA_FAILS = ("build_gate_coverage", "nightly_coverage", "evidence_current")


def judge_checks(v: WeekKpis, findings: list[dict], targets: Targets) -> dict[str, dict]:
    """check name -> {passed, severity, status, value, target, items}: a failed target is an ERROR, a
    figure that is stale or has no data where data is due a WARN (the Partitions view shows both as failed)."""
    results = {t.key: t for t in judge_targets(v, targets, findings)}
    fresh = next((r for r in v.requirements if r["key"] == "scans_current"), None)
    out = {}
    for name in CHECKS:
        if name == "every_control_passes":
            items = [{"control": f"{c['framework']} {c['id']}", "failed": c["failed"]} for c in v.failing_controls]
            status, value, target = ("met" if not items else "not met"), v.verdict, "no control fails"
        elif name == "evidence_current":
            items = fresh["items"] if fresh else []
            status = "not met" if v.no_new_evidence else (fresh["status"] if fresh else "no data")
            value = v.evidence_line() if v.no_new_evidence else (fresh["value"] if fresh else None)
            target = fresh["target"] if fresh else "evidence every week"
        else:
            t = results[name]
            items, status, value, target = t.items, t.status, t.value, t.target
        passed = status == "met" or (status == "no data" and name not in NO_DATA_FAILS)
        out[name] = {"passed": passed, "status": status, "value": value, "target": target, "items": items,
                     "severity": dg.AssetCheckSeverity.ERROR if status == "not met" else dg.AssetCheckSeverity.WARN}
    return out


def _target_materialization(instance, key: str):
    """The partition's latest weekly_kpis materialization: an evaluation that names it is "current", and only
    then does the check's Partitions view show it passed or failed (without it every week reads Missing)."""
    recs = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=dg.AssetKey("weekly_kpis"), asset_partitions=[key]), limit=1).records
    if not recs:
        return None
    return AssetCheckEvaluationTargetMaterializationData(storage_id=recs[0].storage_id, timestamp=recs[0].timestamp,
                                                         run_id=recs[0].event_log_entry.run_id)


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec(name, asset="weekly_kpis", description=d, partitions_def=weekly_partitions, blocking=False)
           for name, d in CHECKS.items()],
    pool="duckdb", description="Each week's figures against the policy's targets, with the offending items.")
def weekly_targets(context: dg.AssetCheckExecutionContext, settings: IfcScanSettings, warehouse: WarehouseResource):
    targets = Targets.from_policy(load_policy(settings.policy or None))
    with warehouse.connection(read_only=True, log=context.log.info) as con:
        weeks = [(key, load_week(con, week_label(parse_week(key)))) for key in context.partition_keys]
    failed: list[str] = []
    for key, r in weeks:
        target_mat = _target_materialization(context.instance, key)
        if r is None:
            for name in CHECKS:
                yield dg.AssetCheckEvaluation(asset_key=dg.AssetKey("weekly_kpis"), check_name=name, passed=False,
                                              severity=dg.AssetCheckSeverity.WARN, partition=key,
                                              target_materialization_data=target_mat,
                                              metadata={"problem": "no stored KPIs for this week"})
            continue
        v = r.view
        for name, c in judge_checks(v, r.populations["findings"], targets).items():
            value = c["value"] if c["value"] is not None else "n/a"
            if not c["passed"]:
                failed.append(f"{v.week} {name} ({c['status']})")
            yield dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("weekly_kpis"), check_name=name, passed=c["passed"], partition=key,
                severity=c["severity"], target_materialization_data=target_mat,
                description=f"{v.week}: {c['status']} - {value} (target {c['target']})",
                metadata={"iso_week": v.week, "status": c["status"], "value": dg.MetadataValue.text(str(value)),
                          "target": c["target"], "offending_count": len(c["items"]),
                          "offending_items": dg.MetadataValue.json(c["items"][:200])})
    if failed:      # the run itself stays green (the checks do not block publishing): say it in its log
        context.log.warning(f"{len(failed)} check(s) did not pass: " + "; ".join(failed[:40])
                            + (f"; and {len(failed) - 40} more" if len(failed) > 40 else ""))
    for name in CHECKS:   # the per-week results above are the evaluations; these close the op's outputs
        yield dg.Output(None, output_name=f"weekly_kpis_{name}")


weekly_job = dg.define_asset_job("weekly_job", selection=["weekly_kpis", "weekly_report"],
                                 partitions_def=weekly_partitions,
                                 description="Compute, check and publish the KPIs and report of one week (or a range).")

weekly_schedule = dg.build_schedule_from_partitioned_job(
    weekly_job, hour_of_day=6, minute_of_hour=0, default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Monday 06:00 UTC: the report of the week that just ended.")
