"""The CVE ids of a finding: the one rule by which a finding matches a KEV entry or an EPSS score.

A finding's CVEs are its vulnerability id when that is a CVE id. Otherwise they are the CVE ids the Trivy
report itself carries for that vulnerability, read at ingest (`report_cve_aliases`, stored in
scan_vulnerabilities.cve_aliases):
- `VendorIDs` entries that are CVE ids;
- `References` URLs that are a CVE's own record page: the URL's last path segment (or its `id=` / `name=`
  query value) is exactly one CVE id, on a CVE record site (NVD, cve.org, MITRE, Aqua's AVD) or a
  distribution's CVE page (SUSE, Red Hat, Ubuntu, Debian, Oracle Linux, Alpine, Amazon Linux, Photon).
What Trivy's output shows (checked on Trivy's integration golden files and the real reports in the corpus):
a distribution advisory that bundles fixes (openSUSE-SU-2024:13065-1) lists the CVEs it fixes as SUSE CVE
pages, and these match; a CVE finding's VendorIDs (DSA-, RHSA-, GHSA-) add nothing (the CVE id already
matches). Not matched: a GHSA, GO-, GMS- or Debian TEMP- id whose report names no CVE record (Trivy reports
such an id only when its database knows no CVE alias, so there is none to match), CVE ids named only in
titles or descriptions, mailing-list or commit URLs, and rows ingested before this rule existed whose file
has left the landing zone (cve_aliases NULL; the others are read again once: ingest/sources/scans.py). A reference to a related CVE's record page
would match too: the report names it as the vulnerability's own, and the gate errs on blocking.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Iterable

CVE_ID = re.compile(r"CVE-\d{4}-\d{4,}", re.ASCII)
# hosts whose pages named by a CVE id are that CVE's record (the www. prefix is ignored)
CVE_RECORD_HOSTS = frozenset((
    "nvd.nist.gov", "cve.org", "cve.mitre.org", "avd.aquasec.com", "suse.com", "access.redhat.com",
    "ubuntu.com", "people.canonical.com", "security-tracker.debian.org", "linux.oracle.com",
    "security.alpinelinux.org", "alas.aws.amazon.com", "explore.alas.aws.amazon.com", "vmware.github.io"))
_NAMES_A_CVE = re.compile(r"cve-\d{4}-\d", re.ASCII | re.IGNORECASE)
# a record page: the CVE id is the URL's last path segment (optionally .html, a trailing slash), or the value
# of its id= or name= query parameter
_CVE = r"cve-\d{4}-\d{4,}"
_RECORD_URL = re.compile(
    rf"https?://(?P<host>[a-z0-9.\-]+)(?::\d+)?/(?:[^?#]*/)?(?:(?P<path_cve>{_CVE})(?:\.html?)?/?(?:[?#].*)?"
    rf"|[^?#]*\?(?:[^#]*&)?(?:id|name)=(?P<query_cve>{_CVE})(?:[&#].*)?)$", re.ASCII | re.IGNORECASE)
MAX_ALIASES = 64          # a report naming more CVEs for one advisory is not read past this many


def is_cve(vulnerability_id: str | None) -> bool:
    return isinstance(vulnerability_id, str) and CVE_ID.fullmatch(vulnerability_id) is not None


@lru_cache(maxsize=65536)
def _cve_of_url(url: str) -> str | None:
    """The CVE id a CVE record page's URL names, else None. Cached: every nightly scan repeats its references."""
    m = _RECORD_URL.match(url)
    if m is None or m.group("host").lower().removeprefix("www.") not in CVE_RECORD_HOSTS:
        return None
    return (m.group("path_cve") or m.group("query_cve")).upper()


def report_cve_aliases(vulnerability_id, references, vendor_ids) -> list[str] | None:
    """What ingest stores for one vulnerability row: None for a CVE id (it is its own alias), else the
    sorted CVE ids of the row's VendorIDs and CVE record references (empty list: none)."""
    if is_cve(vulnerability_id):
        return None
    found = set()
    for v in vendor_ids if isinstance(vendor_ids, list) else ():
        if is_cve(v):
            found.add(v)
    for ref in references if isinstance(references, list) else ():
        if type(ref) is not str or len(ref) > 500 or _NAMES_A_CVE.search(ref) is None:
            continue         # most references name no CVE: not parsed
        cve = _cve_of_url(ref)
        if cve is not None:
            found.add(cve)
        if len(found) >= MAX_ALIASES:
            break
    return sorted(found)


def row_cves(vulnerability_id: str | None, cve_aliases) -> tuple[str, ...]:
    """The CVE ids of one stored row (or a gate's row): its id if a CVE, else its stored aliases."""
    if is_cve(vulnerability_id):
        return (vulnerability_id,)
    return tuple(sorted(set(cve_aliases or ())))


def finding_cves(con, vulnerability_ids: Iterable[str], end: datetime) -> dict[str, tuple[str, ...]]:
    """Each vulnerability id -> its sorted CVE ids, from the scans observed before `end` only (a report
    observed after a week's end cannot change that week). An id with no CVE maps to ()."""
    from ifc_scan.lifecycle.observations import observed_at_by_scan   # the one observed_at rule

    ids = sorted({v for v in vulnerability_ids if isinstance(v, str)})
    out = {v: row_cves(v, None) for v in ids}
    others = [v for v in ids if not is_cve(v)]
    if not others:
        return out
    rows = con.execute(
        "SELECT DISTINCT vulnerability_id, scan_id, cve_aliases FROM scan_vulnerabilities "
        "WHERE vulnerability_id IN (SELECT unnest(?::VARCHAR[])) AND len(cve_aliases) > 0", (others,)).fetchall()
    seen = observed_at_by_scan(con, {r[1] for r in rows})
    found: dict[str, set] = {}
    for vid, scan_id, aliases in rows:
        when = seen.get(scan_id)
        if when is not None and when < end:
            found.setdefault(vid, set()).update(aliases)
    for vid, cves in found.items():
        out[vid] = row_cves(vid, cves)
    return out
