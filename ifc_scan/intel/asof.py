"""What was known of exploitation at a moment: the one definition of the as-of rule for KEV and EPSS.

A file dated D is known from D 00:00 UTC (D: intel/files.py's path_date, else the catalog's dateReleased or
the EPSS score_date). A week ending T (exclusive) uses the newest KEV catalog and the newest EPSS file with
D < T (of catalogs with the same D, the greatest by files.kev_precedence), and nothing published later,
so a past week never changes when newer files arrive and `verify` recomputes it from the same rows. A KEV entry whose dateAdded is not before T is left
out even if that catalog lists it (a catalog dated before T cannot honestly list it; the conservative reading).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Iterable, NamedTuple

from ifc_scan.timeutil import day_start

from ifc_scan.intel.files import KevFile, kev_precedence


_ONE_DAY = timedelta(days=1)


def known_from(file_date: date) -> datetime:
    """The moment a file dated `file_date` counts as published (naive UTC, like every warehouse time)."""
    return day_start(file_date)


class KevListing(NamedTuple):
    cve_id: str
    date_added: date | None
    due_date: date | None
    known_ransomware_campaign_use: str | None     # "Known" | "Unknown" as CISA writes it
    vendor_project: str | None
    product: str | None
    vulnerability_name: str | None


class EpssScore(NamedTuple):
    cve: str
    epss: float
    percentile: float


class IntelFile(NamedTuple):
    """The file a week's figures used: its date, its version (KEV catalogVersion, EPSS model_version), its path."""
    file_date: date
    version: str | None
    source_path: str


@dataclass
class IntelAsOf:
    """The KEV catalog and the EPSS scores known before `end`; None when no such file had been collected."""
    end: datetime
    kev_catalog: IntelFile | None = None
    epss_file: IntelFile | None = None
    kev: dict[str, KevListing] = field(default_factory=dict)     # by CVE id
    epss: dict[str, EpssScore] = field(default_factory=dict)     # by CVE id (only the CVEs asked for)


def intel_as_of(con, end: datetime, cves: Iterable[str] | None = None) -> IntelAsOf:
    """KEV and EPSS as known before `end`. `cves` limits the EPSS scores read (a day's file has ~300,000 rows);
    None reads every score of the file used."""
    out = IntelAsOf(end=end)
    # D < T as dates: known_from(D) < T  <=>  D < T.date() when T is midnight, D <= T.date() otherwise
    limit = end.date() if end == known_from(end.date()) else end.date() + _ONE_DAY
    newest = con.execute("SELECT catalog_date, date_released, source_path, catalog_version FROM kev_catalogs "
                         "WHERE catalog_date = (SELECT max(catalog_date) FROM kev_catalogs WHERE catalog_date < ?)",
                         (limit,)).fetchall()
    if newest:
        day, _, path, version = max(newest, key=lambda r: kev_precedence(KevFile(*r[:3])))
        out.kev_catalog = IntelFile(day, version, path)
        rows = con.execute(
            "SELECT cve_id, date_added, due_date, known_ransomware_campaign_use, vendor_project, product, "
            "vulnerability_name FROM kev_entries WHERE catalog_date = ? AND source_path = ? "
            "AND (date_added IS NULL OR date_added < ?) ORDER BY cve_id", (day, path, limit)).fetchall()
        out.kev = {r[0]: KevListing(*r) for r in rows}
    epss = con.execute("SELECT score_date, model_version, source_path FROM epss_files WHERE score_date < ? "
                       "AND rows_kept ORDER BY score_date DESC, source_path DESC LIMIT 1", (limit,)).fetchone()
    if epss:
        out.epss_file = IntelFile(*epss)
        if cves is None:
            rows = con.execute("SELECT cve, epss, percentile FROM epss_scores WHERE score_date = ?",
                               (epss[0],)).fetchall()
        else:
            wanted = sorted(set(cves))
            rows = con.execute("SELECT cve, epss, percentile FROM epss_scores WHERE score_date = ? "
                               "AND cve IN (SELECT unnest(?::VARCHAR[]))", (epss[0], wanted)).fetchall() if wanted else []
        out.epss = {r[0]: EpssScore(*r) for r in rows}
    return out
