"""One asset check per policy target, on the weekly KPIs. They warn (the report must show a failure,
so they never block it); the offending items are in the check's metadata."""

import json
from pathlib import Path

import dagster as dg

from ifc_scan.defs.assets import weekly_report
from ifc_scan.defs.resources import IfcScanSettings
from ifc_scan.timeutil import parse_week, week_label


def _week_kpis(settings: IfcScanSettings, context) -> list[tuple[str, dict | None]]:
    """kpis.json of every week the run covers: one partition, or each week of a backfill range."""
    out = []
    for key in context.partition_keys:
        week = week_label(parse_week(key))
        p = Path(settings.reports) / week / "kpis.json"
        out.append((week, json.loads(p.read_text()) if p.is_file() else None))
    return out


def _check(name, description, fn):
    """fn(kpis) -> (passed, value, offending items). The check passes when every covered week passes."""
    @dg.asset_check(asset=weekly_report, name=name, description=description, blocking=False,
                    partitions_def=weekly_report.partitions_def)
    def _c(context: dg.AssetCheckExecutionContext, settings: IfcScanSettings) -> dg.AssetCheckResult:
        per_week, failing, items = {}, [], []
        for week, k in _week_kpis(settings, context):
            if k is None:
                per_week[week] = "no kpis.json"
                failing.append(week)
                continue
            passed, value, offending = fn(k)
            per_week[week] = value
            if not passed:
                failing.append(week)
                items.extend({"week": week, **i} if isinstance(i, dict) else {"week": week, "item": i} for i in offending)
        return dg.AssetCheckResult(
            passed=not failing, severity=dg.AssetCheckSeverity.WARN,
            metadata={"weeks": len(per_week), "failing_weeks": dg.MetadataValue.json(failing),
                      "value_by_week": dg.MetadataValue.json(per_week),
                      "offending_items": dg.MetadataValue.json(items[:200]), "offending_count": len(items)})
    return _c


def _mttr(sev, limit):
    def fn(k):
        m = k["mttr_hours"][sev]["mean"]
        return (m is None or m < limit), k["mttr_hours"][sev], []
    return fn


zero_critical_in_production = _check(
    "zero_critical_in_production", "Policy: 0 unexcepted CRITICAL findings on production images.",
    lambda k: (k["critical_in_prod"]["count"] == 0, k["critical_in_prod"], []))
build_gate_coverage_100 = _check(
    "build_gate_coverage_100", "Policy: every build of a deployable image scanned before push/deploy.",
    lambda k: (k["coverage"]["build_gate"]["pct"] in (None, 100.0), k["coverage"]["build_gate"]["pct"],
               k["coverage"]["build_gate"]["uncovered"]))
nightly_coverage_100 = _check(
    "nightly_coverage_100", "Policy: every deployable image scanned every night.",
    lambda k: (k["coverage"]["nightly"]["pct"] in (None, 100.0), k["coverage"]["nightly"]["pct"],
               k["coverage"]["nightly"]["gaps"]))
mttr_critical_under_24h = _check("mttr_critical_under_24h", "Policy: MTTR CRITICAL < 24 h.", _mttr("CRITICAL", 24))
mttr_high_under_7d = _check("mttr_high_under_7d", "Policy: MTTR HIGH < 7 d.", _mttr("HIGH", 168))
no_expired_exception_listed = _check(
    "no_expired_exception_listed", "Policy: expired exceptions are removed (none still listed).",
    lambda k: (k["exceptions"]["expired_listed"] == 0, k["exceptions"], []))
