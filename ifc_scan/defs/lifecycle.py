"""Lifecycle: every finding's lifecycle, built once from all observations and persisted."""

import dagster as dg

from ifc_scan.defs.resources import IfcScanSettings, WarehouseResource
from ifc_scan.lifecycle.store import derive_lifecycle
from ifc_scan.policy import load_policy
from ifc_scan.progress import waiting
from ifc_scan.warehouse.parquet import publish_parquet

OWNERS = ["team:security-engineering"]


@dg.asset(group_name="lifecycle", kinds={"duckdb", "python"}, pool="duckdb", owners=OWNERS, deps=["warehouse_ingest"],
          description="Each finding's lifecycle on its lineage's production timeline (tables findings, finding_events, "
                      "timeline_moments, current_images). Causal: the state at any week's end is these tables read "
                      "up to that instant.")
def finding_lifecycle(context: dg.AssetExecutionContext, settings: IfcScanSettings,
                      warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connection(log=context.log.info) as con:
        with waiting("finding lifecycle", context.log.info):
            counts = derive_lifecycle(con, load_policy(settings.policy or None))
        meta = {k: dg.MetadataValue.int(v) for k, v in counts.as_dict().items()}
        meta["earliest_change"] = dg.MetadataValue.text(str(counts.earliest_change or "none"))
        if settings.parquet_dir:   # publish the whole warehouse, raw and derived, for lock-free readers
            meta["parquet_rows"] = dg.MetadataValue.int(sum(publish_parquet(con, settings.parquet_dir).values()))
    return dg.MaterializeResult(metadata=meta)
