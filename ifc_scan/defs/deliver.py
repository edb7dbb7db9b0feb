"""Deliver: a published week by email, webhook and PagerDuty (ifc_scan/deliver.py). A sensor reacts to each
new weekly_report materialization; the job sends what is configured and records it. Nothing is configured by
default, so the sensor skips and says why."""

import dagster as dg

from ifc_scan.defs.resources import IfcScanSettings, WarehouseResource
from ifc_scan.deliver import Channels, deliver_week
from ifc_scan.policy import load_policy
from ifc_scan.timeutil import parse_week, week_label


class DeliverConfig(dg.Config):
    week: str          # the weekly_report partition key (its Monday) or YYYY-Www
    force: bool = False


@dg.op(description="Send one published week on every configured channel; each delivery is recorded in the "
                   "warehouse's deliveries table and retried a bounded number of times.")
def deliver_published_week(context: dg.OpExecutionContext, config: DeliverConfig, settings: IfcScanSettings,
                           warehouse: WarehouseResource) -> None:
    week = config.week if "W" in config.week else week_label(parse_week(config.week))
    policy = load_policy(settings.policy or None)
    with warehouse.connection(log=context.log.info) as con:
        done = deliver_week(con, settings.reports, week, policy, force=config.force, log=context.log.info)
    failed = [d for d in done if d["result"] == "failed"]
    for d in done:
        context.log.info(f"{d['kind']} via {d['channel']}: {d['result']}")
    if failed:
        raise dg.Failure(description=f"{len(failed)} delivery(ies) failed after retries",
                         metadata={"failed": dg.MetadataValue.json(failed)})


@dg.job(description="Deliver a published week (email, webhook, PagerDuty), as configured.")
def deliver_job():
    deliver_published_week()


@dg.asset_sensor(asset_key=dg.AssetKey("weekly_report"), job=deliver_job, minimum_interval_seconds=60,
                 default_status=dg.DefaultSensorStatus.RUNNING,
                 description="When a week is published (weekly_report), deliver it if a channel is configured; only "
                             "weeks that ended within the policy's delivery.fresh_days (default 8) are sent, so "
                             "backfills send nothing.")
def delivery_sensor(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    policy = load_policy()
    if not Channels.from_policy(policy).configured():
        return dg.SkipReason("no delivery channel configured (policy delivery: or IFC_SCAN_SMTP_HOST, "
                             "IFC_SCAN_WEBHOOK_URL, IFC_SCAN_PAGERDUTY_ROUTING_KEY)")
    mat = asset_event.asset_materialization
    partition = mat.partition if mat is not None else None
    if not partition:
        return dg.SkipReason("a weekly_report event without a partition")
    return dg.RunRequest(run_key=f"deliver:{partition}:{asset_event.timestamp}",
                         run_config={"ops": {"deliver_published_week": {"config": {"week": partition}}}})
