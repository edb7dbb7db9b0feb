"""Collect: GitHub Actions evidence into the landing zone (off until a repository is configured)."""

import os

import dagster as dg

from ifc_scan.collect.github import collect
from ifc_scan.defs.resources import IfcScanSettings
from ifc_scan.settings import Settings

OWNERS = ["team:security-engineering"]


@dg.asset(group_name="collect", kinds={"github"}, owners=OWNERS,
          description="Pull GitHub Actions runs, jobs, logs and trivy-results-* artifacts of IFC_SCAN_GITHUB_REPO into "
                      "the landing zone (incremental). Without IFC_SCAN_GITHUB_REPO it collects nothing and says so, "
                      "so ingest still runs.")
def github_evidence(context: dg.AssetExecutionContext, settings: IfcScanSettings) -> dg.MaterializeResult:
    if not settings.github_repo:
        context.log.info("GitHub collector not configured (IFC_SCAN_GITHUB_REPO unset): nothing collected")
        return dg.MaterializeResult(metadata={"configured": False, "runs_collected": 0,
                                              "note": "set IFC_SCAN_GITHUB_REPO and a token to collect"})
    s = collect(settings.github_repo, settings.landing, settings.collector_state, base_url=settings.github_api,
                token_env=settings.github_token_env, log=context.log.info)
    return dg.MaterializeResult(metadata={"configured": True, **{k: v for k, v in s.as_dict().items() if k != "expired"},
                                          "expired_at_source": dg.MetadataValue.json(s.expired)})


collect_job = dg.define_asset_job("collect_job", selection=["github_evidence", "warehouse_ingest", "finding_lifecycle"],
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
