"""The CLI's weekly pipeline: the weekly-KPI stage (ifc_scan/kpis/stage.py), then the report stage
(ifc_scan/report/run.py), in that order. The Dagster job runs the same two stages as assets
(ifc_scan/defs/weekly.py); the report package itself only renders what the KPI stage stored."""

from __future__ import annotations

from datetime import date

from ifc_scan.kpis.stage import compute_and_store, data_weeks
from ifc_scan.report.run import later_published, render_stored_weeks, trend_weeks


def publish_weeks(con, policy: dict, mondays: list[date], reports, landing: str, run_id: str | None = None,
                  source=None, first_week: date | None = None, signing_key: str | None = None, new_key: bool = False,
                  rotate_key: bool = False, progress=None) -> list[dict]:
    """Compute (or reuse) the weeks, their trend windows and the later published weeks, then render them
    all (a later week whose figures did not change is left untouched). Returns the statuses of `mondays`
    followed by those of the later weeks. `progress`: a log function told the weeks done and the time left."""
    if not mondays:
        return []
    wanted = sorted(set(mondays))
    later = later_published(reports, wanted)
    if first_week is None:      # no trend point before the first evidence (a week of nothing is no zero)
        first_week = next(iter(data_weeks(con, policy)), None)
    window = {w for m in wanted + later for w in trend_weeks(m) if first_week is None or w >= first_week}
    compute_and_store(con, policy, sorted(window | set(wanted) | set(later)), source=source, progress=progress)
    return render_stored_weeks(con, wanted + later, reports, landing, run_id, signing_key, new_key, rotate_key,
                               progress=progress)
