"""Dagster entry point. Every Dagster object lives in ifc_scan/defs/; this only assembles them."""

import dagster as dg

from ifc_scan.defs import assets, automation, checks
from ifc_scan.defs.resources import resources


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.Definitions(assets=dg.load_assets_from_modules([assets]),
                       asset_checks=dg.load_asset_checks_from_modules([checks]),
                       jobs=[automation.weekly_job, automation.ingest_job, automation.collect_job],
                       schedules=[automation.weekly_schedule, automation.collect_github_schedule],
                       sensors=[automation.landing_zone_sensor]),
        resources())
