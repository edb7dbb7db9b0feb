"""Resources and the weekly partitions. Configured from the one settings table (ifc_scan/settings.py)
with dg.EnvVar where the variable is set, so the UI shows where each value comes from."""

import contextlib
import os

import dagster as dg

from ifc_scan.policy import DEFAULT_POLICY
from ifc_scan.settings import ENV, Settings
from ifc_scan.warehouse.db import connect

# Monday-based ISO weeks (day_offset=1); partition keys are the Mondays' dates.
weekly_partitions = dg.WeeklyPartitionsDefinition(start_date=str(DEFAULT_POLICY["week_start"]), day_offset=1,
                                                  end_offset=0)


_DEFAULT = Settings()     # the settings table's defaults


class IfcScanSettings(dg.ConfigurableResource):
    """Every ifc_scan setting (env: IFC_SCAN_*; ifc_scan/settings.py lists them with their variables and
    defaults): the same fields as `Settings`, so the CLI and Dagster can never disagree. Landing zone,
    warehouse and reports have no default here: a resource names them."""
    landing: str
    warehouse: str
    reports: str
    policy: str = _DEFAULT.policy
    github_repo: str = _DEFAULT.github_repo
    github_api: str = _DEFAULT.github_api
    github_token_env: str = _DEFAULT.github_token_env
    collector_state: str = _DEFAULT.collector_state
    exceptions_repo: str = _DEFAULT.exceptions_repo
    exceptions_git: str = _DEFAULT.exceptions_git
    exceptions_files: str = _DEFAULT.exceptions_files
    exceptions_branch: str = _DEFAULT.exceptions_branch
    tickets_repo: str = _DEFAULT.tickets_repo
    tickets_label: str = _DEFAULT.tickets_label
    tickets_query: str = _DEFAULT.tickets_query
    kev_url: str = _DEFAULT.kev_url
    epss_url: str = _DEFAULT.epss_url
    parquet_dir: str = _DEFAULT.parquet_dir
    signing_key: str = _DEFAULT.signing_key
    iceberg_catalog: str = _DEFAULT.iceberg_catalog
    iceberg_warehouse: str = _DEFAULT.iceberg_warehouse
    iceberg_namespace: str = _DEFAULT.iceberg_namespace
    s3_endpoint: str = _DEFAULT.s3_endpoint
    s3_region: str = _DEFAULT.s3_region
    duckdb_memory: str = _DEFAULT.duckdb_memory


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse. Not dagster-duckdb's DuckDBResource: this one creates and upgrades the schema
    and waits (with a message) while another process holds DuckDB's single-writer lock."""
    settings: dg.ResourceDependency[IfcScanSettings]

    @contextlib.contextmanager
    def connection(self, read_only: bool = False, log=None):
        with connect(self.settings.warehouse, read_only=read_only, on_wait=log,
                     memory_limit=self.settings.duckdb_memory) as con:
            yield con


def settings_from_env() -> IfcScanSettings:
    """Each field from its environment variable (as dg.EnvVar, resolved at launch) when set, else its default."""
    values = {name: (dg.EnvVar(var) if os.environ.get(var) else default) for name, (var, default) in ENV.items()}
    return IfcScanSettings(**values)


def resources_for(settings: IfcScanSettings) -> dict:
    return {"settings": settings, "warehouse": WarehouseResource(settings=settings)}


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=resources_for(settings_from_env()))
