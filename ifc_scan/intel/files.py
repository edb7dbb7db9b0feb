"""KEV and EPSS files as their publishers write them: where they land, what they must look like, how much
they may weigh. The one reading used by ingest (ingest/sources/kev.py, epss.py), the collector (a download is
checked before it is written), the gate (`--kev FILE`) and the demo.

Landing zone (each file's date D is its folder's; a file dated D is known from D 00:00 UTC, intel/asof.py):
  enrichment/kev/<D>/known_exploited_vulnerabilities.json   CISA's catalog, as published
  enrichment/epss/<D>/epss_scores-<D>.csv.gz                FIRST's daily scores, as published

KEV (https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json, schema
known_exploited_vulnerabilities_schema.json): {"title", "catalogVersion", "dateReleased", "count",
"vulnerabilities": [{"cveID", "vendorProject", "product", "vulnerabilityName", "dateAdded",
"shortDescription", "requiredAction", "dueDate", "knownRansomwareCampaignUse", "notes", "cwes"}]}.
EPSS (https://epss.empiricalsecurity.com/epss_scores-current.csv.gz, FIRST's EPSS v4): a first line
`#model_version:v2025.03.14,score_date:2026-05-18T00:00:00Z` (older files: `+0000`), the header
`cve,epss,percentile`, then one row per CVE; about 300,000 rows, ~2 MB compressed, ~10 MB inflated.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, NamedTuple

from ifc_scan.intel.aliases import CVE_ID
from ifc_scan.timeutil import BadTimestamp, parse_date, parse_ts
from ifc_scan.zip_budget import FLOOR, MAX_RATIO

KEV_FOLDER, EPSS_FOLDER = "enrichment/kev", "enrichment/epss"
KEV_NAME = "known_exploited_vulnerabilities.json"
# Limits (the one definition): CISA's catalog is ~1.5 MB with ~1,500 entries; FIRST's file ~2 MB gzip, ~10 MB CSV.
MAX_KEV_BYTES = 32 * 1024 * 1024
MAX_KEV_ENTRIES = 100_000
MAX_EPSS_GZ_BYTES = 64 * 1024 * 1024
MAX_EPSS_CSV_BYTES = 256 * 1024 * 1024   # inflated, and never more than zip_budget's MAX_RATIO times the gzip
MAX_EPSS_ROWS = 2_000_000
MAX_LINE = 512                           # a row is ~35 bytes; the first line ~60
FUTURE_SLACK = timedelta(days=1)         # a file dated after tomorrow (UTC) is a clock's or a mirror's error
EPSS_HEADER = "cve,epss,percentile"
# the first line's score_date: a date, or FIRST's midnight time (T00:00:00Z, or +0000 in older files)
_SCORE_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?)?", re.ASCII)
# a decimal in ASCII digits, scientific notation allowed (4.3e-05); never nan, inf or a sign (checked: [0, 1])
_PROBABILITY = re.compile(rb"(?:\d{1,20}(?:\.\d{0,20})?|\.\d{1,20})(?:[eE][-+]?\d{1,3})?", re.ASCII)
_KEV_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


class IntelRejected(Exception):
    """The file is not usable; the message says why (shown to people as is, after the file's name)."""


class KevEntry(NamedTuple):
    cve_id: str
    vendor_project: str | None
    product: str | None
    vulnerability_name: str | None
    date_added: date
    due_date: date | None
    known_ransomware_campaign_use: str | None
    required_action: str | None


class KevCatalog(NamedTuple):
    catalog_version: str | None
    date_released: datetime
    entries: list[KevEntry]


class EpssRead(NamedTuple):
    score_date: date
    model_version: str | None
    rows_read: int
    cves: list[str]            # empty unless the rows were asked for (keep_rows)
    epss: list[float]
    percentile: list[float]


def kev_landing_path(day: date) -> str:
    return f"{KEV_FOLDER}/{day.isoformat()}/{KEV_NAME}"


def epss_landing_path(day: date) -> str:
    return f"{EPSS_FOLDER}/{day.isoformat()}/epss_scores-{day.isoformat()}.csv.gz"


def folder_date(rel: str) -> date:
    """D of enrichment/<kind>/<D>/<file>. Raises IntelRejected."""
    parts = rel.split("/")
    try:
        if len(parts) != 4:
            raise BadTimestamp("not one date folder deep")
        return parse_date(parts[2])
    except BadTimestamp:
        raise IntelRejected(f"not in a YYYY-MM-DD date folder ({parts[0]}/{parts[1] if len(parts) > 1 else '?'}"
                            "/<YYYY-MM-DD>/<file>)") from None


def future_problem(day: date, now: datetime) -> str | None:
    """Why a file dated `day` cannot exist yet at `now` (naive UTC), or None."""
    if day > (now + FUTURE_SLACK).date():
        return f"dated {day}, in the future (now {now:%Y-%m-%d %H:%M} UTC)"
    return None


def _text(value, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise IntelRejected(f"{what} is a {type(value).__name__}, not text")
    return value[:limit]


def _kev_date(value, what: str, required: bool) -> date | None:
    if value in (None, "") and not required:
        return None
    if isinstance(value, str) and value[10:11] == "T" and value.isascii():     # a full ISO time: its date
        try:
            return parse_ts(value).date()
        except (BadTimestamp, AttributeError):
            pass
    if not isinstance(value, str) or not _KEV_DATE.fullmatch(value):
        raise IntelRejected(f"{what} {str(value)[:40]!r} is not a YYYY-MM-DD date")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise IntelRejected(f"{what} {value!r} is not a real date") from None


def _kev_entry(i: int, v) -> KevEntry:
    if not isinstance(v, dict):
        raise IntelRejected(f"vulnerabilities[{i}] is not an object")
    cve = v.get("cveID")
    if not isinstance(cve, str) or not CVE_ID.fullmatch(cve):
        raise IntelRejected(f"vulnerabilities[{i}].cveID {str(cve)[:40]!r} is not a CVE id (CVE-YYYY-NNNN)")
    where = f"vulnerabilities[{i}] ({cve})"
    return KevEntry(cve, _text(v.get("vendorProject"), f"{where}.vendorProject", 200),
                    _text(v.get("product"), f"{where}.product", 200),
                    _text(v.get("vulnerabilityName"), f"{where}.vulnerabilityName", 500),
                    _kev_date(v.get("dateAdded"), f"{where}.dateAdded", True),
                    _kev_date(v.get("dueDate"), f"{where}.dueDate", False),
                    _text(v.get("knownRansomwareCampaignUse"), f"{where}.knownRansomwareCampaignUse", 40),
                    _text(v.get("requiredAction"), f"{where}.requiredAction", 1000))


def _released(value) -> datetime:
    """dateReleased: CISA's time (2026-11-27T17:02:40.0462Z), or a date alone (its midnight, UTC)."""
    try:
        if isinstance(value, str) and _KEV_DATE.fullmatch(value):
            return datetime.combine(parse_date(value), datetime.min.time())
        released = parse_ts(value) if isinstance(value, str) and value.isascii() else None
    except BadTimestamp:
        released = None
    if released is None:
        raise IntelRejected(f"dateReleased {str(value)[:40]!r} is not an ISO 8601 time")
    return released


def parse_kev(data: bytes, file_date: date | None) -> KevCatalog:
    """CISA's catalog bytes -> its entries. file_date: the folder's date D (dateReleased must not be after
    D ends); None for a file judged alone (the gate's --kev). Raises IntelRejected."""
    if len(data) > MAX_KEV_BYTES:
        raise IntelRejected(f"{len(data):,} bytes, over the KEV catalog limit of {MAX_KEV_BYTES:,}")
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise IntelRejected(f"not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("vulnerabilities"), list):
        raise IntelRejected("not CISA's KEV catalog (a JSON object with a vulnerabilities list)")
    vulns = doc["vulnerabilities"]
    if len(vulns) > MAX_KEV_ENTRIES:
        raise IntelRejected(f"{len(vulns):,} entries, over the limit of {MAX_KEV_ENTRIES:,}")
    # `count` is not checked: a catalog trimmed by hand often keeps the published count; the entries stand
    released = _released(doc.get("dateReleased"))
    if file_date is not None and released >= datetime.combine(file_date + timedelta(days=1), datetime.min.time()):
        raise IntelRejected(f"dateReleased {doc['dateReleased'][:40]} is after its folder's day {file_date} ends: "
                            "a catalog cannot be known before it was released")
    entries, seen = [], set()
    for i, v in enumerate(vulns):
        e = _kev_entry(i, v)
        if e.cve_id in seen:
            raise IntelRejected(f"{e.cve_id} is listed twice")
        seen.add(e.cve_id)
        entries.append(e)
    return KevCatalog(_text(doc.get("catalogVersion"), "catalogVersion", 40), released, entries)


def read_kev_file(path: str | Path, file_date: date | None) -> KevCatalog:
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_KEV_BYTES:
        raise IntelRejected(f"{size:,} bytes, over the KEV catalog limit of {MAX_KEV_BYTES:,}")
    with path.open("rb") as fh:
        return parse_kev(fh.read(MAX_KEV_BYTES + 1), file_date)


class _Inflated(io.RawIOBase):
    """A gzip stream's inflated bytes, refused once they pass the budget: a bomb is cut off, not inflated."""

    def __init__(self, compressed: BinaryIO, compressed_size: int):
        self._gz = gzip.GzipFile(fileobj=compressed, mode="rb")
        self.limit = min(MAX_EPSS_CSV_BYTES, MAX_RATIO * compressed_size + FLOOR)
        self.compressed_size = compressed_size
        self.inflated = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self._gz.readinto(memoryview(b)[:65536])
        self.inflated += n
        if self.inflated > self.limit:
            raise IntelRejected(f"{self.compressed_size:,} gzip bytes inflate past {self.limit:,} (the limit: "
                                f"{MAX_RATIO}:1 and at most {MAX_EPSS_CSV_BYTES:,}): a gzip bomb, not read")
        return n


def _epss_value(raw: bytes, what: str, line_no: int) -> float:
    if not _PROBABILITY.fullmatch(raw):
        raise IntelRejected(f"line {line_no}: {what} {raw[:30].decode('latin-1')!r} is not a number in [0, 1]")
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise IntelRejected(f"line {line_no}: {what} {value} is outside [0, 1]")
    return value


def _epss_head(lines, file_date: date | None) -> tuple[date, str | None]:
    first = next(lines, b"").rstrip(b"\r\n").removeprefix(b"\xef\xbb\xbf").decode("ascii", "replace")
    fields = dict(p.split(":", 1) for p in first[1:].split(",") if ":" in p) if first.startswith("#") else {}
    if "score_date" not in fields:
        raise IntelRejected(f"first line {first[:80]!r} is not FIRST's "
                            "'#model_version:<v>,score_date:<YYYY-MM-DD>T00:00:00Z'")
    m = _SCORE_DATE.fullmatch(fields["score_date"].strip())
    try:
        score_date = parse_date(m.group(1) if m else fields["score_date"])
    except BadTimestamp as exc:
        raise IntelRejected(f"score_date in the first line: {exc}") from None
    model = fields.get("model_version", "").strip()[:40] or None
    if file_date is not None and score_date != file_date:
        raise IntelRejected(f"score_date {score_date} in the file's first line is not its name's date {file_date}")
    header = next(lines, b"").rstrip(b"\r\n")
    if header != EPSS_HEADER.encode():
        raise IntelRejected(f"second line {header[:60].decode('latin-1')!r} is not the header {EPSS_HEADER!r}")
    return score_date, model


def read_epss(compressed: BinaryIO, compressed_size: int, file_date: date | None, keep_rows: bool) -> EpssRead:
    """FIRST's gzip CSV, read as a stream (memory: the rows asked for, never the file). Raises IntelRejected."""
    if compressed_size > MAX_EPSS_GZ_BYTES:
        raise IntelRejected(f"{compressed_size:,} bytes, over the EPSS file limit of {MAX_EPSS_GZ_BYTES:,}")
    stream = io.BufferedReader(_Inflated(compressed, compressed_size), buffer_size=65536)
    lines = iter(lambda: stream.readline(MAX_LINE + 1), b"")
    try:
        score_date, model = _epss_head(lines, file_date)
        cves, epss, pct, seen, n = [], [], [], set(), 0
        for n, line in enumerate(lines, start=3):
            if len(line) > MAX_LINE:
                raise IntelRejected(f"line {n}: longer than {MAX_LINE} bytes")
            fields = line.rstrip(b"\r\n").split(b",")
            if len(fields) != 3:
                raise IntelRejected(f"line {n}: {len(fields)} fields, not cve,epss,percentile")
            cve = fields[0].decode("ascii", "replace")
            if not CVE_ID.fullmatch(cve):
                raise IntelRejected(f"line {n}: {cve[:40]!r} is not a CVE id")
            if cve in seen:
                raise IntelRejected(f"line {n}: {cve} is scored twice")
            seen.add(cve)
            e, p = _epss_value(fields[1], "epss", n), _epss_value(fields[2], "percentile", n)
            if keep_rows:
                cves.append(cve)
                epss.append(e)
                pct.append(p)
            if n - 2 > MAX_EPSS_ROWS:
                raise IntelRejected(f"more than {MAX_EPSS_ROWS:,} rows")
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        raise IntelRejected(f"not a whole gzip file ({type(exc).__name__}: {str(exc)[:120]})") from None
    rows = max(n - 2, 0)
    if rows == 0:
        raise IntelRejected("no score rows")
    return EpssRead(score_date, model, rows, cves, epss, pct)


def read_epss_file(path: str | Path, file_date: date | None, keep_rows: bool) -> EpssRead:
    path = Path(path)
    with path.open("rb") as fh:
        return read_epss(fh, path.stat().st_size, file_date, keep_rows)


def epss_name_date(rel: str) -> date:
    """enrichment/epss/<D>/epss_scores-<D>.csv.gz: the folder's date, which the name must repeat."""
    day = folder_date(rel)
    name = rel.rsplit("/", 1)[-1]
    if name != f"epss_scores-{day.isoformat()}.csv.gz":
        raise IntelRejected(f"file name {name[:80]!r} is not epss_scores-{day.isoformat()}.csv.gz (its folder's date)")
    return day
