"""The report stage: render stored weeks (table weekly_kpis) into report folders and the index.

It never computes a figure: kpis.json, the populations, the inputs and the trend are read from what
the weekly-KPI stage stored (ifc_scan/kpis/stage.py). Running the stages in order is the caller's:
ifc_scan/pipeline.py for the CLI, the Dagster assets (ifc_scan/defs/weekly.py) for the jobs.
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

from ifc_scan.kpis.stage import load_week
from ifc_scan.kpis.view import SEVERITIES, WeekKpis
from ifc_scan.progress import Progress
from ifc_scan.report.writer import write_index, write_week
from ifc_scan.timeutil import parse_week, week_bounds, week_label

TREND_WEEKS = 12


def trend_weeks(monday: date) -> list[date]:
    """The week and the 11 before it (the trend's window)."""
    return [monday - timedelta(weeks=i) for i in range(TREND_WEEKS - 1, -1, -1)]


def trend_point(k: WeekKpis) -> dict:
    return {"week": k.week, "open": {s: k.open_by_severity(s) for s in SEVERITIES},
            "mttr": {s: k.mttr_mean(s) for s in ("CRITICAL", "HIGH")},
            "mttr_n": {s: k.mttr(s)["n"] for s in ("CRITICAL", "HIGH")}, "critical": k.critical_in_prod,
            "build_gate": k.build_gate["pct"], "nightly": k.nightly["pct"], "new": k.new_findings,
            "resolved": k.resolved,
            # degree (D24): [met, judged]; absent for a week stored before kpis.json contract 1.3
            **({"degree": {"requirements": list(k.requirements_met()), "controls": list(k.controls_passing())}}
               if k.requirements else {})}


def stored_trend(con, monday: date) -> list[dict]:
    """Trend points of the stored weeks in the window; weeks never computed (before any evidence) are absent."""
    start, _ = week_bounds(trend_weeks(monday)[0])
    _, end = week_bounds(monday)
    rows = con.execute("SELECT kpis_json FROM weekly_kpis WHERE period_start >= ? AND period_start < ? ORDER BY week",
                       (start, end)).fetchall()
    return [trend_point(WeekKpis(json.loads(r[0]))) for r in rows]


def render_stored_weeks(con, mondays: list[date], reports, landing: str, run_id: str | None = None,
                        signing_key: str | None = None, new_key: bool = False, rotate_key: bool = False,
                        progress=None) -> list[dict]:
    """Write reports/<week>/ for each stored week; returns one status dict per week (path, status, revision, kpis).
    `signing_key`: the Ed25519 key that signs each manifest (report/signing.py signer_for_publication: when it
    may be created or rotated). Every week written and the index are recorded in the publication log."""
    from ifc_scan.report.publications import PublicationLog
    from ifc_scan.report.signing import signer_for_publication
    signer = signer_for_publication(signing_key, Path(reports), Path(landing), new_key=new_key,
                                    rotate=rotate_key) if signing_key else None
    Path(reports).mkdir(parents=True, exist_ok=True)
    log = PublicationLog(Path(reports), signer)
    memo: dict = {}     # manifest sha256 -> full input list: each week's chain is read once per run
    out = []
    tick = Progress("weekly reports written", len(set(mondays)), progress or (lambda msg: None))
    for m in sorted(set(mondays)):
        r = load_week(con, week_label(m), with_inputs=True)
        if r is None:
            raise ValueError(f"week {week_label(m)} has no stored KPIs: run the weekly_kpis step first")
        status = write_week(reports, r, stored_trend(con, m), r.data_quality, landing=str(landing), run_id=run_id,
                            memo=memo, signer=signer, log=log)
        status["kpis"] = r.kpis
        status["verdict"] = r.view.verdict
        out.append(status)
        tick.advance(f"{status['week']} {status['status']}")
    write_index(reports, log)
    return out


def later_published(reports, mondays: list[date]) -> list[date]:
    """Published weeks after the earliest of `mondays` that are not among them: a revised week can change
    every later one (its trend, and the inputs a late file adds), so they are brought up to date with it."""
    reports = Path(reports)
    if not mondays or not reports.is_dir():
        return []
    out = []
    for p in reports.iterdir():
        if p.is_dir() and (p / "manifest.json").is_file() and re.fullmatch(r"\d{4}-W\d{2}", p.name):
            m = parse_week(p.name)
            if m > min(mondays) and m not in mondays:
                out.append(m)
    return sorted(out)
