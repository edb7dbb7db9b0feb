"""The audit-period evidence pack as an asset launchable from the UI with the period as config
(Materialize -> Open launchpad: period_from / period_to). Wiring only: ifc_scan/report/period.py."""

from pathlib import Path

import dagster as dg

from ifc_scan.defs.resources import IfcScanSettings
from ifc_scan.report.period import DEFAULT_SAMPLE, publish_period
from ifc_scan.report.period_figures import period_bounds


class PeriodConfig(dg.Config):
    period_from: str = "2026-01"      # YYYY-MM, YYYY-Www or YYYY-MM-DD
    period_to: str = "2026-12"        # inclusive
    sample: int = DEFAULT_SAMPLE
    seed: int | None = None           # default: derived from the period's weekly manifests
    verify: bool = True               # False: the pack is stamped UNVERIFIED on every page
    allow_unverified: bool = False    # True: weeks that fail verification are used, the pack stamped UNVERIFIED


@dg.asset(group_name="audit", kinds={"html"}, owners=["team:security-engineering"], deps=["weekly_report"],
          description="The audit-period evidence pack (reports/periods/FROM_TO/ and its zip): each control and "
                      "policy target week by week, SLA and time to remediate over the period, continuity, "
                      "exceptions, deploys, a seeded sample and the verification of every week; read from "
                      "the published weekly reports only.")
def audit_period_pack(context: dg.AssetExecutionContext, config: PeriodConfig,
                      settings: IfcScanSettings) -> dg.MaterializeResult:
    start, end = period_bounds(config.period_from, config.period_to)
    out, pack, failed, stamp = publish_period(
        Path(settings.reports), start, end, signing_key=settings.signing_key, landing=Path(settings.landing),
        verify=config.verify, allow_unverified=config.allow_unverified, sample_size=config.sample, seed=config.seed,
        progress=context.log.info)
    context.log.info(f"period pack {out} ({pack.figures['verdict']}){': ' + stamp if stamp else ''}")
    if failed and not config.allow_unverified:      # the pack is written and says so on every page; the run fails
        raise dg.Failure(description=stamp, metadata={"pack_path": dg.MetadataValue.path(str(out.resolve())),
                                                      "weeks_failed_verification": dg.MetadataValue.json(failed)})
    return dg.MaterializeResult(metadata={
        "period": f"{start} to {end}", "verdict": pack.figures["verdict"],
        "weeks_published": len(pack.published), "weeks_missing": dg.MetadataValue.json(pack.missing),
        "sample_seed": pack.sample["seed"], "evidence_grade": stamp is None, "pack_path": dg.MetadataValue.path(str(out.resolve())),
        "zip_path": dg.MetadataValue.path(str(out.with_suffix(".zip").resolve()))})


period_job = dg.define_asset_job("period_job", selection=["audit_period_pack"],
                                 description="Write the audit-period evidence pack for the configured period.")
