"""The report stage: render stored weeks (table weekly_kpis) into report folders and the index.

It never computes a figure: kpis.json, the populations, the inputs and the trend are read from what
the weekly-KPI stage stored (ifc_scan/kpis/stage.py).
"""

from __future__ import annotations

import json
from datetime import date, timedelta

from ifc_scan.kpis.stage import compute_and_store, load_week
from ifc_scan.kpis.view import SEVERITIES, WeekKpis
from ifc_scan.report.writer import write_index, write_week
from ifc_scan.timeutil import week_bounds, week_label

TREND_WEEKS = 12


def trend_weeks(monday: date) -> list[date]:
    """The week and the 11 before it (the trend's window)."""
    return [monday - timedelta(weeks=i) for i in range(TREND_WEEKS - 1, -1, -1)]


def trend_point(k: WeekKpis) -> dict:
    return {"week": k.week, "open": {s: k.open_by_severity(s) for s in SEVERITIES},
            "mttr": {s: k.mttr_mean(s) for s in ("CRITICAL", "HIGH")},
            "mttr_n": {s: k.mttr(s)["n"] for s in ("CRITICAL", "HIGH")}, "critical": k.critical_in_prod,
            "build_gate": k.build_gate["pct"], "nightly": k.nightly["pct"]}


def stored_trend(con, monday: date) -> list[dict]:
    """Trend points of the stored weeks in the window; weeks never computed (before any evidence) are absent."""
    start, _ = week_bounds(trend_weeks(monday)[0])
    _, end = week_bounds(monday)
    rows = con.execute("SELECT kpis_json FROM weekly_kpis WHERE period_start >= ? AND period_start < ? ORDER BY week",
                       (start, end)).fetchall()
    return [trend_point(WeekKpis(json.loads(r[0]))) for r in rows]


def render_stored_weeks(con, mondays: list[date], reports, landing: str, run_id: str | None = None) -> list[dict]:
    """Write reports/<week>/ for each stored week; returns one status dict per week (path, status, revision, kpis)."""
    memo: dict = {}     # manifest sha256 -> full input list: each week's chain is read once per run
    out = []
    for m in sorted(set(mondays)):
        r = load_week(con, week_label(m))
        if r is None:
            raise ValueError(f"week {week_label(m)} has no stored KPIs: run the weekly_kpis step first")
        status = write_week(reports, r, stored_trend(con, m), r.data_quality, landing=str(landing), run_id=run_id,
                            memo=memo)
        status["kpis"] = r.kpis
        status["verdict"] = r.view.verdict
        out.append(status)
    write_index(reports)
    return out


def publish_weeks(con, policy: dict, mondays: list[date], reports, landing: str, run_id: str | None = None,
                  source=None, first_week: date | None = None) -> list[dict]:
    """CLI path: compute (or reuse) the weeks and their trend windows, then render them.
    `first_week`: no trend week before it is computed (the first week with evidence)."""
    if not mondays:
        return []
    wanted = sorted(set(mondays))
    window = {w for m in wanted for w in trend_weeks(m) if first_week is None or w >= first_week} | set(wanted)
    compute_and_store(con, policy, sorted(window), source=source)
    return render_stored_weeks(con, wanted, reports, landing, run_id)
