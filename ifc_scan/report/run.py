"""Compute and publish a set of weeks: weekly_kpis rows, report folders, and the index."""

from __future__ import annotations

from datetime import date, timedelta

from ifc_scan.pipeline import compute_weeks, write_weekly_kpis
from ifc_scan.report.writer import write_index, write_week
from ifc_scan.timeutil import week_label

TREND_WEEKS = 12


def trend_point(r) -> dict:
    k = r.kpis
    return {"week": k["week"], "open": {s: k["open_backlog"][s]["total"] for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")},
            "mttr": {s: k["mttr_hours"][s]["mean"] for s in ("CRITICAL", "HIGH")}, "critical": k["critical_in_prod"]["count"],
            "build_gate": k["coverage"]["build_gate"]["pct"], "nightly": k["coverage"]["nightly"]["pct"]}


def warehouse_quality(con) -> dict:
    """Rejected files and unparsed log lines (whole warehouse): read once per publication."""
    return {"rejected": [{"path": p, "reason": r} for p, r in con.execute(
                "SELECT path, reason FROM ingest_errors ORDER BY path, reason").fetchall()],
            "unparsed_lines": con.execute(
                "SELECT count(*) FROM ci_log_issues WHERE reason LIKE 'looks like%'").fetchone()[0]}


def data_quality(warehouse: dict, inputs: list[dict], populations: dict) -> dict:
    obs = populations["obs"]
    return {"inputs": len(inputs), **warehouse,
            "fallback_ci": sum(1 for s in obs.scans if s.observed_at_source == "ci"),
            "fallback_mtime": sum(1 for s in obs.scans if s.observed_at_source == "mtime"),
            "scans_without_image": obs.scans_without_image}


def publish_weeks(con, policy: dict, mondays: list[date], reports, landing: str, run_id: str | None = None,
                  source=None) -> list[dict]:
    """KPIs for `mondays` into weekly_kpis and reports/<week>/; returns one status dict per week.
    `source`: where the observations are read (a Parquet warehouse's views); default the warehouse itself."""
    source = source or con
    if not mondays:
        return []
    wanted = sorted(set(mondays))
    first = wanted[0] - timedelta(weeks=TREND_WEEKS - 1)
    span = []
    d = first
    while d <= wanted[-1]:
        span.append(d)
        d += timedelta(days=7)
    results = {week_label(r_monday): r for r_monday, r in zip(span, compute_weeks(source, policy, span))}
    chosen = [results[week_label(m)] for m in wanted]
    write_weekly_kpis(con, chosen)
    all_weeks = sorted(results)
    warehouse = warehouse_quality(source)
    out = []
    for m, r in zip(wanted, chosen):
        idx = span.index(m)
        trend = [trend_point(results[week_label(x)]) for x in span[max(0, idx - TREND_WEEKS + 1): idx + 1]]
        dq = data_quality(warehouse, r.inputs, r.populations)
        status = write_week(reports, r, trend, dq, landing=str(landing), run_id=run_id, all_weeks=all_weeks)
        status["kpis"] = r.kpis
        out.append(status)
    write_index(reports)
    return out
