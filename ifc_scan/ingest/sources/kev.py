"""enrichment/kev/<D>/known_exploited_vulnerabilities.json: CISA's KEV catalog as published, known from D
(ifc_scan/intel/files.py reads it, intel/asof.py says which catalog a week uses). A new or changed file
replaces its own rows (source_path), even when it is rejected; a file that leaves takes its rows with it."""

from __future__ import annotations

from ifc_scan.ingest.sources.base import Context, EvidenceSource, Plan, ReadEach, Rejection, Removal, Unit
from ifc_scan.intel.files import KEV_FOLDER, KEV_NAME, IntelRejected, folder_date, future_problem, read_kev_file


def read_kev(rel: str, abspath: str):
    """-> (D, KevCatalog) or a Rejection."""
    try:
        day = folder_date(rel)
        if rel.rsplit("/", 1)[-1] != KEV_NAME:
            raise IntelRejected(f"a KEV catalog is named {KEV_NAME}, as CISA publishes it")
        return day, read_kev_file(abspath, day)
    except IntelRejected as exc:
        return Rejection(f"KEV catalog not read: {exc}")
    except OSError as exc:
        return Rejection(f"KEV catalog not read: {type(exc).__name__}: {exc}")


def _future(rel: str, ctx: Context) -> str | None:
    try:
        return future_problem(folder_date(rel), ctx.now)
    except IntelRejected:
        return None                     # the reader names the folder's problem


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
        # a hidden name is a collector's file being written (collect/intel.py): not evidence yet
        return "kev" if rel.startswith(KEV_FOLDER + "/") and not rel.rsplit("/", 1)[-1].startswith(".") else None

    def plan(self, ctx: Context) -> Plan:
        present = {f.rel for f in ctx.all_of(self.kinds)}
        removals = [Removal(f"{rel} (removed)", _deletes(rel), f"ingest: {rel} is no longer in the landing zone: "
                                                               "its KEV entries are dropped")
                    for (rel,) in ctx.con.execute("SELECT source_path FROM kev_catalogs ORDER BY 1").fetchall()
                    if rel not in present]
        plan = Plan(removals=removals)
        for f in ctx.new_of(self.kinds):
            problem = _future(f.rel, ctx)
            if problem:                         # a changed file's old rows go with it
                plan.removals.append(Removal(f"{f.rel} (dated in the future)", _deletes(f.rel)))
                plan.settled.append((f, "rejected", f"KEV catalog not read: {problem}"))
            else:
                plan.units.append(Unit(f.rel, [f], (f.rel, f.abspath)))
        return plan

    def store(self, ctx: Context, unit: Unit, reading) -> int:
        (f,) = unit.files
        ctx.batch.deletes += _deletes(f.rel)
        if isinstance(reading, Rejection):
            ctx.record(f, "rejected", reading.reason)
            return 0
        day, catalog = reading            # (date, KevCatalog)
        ctx.batch.add("kev_catalogs", (day, catalog.catalog_version, catalog.date_released, len(catalog.entries),
                                       f.rel, f.sha256 or None))
        ctx.batch.extend("kev_entries", [(day, e.cve_id, e.vendor_project, e.product, e.vulnerability_name,
                                          e.date_added, e.due_date, e.known_ransomware_campaign_use,
                                          e.required_action, f.rel) for e in catalog.entries])
        ctx.record(f, "ingested")
        return f.size
