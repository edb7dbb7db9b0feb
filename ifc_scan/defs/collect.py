"""Collect: GitHub Actions evidence and the exception files' history into the landing zone (each off until
its repository is configured); CISA's KEV catalog and FIRST's EPSS scores (public files) daily, by their own
schedule (off by default: it reaches the internet)."""

import os

import dagster as dg

from ifc_scan.collect.exception_history import collect_exception_history, state_path_beside
from ifc_scan.collect.github import collect
from ifc_scan.collect.intel import as_dicts, collect_intel
from ifc_scan.collect.tickets import collect_github_issues
from ifc_scan.collect.tickets import state_path_beside as tickets_state_path
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


@dg.asset(group_name="collect", kinds={"github", "git"}, owners=OWNERS,
          description="History of the exception files (IFC_SCAN_EXCEPTIONS_FILES, PATH=SCOPE) from GitHub "
                      "(IFC_SCAN_EXCEPTIONS_REPO: pull requests and reviews) or a local clone (IFC_SCAN_EXCEPTIONS_GIT: "
                      "Approved-by trailers): one dated snapshot and one change record per change, into the landing "
                      "zone (docs/exception-governance.md). Without either it collects nothing and says so.")
def exception_history(context: dg.AssetExecutionContext, settings: IfcScanSettings) -> dg.MaterializeResult:
    if not (settings.exceptions_repo or settings.exceptions_git):
        context.log.info("exception history not configured (IFC_SCAN_EXCEPTIONS_REPO / IFC_SCAN_EXCEPTIONS_GIT unset)")
        return dg.MaterializeResult(metadata={"configured": False, "changes_written": 0,
                                              "note": "set IFC_SCAN_EXCEPTIONS_REPO or IFC_SCAN_EXCEPTIONS_GIT"})
    s = collect_exception_history(settings.exceptions_files, settings.landing,
                                  state_path_beside(settings.collector_state), repo=settings.exceptions_repo,
                                  git=settings.exceptions_git, branch=settings.exceptions_branch,
                                  base_url=settings.github_api, token_env=settings.github_token_env,
                                  log=context.log.info)
    d = s.as_dict()
    return dg.MaterializeResult(metadata={
        "configured": True, **{k: v for k, v in d.items() if not isinstance(v, list)},
        "rewritten": dg.MetadataValue.json(d["rewritten"]), "conflicts": dg.MetadataValue.json(d["conflicts"])})


@dg.asset(group_name="collect", kinds={"github"}, owners=OWNERS,
          description="GitHub issues of IFC_SCAN_TICKETS_REPO (label IFC_SCAN_TICKETS_LABEL, default security, or the "
                      "search IFC_SCAN_TICKETS_QUERY) as ticket evidence, into tickets/github/ (incremental). Without "
                      "IFC_SCAN_TICKETS_REPO it collects nothing and says so.")
def ticket_evidence(context: dg.AssetExecutionContext, settings: IfcScanSettings) -> dg.MaterializeResult:
    if not settings.tickets_repo:
        context.log.info("ticket collector not configured (IFC_SCAN_TICKETS_REPO unset)")
        return dg.MaterializeResult(metadata={"configured": False, "issues": 0})
    s = collect_github_issues(settings.tickets_repo, settings.landing,
                              tickets_state_path(settings.collector_state),
                              labels=settings.tickets_label, query=settings.tickets_query or None,
                              base_url=settings.github_api, token_env=settings.github_token_env, log=context.log.info)
    return dg.MaterializeResult(metadata={"configured": True, "issues": s["issues"], "requests": s["requests"],
                                          "written": s["written"] or "nothing new"})


@dg.asset(group_name="collect", kinds={"python"}, owners=OWNERS,
          description="CISA's Known Exploited Vulnerabilities catalog (IFC_SCAN_KEV_URL) and FIRST's EPSS scores "
                      "(IFC_SCAN_EPSS_URL) into enrichment/kev/ and enrichment/epss/, one file per day by the file's "
                      "own date, each checked by the ingest's reader before it is written (a bad answer is refused "
                      "and not written). Fails when a source failed or was refused, after writing the other.")
def intel_evidence(context: dg.AssetExecutionContext, settings: IfcScanSettings) -> dg.MaterializeResult:
    got = collect_intel(settings.landing, kev_url=settings.kev_url, epss_url=settings.epss_url, log=context.log.info)
    bad = [f for f in got if f.outcome in ("failed", "refused")]
    if bad:
        raise dg.Failure(description="; ".join(f"{f.source} {f.outcome}: {f.reason}" for f in bad),
                         metadata={"sources": dg.MetadataValue.json(as_dicts(got))})
    return dg.MaterializeResult(metadata={f.source: f"{f.outcome} {f.path}" for f in got})


collect_intel_job = dg.define_asset_job("collect_intel_job", selection=["intel_evidence", "warehouse_ingest",
                                                                        "finding_lifecycle"],
                                        description="Collect the KEV catalog and the EPSS scores, then ingest them.")


@dg.schedule(cron_schedule="30 4 * * *", job=collect_intel_job, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Daily 04:30 UTC (CISA and FIRST publish the day before, US time): collect the KEV catalog "
                         "and the EPSS scores, then ingest. Off by default: it reaches the internet (or the mirrors "
                         "IFC_SCAN_KEV_URL / IFC_SCAN_EPSS_URL name).")
def collect_intel_schedule(context: dg.ScheduleEvaluationContext):
    return dg.RunRequest(run_key=f"intel:{context.scheduled_execution_time.date().isoformat()}")


collect_job = dg.define_asset_job("collect_job", selection=["github_evidence", "exception_history", "ticket_evidence",
                                                            "warehouse_ingest", "finding_lifecycle"],
                                  description="Collect GitHub Actions evidence, then ingest it.")


@dg.schedule(cron_schedule="0 5 * * 1", job=collect_job, execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Monday 05:00 UTC, before the weekly report: collect CI runs and the exception files' "
                         "history, then ingest. Off by default; it also skips itself while nothing it could collect "
                         "is configured (GitHub needs a token; a local clone does not).")
def collect_github_schedule(context: dg.ScheduleEvaluationContext):
    s = Settings.from_env()
    token = bool(os.environ.get(s.github_token_env))
    if not ((s.github_repo and token) or (s.exceptions_repo and token) or (s.tickets_repo and token)
            or s.exceptions_git):
        return dg.SkipReason(f"set IFC_SCAN_GITHUB_REPO (or IFC_SCAN_EXCEPTIONS_REPO) and {s.github_token_env}, "
                             "or IFC_SCAN_EXCEPTIONS_GIT, to collect")
    return dg.RunRequest(run_key=f"collect:{context.scheduled_execution_time.isoformat()}")
