import dagster as dg

from ifc_scan.policy import DEFAULT_POLICY
from ifc_scan.settings import Settings

# Monday-based ISO weeks (day_offset=1); partition keys are the Mondays' dates.
weekly_partitions = dg.WeeklyPartitionsDefinition(start_date=str(DEFAULT_POLICY["week_start"]), day_offset=1,
                                                  end_offset=0)


class IfcScanSettings(dg.ConfigurableResource):
    """Where the landing zone, warehouse, reports and policy are (env: IFC_SCAN_*)."""
    landing: str
    warehouse: str
    reports: str
    policy: str = ""
    github_repo: str = ""
    github_api: str = "https://api.github.com"
    github_token_env: str = "GITHUB_TOKEN"
    collector_state: str = "data/collector/github.json"
    parquet_dir: str = ""


def resources() -> dg.Definitions:
    s = Settings.from_env()
    return dg.Definitions(resources={"settings": IfcScanSettings(landing=s.landing, warehouse=s.warehouse,
                                                                 reports=s.reports, policy=s.policy or "",
                                                                 github_repo=s.github_repo, github_api=s.github_api,
                                                                 github_token_env=s.github_token_env,
                                                                 collector_state=s.collector_state,
                                                                 parquet_dir=s.parquet_dir)})
