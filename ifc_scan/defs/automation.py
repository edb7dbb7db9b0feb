"""The weekly job and schedule, and the landing-zone sensor (it watches files, never DuckDB)."""

import json
import os

import dagster as dg

from ifc_scan.defs.assets import finding_lifecycle, github_evidence, warehouse_ingest, weekly_report
from ifc_scan.settings import Settings

weekly_job = dg.define_asset_job("weekly_job", selection=[weekly_report],
                                 description="Compute and publish the weekly KPIs and report of one week.")
ingest_job = dg.define_asset_job("ingest_job", selection=[warehouse_ingest, finding_lifecycle],
                                 description="Load new landing-zone files and recompute the lifecycle.")

collect_job = dg.define_asset_job("collect_job", selection=[github_evidence, warehouse_ingest, finding_lifecycle],
                                  description="Collect GitHub Actions evidence, then ingest it.")


@dg.schedule(cron_schedule="0 5 * * 1", job=collect_job, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Monday 05:00 UTC, before the weekly report: collect from GitHub, then ingest. Off by "
                         "default; it also skips itself while no token is configured.")
def collect_github_schedule(context: dg.ScheduleEvaluationContext):
    s = Settings.from_env()
    if not s.github_repo or not os.environ.get(s.github_token_env):
        return dg.SkipReason(f"set IFC_SCAN_GITHUB_REPO and {s.github_token_env} to collect from GitHub")
    return dg.RunRequest(run_key=f"collect:{context.scheduled_execution_time.isoformat()}")


weekly_schedule = dg.build_schedule_from_partitioned_job(
    weekly_job, hour_of_day=6, minute_of_hour=0, default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Monday 06:00 UTC: the report of the week that just ended.")


def landing_fingerprint(landing: str) -> dict:
    """{relative path: [size, mtime]} of every landing-zone file (cheap: no hashing, no DuckDB)."""
    out = {}
    for root, _dirs, names in os.walk(landing):
        for n in names:
            p = os.path.join(root, n)
            try:
                st = os.stat(p)
            except OSError:
                continue
            out[os.path.relpath(p, landing)] = [st.st_size, int(st.st_mtime)]
    return out


@dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts ingest when files appear or change in the landing zone.")
def landing_zone_sensor(context: dg.SensorEvaluationContext):
    landing = Settings.from_env().landing
    if not os.path.isdir(landing):
        return dg.SkipReason(f"landing zone {landing} does not exist")
    now = landing_fingerprint(landing)
    before = json.loads(context.cursor) if context.cursor else {}
    changed = sorted(p for p, v in now.items() if before.get(p) != v)
    if not changed:
        return dg.SkipReason("no new or changed files")
    context.update_cursor(json.dumps(now, sort_keys=True))
    return dg.RunRequest(run_key=f"landing:{len(now)}:{max(v[1] for v in now.values())}:{len(changed)}",
                         tags={"ifc_scan/changed_files": str(len(changed))})
