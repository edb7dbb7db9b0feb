"""Assets: ingest -> lifecycle -> weekly KPIs and reports. They only wire the pure modules together.

Every asset and check that opens DuckDB is in pool "duckdb" (limit 1 in dagster.yaml): DuckDB allows
one writer process, so runs queue instead of failing on the lock.
"""

import dagster as dg

from ifc_scan.collect.github import collect
from ifc_scan.defs.resources import IfcScanSettings, weekly_partitions
from ifc_scan.ingest.runner import ingest
from ifc_scan.pipeline import derive_lifecycle
from ifc_scan.policy import load_policy
from ifc_scan.report.run import publish_weeks
from ifc_scan.timeutil import parse_week
from ifc_scan.warehouse.db import connect
from ifc_scan.warehouse.parquet import connect_parquet, publish_parquet

OWNERS = ["team:security-engineering"]


@dg.asset(group_name="collect", kinds={"github"}, owners=OWNERS,
          description="Pull GitHub Actions runs, jobs, logs and trivy-results-* artifacts of IFC_SCAN_GITHUB_REPO into "
                      "the landing zone (incremental; token from the variable IFC_SCAN_GITHUB_TOKEN_ENV names).")
def github_evidence(context: dg.AssetExecutionContext, settings: IfcScanSettings) -> dg.MaterializeResult:
    if not settings.github_repo:
        raise dg.Failure("IFC_SCAN_GITHUB_REPO is not set: nothing to collect")
    s = collect(settings.github_repo, settings.landing, settings.collector_state, base_url=settings.github_api,
                token_env=settings.github_token_env, log=context.log.info)
    return dg.MaterializeResult(metadata={**{k: v for k, v in s.as_dict().items() if k != "expired"},
                                          "expired_at_source": dg.MetadataValue.json(s.expired)})


@dg.asset(group_name="ingest", kinds={"duckdb", "python"}, pool="duckdb", owners=OWNERS, deps=[github_evidence],
          description="Load new landing-zone files (Trivy reports, GitHub Actions runs, exceptions, inventory) "
                      "into the DuckDB warehouse. Files already loaded (same path and sha256) are skipped.")
def warehouse_ingest(context: dg.AssetExecutionContext, settings: IfcScanSettings) -> dg.MaterializeResult:
    s = ingest(settings.landing, settings.warehouse, progress=context.log.info)
    rej = "\n".join(f"- `{p}`: {r}" for p, r in s.rejections[:50]) or "none"
    return dg.MaterializeResult(metadata={
        "files_seen": s.files_seen, "new_files": s.new_files, "ingested": s.ingested, "rejected": s.rejected,
        "duplicates": s.duplicates, "rows_added": dg.MetadataValue.json(dict(s.rows)),
        "summary": dg.MetadataValue.md(f"**{s.new_files} new files**, {s.ingested} ingested, {s.rejected} rejected\n\n"
                                       f"Rejected:\n{rej}")})


@dg.asset(group_name="lifecycle", kinds={"duckdb", "python"}, pool="duckdb", owners=OWNERS, deps=[warehouse_ingest],
          description="Each finding's lifecycle on its lineage's production timeline (tables findings, "
                      "finding_events, timeline_moments), recomputed from all observations.")
def finding_lifecycle(context: dg.AssetExecutionContext, settings: IfcScanSettings) -> dg.MaterializeResult:
    with connect(settings.warehouse) as con:
        counts = derive_lifecycle(con, load_policy(settings.policy or None))
        if settings.parquet_dir:   # publish the whole warehouse, raw and derived, for lock-free readers
            counts["parquet_rows"] = sum(publish_parquet(con, settings.parquet_dir).values())
    return dg.MaterializeResult(metadata={k: dg.MetadataValue.int(v) for k, v in counts.items()})


@dg.asset(group_name="weekly", kinds={"duckdb", "html"}, pool="duckdb", owners=OWNERS, deps=[finding_lifecycle],
          partitions_def=weekly_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
          description="Weekly KPIs per design/KPIS.md as of each week's end (table weekly_kpis, "
                      "reports/<YYYY-Www>/kpis.json) and the weekly report folder (report.html, CSVs, manifest).")
def weekly_report(context: dg.AssetExecutionContext, settings: IfcScanSettings) -> dg.MaterializeResult:
    mondays = [parse_week(k) for k in context.partition_keys]
    policy = load_policy(settings.policy or None)
    with connect(settings.warehouse) as con:
        source = connect_parquet(settings.parquet_dir) if settings.parquet_dir else None
        statuses = publish_weeks(con, policy, mondays, settings.reports, landing=settings.landing, run_id=context.run_id,
                                 source=source)
    last = statuses[-1]
    k = last["kpis"]
    lines = [f"| {s['week']} | {s['status']} | {s['kpis']['critical_in_prod']['count']} | "
             f"{s['kpis']['coverage']['build_gate']['pct']} | {s['kpis']['coverage']['nightly']['pct']} | "
             f"{s['kpis']['mttr_hours']['CRITICAL']['mean']} | {s['kpis']['mttr_hours']['HIGH']['mean']} |" for s in statuses]
    md = ("| week | report | CRITICAL in prod | build gate % | nightly % | MTTR CRITICAL h | MTTR HIGH h |\n"
          "|---|---|---|---|---|---|---|\n" + "\n".join(lines))
    return dg.MaterializeResult(metadata={
        "weeks": len(statuses), "critical_in_prod": k["critical_in_prod"]["count"],
        "build_gate_pct": dg.MetadataValue.float(k["coverage"]["build_gate"]["pct"]) if k["coverage"]["build_gate"]["pct"] is not None else dg.MetadataValue.text("n/a"),
        "nightly_pct": dg.MetadataValue.float(k["coverage"]["nightly"]["pct"]) if k["coverage"]["nightly"]["pct"] is not None else dg.MetadataValue.text("n/a"),
        "report_path": dg.MetadataValue.path(last["path"] + "/report.html"),
        "summary": dg.MetadataValue.md(md)})
