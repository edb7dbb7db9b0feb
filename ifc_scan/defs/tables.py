"""Iceberg tables (many-hosts profile, docs/deploy.md): the warehouse's tables committed to the catalog."""

import dagster as dg

from ifc_scan.defs.resources import IfcScanSettings, WarehouseResource
from ifc_scan.settings import Settings
from ifc_scan.warehouse.iceberg import IcebergConfig, publish_tables

OWNERS = ["team:security-engineering"]


@dg.asset(group_name="lifecycle", kinds={"iceberg", "duckdb"}, pool="duckdb", owners=OWNERS, deps=["finding_lifecycle"],
          description="Every warehouse table, raw evidence and derived, committed to the Iceberg catalog (one commit "
                      "per table) so other processes and hosts read an exact, immutable state. Needs "
                      "IFC_SCAN_ICEBERG_CATALOG and IFC_SCAN_ICEBERG_WAREHOUSE.")
def iceberg_tables(context: dg.AssetExecutionContext, settings: IfcScanSettings,
                   warehouse: WarehouseResource) -> dg.MaterializeResult:
    cfg = IcebergConfig.from_settings(Settings(**settings.model_dump()))
    with warehouse.connection(read_only=True, log=context.log.info) as con:
        committed = publish_tables(con, cfg)
    return dg.MaterializeResult(metadata={
        "namespace": cfg.namespace, "tables": len(committed), "rows": sum(t.rows for t in committed),
        "snapshots": dg.MetadataValue.json({t.table: t.snapshot_id for t in committed})})
