"""CISA's KEV catalog as published, known from its date D: enrichment/kev/<D>/known_exploited_vulnerabilities.json
as the collector writes it, or any layout intel/files.py accepts (is_kev_path; D by path_date, else the
catalog's dateReleased). intel/files.py reads it, intel/asof.py says which catalog a week uses. A new or changed
file replaces its own rows (source_path), even when it is rejected; a file that leaves takes its rows with it."""

from __future__ import annotations

from datetime import datetime

from ifc_scan.ingest.sources.base import Context, EvidenceSource, Plan, ReadEach, Rejection, Removal, Unit
from ifc_scan.intel.files import IntelRejected, is_kev_path, read_kev_landing


def read_kev(rel: str, abspath: str, now: datetime):
    """-> DatedKev (D, KevCatalog) or a Rejection."""
    try:
        return read_kev_landing(rel, abspath, now)
    except IntelRejected as exc:
        return Rejection(f"KEV catalog not read: {exc}")
    except OSError as exc:
        return Rejection(f"KEV catalog not read: {type(exc).__name__}: {exc}")


def _deletes(rel: str) -> list[tuple[str, tuple]]:
    return [("DELETE FROM kev_entries WHERE source_path = ?", (rel,)),
            ("DELETE FROM kev_catalogs WHERE source_path = ?", (rel,))]


class KevCatalogs(EvidenceSource):
    name = "KEV catalogs"
    unit_name = "KEV catalogs"
    folder = "enrichment/"
    kinds = ("kev",)
    replaces = "the file's own rows"
    tables = {"kev_catalogs": ["catalog_date", "catalog_version", "date_released", "entries", "source_path",
                               "source_sha256"],
              "kev_entries": ["catalog_date", "cve_id", "vendor_project", "product", "vulnerability_name",
                              "date_added", "due_date", "known_ransomware_campaign_use", "required_action",
                              "source_path"]}
    read = ReadEach(read_kev)

    @staticmethod
    def claims(rel: str) -> str | None:
        return "kev" if is_kev_path(rel) else None

    def plan(self, ctx: Context) -> Plan:
        present = {f.rel for f in ctx.all_of(self.kinds)}
        removals = [Removal(f"{rel} (removed)", _deletes(rel), f"ingest: {rel} is no longer in the landing zone: "
                                                               "its KEV entries are dropped")
                    for (rel,) in ctx.con.execute("SELECT source_path FROM kev_catalogs ORDER BY 1").fetchall()
                    if rel not in present]
        plan = Plan(removals=removals)
        # a file dated in the future is rejected by the reader (its date may be its dateReleased's)
        plan.units += [Unit(f.rel, [f], (f.rel, f.abspath, ctx.now)) for f in ctx.new_of(self.kinds)]
        return plan

    def store(self, ctx: Context, unit: Unit, reading) -> int:
        (f,) = unit.files
        ctx.batch.deletes += _deletes(f.rel)
        if isinstance(reading, Rejection):
            ctx.record(f, "rejected", reading.reason)
            return 0
        day, catalog = reading            # DatedKev
        ctx.batch.add("kev_catalogs", (day, catalog.catalog_version, catalog.date_released, len(catalog.entries),
                                       f.rel, f.sha256 or None))
        ctx.batch.extend("kev_entries", [(day, e.cve_id, e.vendor_project, e.product, e.vulnerability_name,
                                          e.date_added, e.due_date, e.known_ransomware_campaign_use,
                                          e.required_action, f.rel) for e in catalog.entries])
        ctx.record(f, "ingested")
        return f.size
