"""Ingest: landing-zone files into the warehouse, started by the sensor when files change."""

import dagster as dg

from ifc_scan.defs.resources import IfcScanSettings
from ifc_scan.ingest.runner import ingest, landing_fingerprint, read_receipt
from ifc_scan.report.markdown import md_escape
from ifc_scan.settings import Settings

OWNERS = ["team:security-engineering"]


@dg.asset(group_name="ingest", kinds={"duckdb", "python"}, pool="duckdb", owners=OWNERS,
          deps=["github_evidence", "exception_history", "ticket_evidence", "intel_evidence"],
          description="Load new landing-zone files (Trivy reports, GitHub Actions runs, exceptions, inventory, KEV "
                      "and EPSS) into the DuckDB warehouse. Files already loaded (same path and sha256) are skipped.")
def warehouse_ingest(context: dg.AssetExecutionContext, settings: IfcScanSettings) -> dg.MaterializeResult:
    s = ingest(settings.landing, settings.warehouse, progress=context.log.info)
    rej = "\n".join(f"- {md_escape(p)}: {md_escape(r)}" for p, r in s.rejections[:50]) or "none"
    return dg.MaterializeResult(metadata={
        "files_seen": s.files_seen, "new_files": s.new_files, "ingested": s.ingested, "rejected": s.rejected,
        "duplicates": s.duplicates, "rows_added": dg.MetadataValue.json(dict(s.rows)),
        "summary": dg.MetadataValue.md(f"**{s.new_files} new files**, {s.ingested} ingested, {s.rejected} rejected\n\n"
                                       f"Rejected:\n{rej}")})


ingest_job = dg.define_asset_job("ingest_job", selection=["warehouse_ingest", "finding_lifecycle"],
                                 description="Load new landing-zone files and rebuild the lifecycle.")


@dg.sensor(job=ingest_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts ingest when files appear or change in the landing zone (the files ingest would read; "
                       "hidden working folders ignored). It never opens DuckDB: it compares the landing zone's "
                       "fingerprint with the receipt the last ingest wrote next to the warehouse.")
def landing_zone_sensor(context: dg.SensorEvaluationContext):
    s = Settings.from_env()
    try:
        now = landing_fingerprint(s.landing)
    except FileNotFoundError as exc:
        return dg.SkipReason(str(exc))
    if context.cursor == now.digest:
        return dg.SkipReason("no new or changed files")
    context.update_cursor(now.digest)
    receipt = read_receipt(s.warehouse)
    if receipt is not None and receipt.get("fingerprint") == now.digest:
        return dg.SkipReason(f"the warehouse already holds all {now.files} landing-zone files")
    return dg.RunRequest(run_key=f"landing:{now.digest}", tags={"ifc_scan/landing_files": str(now.files)})
