"""KEV and EPSS files as their publishers write them: where they land, what they must look like, how much
they may weigh. The one reading used by ingest (ingest/sources/kev.py, epss.py), the collector (a download is
checked before it is written), the gate (`--kev FILE`) and the demo.

Landing zone (a file dated D is known from D 00:00 UTC, intel/asof.py). The collector writes
  enrichment/kev/<D>/known_exploited_vulnerabilities.json   CISA's catalog, as published
  enrichment/epss/<D>/epss_scores-<D>.csv.gz                FIRST's daily scores, as published
and ingest and the gate also read the layouts people and mirrors use (is_kev_path, is_epss_path): any
`*.json` under enrichment/kev/ or `known_exploited_vulnerabilities*.json` anywhere under enrichment/; any
`*.csv.gz` or `*.csv` under enrichment/epss/ or `epss_scores-*.csv(.gz)` anywhere under enrichment/.
A file's date D (the one rule: path_date, then read_kev_landing / read_epss_landing): the nearest YYYY-MM-DD
folder of its path, else the one YYYY-MM-DD in its name (the two must agree when both are there), else the
file's own date: the UTC date of a catalog's dateReleased, an EPSS file's first-line score_date (which must
agree with the path's date when both are there). Of two files with the same D the one used is the greater
by kev_precedence / epss_precedence (a later dateReleased, then the path that sorts last); the weekly
figures (intel/asof.py) and the gate (newest_landing_kev) choose alike.

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
_DATE_IN_NAME = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)", re.ASCII)
KEV_NAME_PREFIX, EPSS_NAME_PREFIX = "known_exploited_vulnerabilities", "epss_scores-"


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


class PathDate(NamedTuple):
    """The date a landing path gives its file, and where it comes from (as messages name it)."""
    day: date | None
    source: str | None          # "its folder's date" | "its name's date" | None (no date in the path)


class DatedKev(NamedTuple):
    file_date: date             # D: the path's date, else the UTC date of the catalog's dateReleased
    catalog: KevCatalog


class KevFile(NamedTuple):
    """A catalog as the choice between catalogs sees it (the warehouse's kev_catalogs, the gate's landing zone)."""
    file_date: date
    date_released: datetime
    path: str


def kev_precedence(f: KevFile) -> tuple:
    """Of catalogs with the same D, the one used is the greatest: the later dateReleased (CISA sometimes
    publishes twice a day), then the path that sorts last (code point order), so a copy is chosen the same
    way every time."""
    return (f.file_date, f.date_released, f.path)


def epss_precedence(file_date: date, path: str) -> tuple:
    """Of EPSS files with the same D (copies in two folders), the one whose path sorts last is used."""
    return (file_date, path)


def _name(rel: str) -> str:
    return rel.rsplit("/", 1)[-1]


def is_kev_path(rel: str) -> bool:
    """A KEV catalog's landing path: any *.json under enrichment/kev/, or known_exploited_vulnerabilities*.json
    anywhere under enrichment/. A hidden name is a collector's file being written (collect/intel.py)."""
    name = _name(rel).lower()
    return (rel.startswith("enrichment/") and not name.startswith(".") and name.endswith(".json")
            and (rel.startswith(KEV_FOLDER + "/") or name.startswith(KEV_NAME_PREFIX)))


def is_epss_path(rel: str) -> bool:
    """An EPSS file's landing path: any *.csv.gz or *.csv under enrichment/epss/, or epss_scores-*.csv(.gz)
    anywhere under enrichment/."""
    name = _name(rel).lower()
    return (rel.startswith("enrichment/") and not name.startswith(".") and name.endswith((".csv", ".csv.gz"))
            and (rel.startswith(EPSS_FOLDER + "/") or name.startswith(EPSS_NAME_PREFIX)))


def _real_date(text: str, where: str) -> date:
    try:
        return parse_date(text)
    except BadTimestamp:
        raise IntelRejected(f"{where} {text} is not a real date") from None


def path_date(rel: str) -> PathDate:
    """D as the path gives it: the nearest YYYY-MM-DD folder (the deepest), else the one YYYY-MM-DD in the
    file's name; both there and different, or an impossible date: rejected. Raises IntelRejected."""
    parts = rel.split("/")
    folder = next((p for p in reversed(parts[1:-1]) if _KEV_DATE.fullmatch(p)), None)
    in_name = sorted(set(_DATE_IN_NAME.findall(parts[-1])))
    if len(in_name) > 1:
        raise IntelRejected(f"its name has {len(in_name)} dates ({', '.join(in_name)}), not one")
    folder_day = _real_date(folder, "its folder's date") if folder else None
    name_day = _real_date(in_name[0], "its name's date") if in_name else None
    if folder_day and name_day and folder_day != name_day:
        raise IntelRejected(f"its name's date {name_day} is not its folder's date {folder_day}")
    if folder_day:
        return PathDate(folder_day, "its folder's date")
    return PathDate(name_day, "its name's date" if name_day else None)


def kev_landing_path(day: date) -> str:
    return f"{KEV_FOLDER}/{day.isoformat()}/{KEV_NAME}"


def epss_landing_path(day: date) -> str:
    return f"{EPSS_FOLDER}/{day.isoformat()}/epss_scores-{day.isoformat()}.csv.gz"


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
    if isinstance(value, str) and value[10:11] == "T" and value.isascii():     # a full ISO time: its written date
        try:
            parse_ts(value)             # a real time, whatever its offset; its date is the one written, not UTC's
            value = value[:10]
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
    added = _kev_date(v.get("dateAdded"), f"{where}.dateAdded", True)
    due = _kev_date(v.get("dueDate"), f"{where}.dueDate", False)
    if due is not None and due < added:       # due before it was listed: a corrupt entry, never a past-due finding
        raise IntelRejected(f"{where}.dueDate {due} is before its dateAdded {added}")
    return KevEntry(cve, _text(v.get("vendorProject"), f"{where}.vendorProject", 200),
                    _text(v.get("product"), f"{where}.product", 200),
                    _text(v.get("vulnerabilityName"), f"{where}.vulnerabilityName", 500),
                    added, due,
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


def parse_kev(data: bytes, file_date: date | None, dated_by: str = "its folder's date") -> KevCatalog:
    """CISA's catalog bytes -> its entries. file_date: the date its path gives it (dateReleased must not be
    after that day ends; dated_by names where it comes from); None for a file without one. Raises IntelRejected."""
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
        raise IntelRejected(f"dateReleased {doc['dateReleased'][:40]} is after {dated_by} {file_date} ends: "
                            "a catalog cannot be known before it was released")
    entries, seen = [], set()
    for i, v in enumerate(vulns):
        e = _kev_entry(i, v)
        if e.cve_id in seen:
            raise IntelRejected(f"{e.cve_id} is listed twice")
        seen.add(e.cve_id)
        entries.append(e)
    return KevCatalog(_text(doc.get("catalogVersion"), "catalogVersion", 40), released, entries)


def read_kev_file(path: str | Path, file_date: date | None, dated_by: str = "its folder's date") -> KevCatalog:
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_KEV_BYTES:
        raise IntelRejected(f"{size:,} bytes, over the KEV catalog limit of {MAX_KEV_BYTES:,}")
    with path.open("rb") as fh:
        return parse_kev(fh.read(MAX_KEV_BYTES + 1), file_date, dated_by)


def read_kev_landing(rel: str, abspath: str | Path, now: datetime) -> DatedKev:
    """A landing-zone catalog and its date D (the path's, else its dateReleased's UTC date), not after
    tomorrow. Raises IntelRejected (and OSError)."""
    dated = path_date(rel)
    catalog = read_kev_file(abspath, dated.day, dated.source or "")
    day = dated.day or catalog.date_released.date()
    problem = future_problem(day, now)
    if problem:
        raise IntelRejected(problem)
    return DatedKev(day, catalog)


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


class _EpssHead(NamedTuple):
    score_date: date
    model_version: str | None
    first_row_line: int         # 3 after FIRST's comment line and the header; 2 after the header alone


MAX_COMMENT_LINES = 4           # FIRST writes one; a mirror may split it in two (#model_version, #score_date)


def _epss_comments(lines) -> tuple[dict[str, str], bytes, int]:
    """The `key:value` fields of the leading `#` lines, the first line that is not one, and its number."""
    fields: dict[str, str] = {}
    for n in range(1, MAX_COMMENT_LINES + 2):
        line = next(lines, b"").rstrip(b"\r\n")
        if n == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if not line.startswith(b"#") or n > MAX_COMMENT_LINES:
            return fields, line, n
        text = line.decode("ascii", "replace")
        fields.update((k.strip(), v) for k, v in (p.split(":", 1) for p in text[1:].split(",") if ":" in p))
    raise AssertionError("unreachable")


def _epss_head(lines, file_date: date | None, dated_by: str = "its name's date") -> _EpssHead:
    """FIRST's first line (`#model_version:...,score_date:...`) and the header. A file without the score_date
    (v1/v2-era files and mirrors start at the header) is read when its path dates it; model_version then NULL
    unless a `#model_version:` line says it."""
    fields, header, header_line = _epss_comments(lines)
    model = fields.get("model_version", "").strip()[:40] or None
    if header != EPSS_HEADER.encode():
        raise IntelRejected(f"line {header_line} {header[:80].decode('latin-1')!r} is not the header {EPSS_HEADER!r}"
                            if header_line > 1 else
                            f"first line {header[:80].decode('latin-1')!r} is neither FIRST's "
                            f"'#model_version:<v>,score_date:<YYYY-MM-DD>T00:00:00Z' nor the header {EPSS_HEADER!r}")
    if "score_date" not in fields:
        if file_date is None:
            raise IntelRejected(f"no score_date: the file has no FIRST '#model_version:<v>,score_date:<YYYY-MM-DD>' "
                                "line and no YYYY-MM-DD folder or name dates it")
        return _EpssHead(file_date, model, header_line + 1)
    m = _SCORE_DATE.fullmatch(fields["score_date"].strip())
    try:
        score_date = parse_date(m.group(1) if m else fields["score_date"])
    except BadTimestamp as exc:
        raise IntelRejected(f"score_date in the first line: {exc}") from None
    if file_date is not None and score_date != file_date:
        raise IntelRejected(f"score_date {score_date} in the file's first line is not {dated_by} {file_date}")
    return _EpssHead(score_date, model, header_line + 1)


def _epss_lines(fh: BinaryIO, size: int, gzipped: bool):
    """The file's lines, each cut at MAX_LINE + 1 bytes; a gzip file inflated within its budget, a plain CSV
    within MAX_EPSS_CSV_BYTES (the inflated budget). Raises IntelRejected."""
    if gzipped and size > MAX_EPSS_GZ_BYTES:
        raise IntelRejected(f"{size:,} bytes, over the EPSS file limit of {MAX_EPSS_GZ_BYTES:,}")
    if not gzipped and size > MAX_EPSS_CSV_BYTES:
        raise IntelRejected(f"{size:,} bytes, over the uncompressed EPSS file limit of {MAX_EPSS_CSV_BYTES:,}")
    stream = io.BufferedReader(_Inflated(fh, size), buffer_size=65536) if gzipped else fh
    return iter(lambda: stream.readline(MAX_LINE + 1), b"")


def read_epss(compressed: BinaryIO, compressed_size: int, file_date: date | None, keep_rows: bool,
              dated_by: str = "its name's date", gzipped: bool = True) -> EpssRead:
    """FIRST's CSV (gzip, or plain when not gzipped), read as a stream (memory: the rows asked for, never the
    file). file_date: the date its path gives it (dated_by: where from), None when it gives none; the score
    date is then the first line's. Raises IntelRejected."""
    try:
        lines = _epss_lines(compressed, compressed_size, gzipped)
        head = _epss_head(lines, file_date, dated_by)
        cves, epss, pct, seen, n = [], [], [], set(), head.first_row_line - 1
        for n, line in enumerate(lines, start=head.first_row_line):
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
            if n - head.first_row_line + 1 > MAX_EPSS_ROWS:
                raise IntelRejected(f"more than {MAX_EPSS_ROWS:,} rows")
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as exc:
        raise IntelRejected(f"not a whole gzip file ({type(exc).__name__}: {str(exc)[:120]})") from None
    rows = n - head.first_row_line + 1
    if rows == 0:
        raise IntelRejected("no score rows")
    return EpssRead(head.score_date, head.model_version, rows, cves, epss, pct)


def _gzipped(path: str | Path) -> bool:
    return str(path).lower().endswith(".gz")


def read_epss_file(path: str | Path, file_date: date | None, keep_rows: bool,
                   dated_by: str = "its name's date") -> EpssRead:
    path = Path(path)
    with path.open("rb") as fh:
        return read_epss(fh, path.stat().st_size, file_date, keep_rows, dated_by, _gzipped(path))


def read_epss_landing(rel: str, abspath: str | Path, keep_rows: bool) -> EpssRead:
    """A landing-zone EPSS file; its score_date is its D (the path's date, else the first line's). Raises
    IntelRejected (and OSError)."""
    dated = path_date(rel)
    return read_epss_file(abspath, dated.day, keep_rows, dated.source or "")


def epss_file_date(rel: str, abspath: str | Path, now: datetime) -> date:
    """D of a landing-zone EPSS file without reading its rows: the path's date, else its first line's
    score_date; not after tomorrow. Raises IntelRejected (and OSError)."""
    day = path_date(rel).day
    if day is None:
        path = Path(abspath)
        try:
            with path.open("rb") as fh:
                day = _epss_head(_epss_lines(fh, path.stat().st_size, _gzipped(path)), None).score_date
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise IntelRejected(f"not a whole gzip file ({type(exc).__name__}: {str(exc)[:120]})") from None
    problem = future_problem(day, now)
    if problem:
        raise IntelRejected(problem)
    return day


class LandingKev(NamedTuple):
    path: Path
    dated: DatedKev


def newest_landing_kev(landing: str | Path, last_day: date, now: datetime) -> LandingKev | None:
    """The catalog a week would use of those in a landing zone dated on or before `last_day`: the greatest by
    kev_precedence among the readable ones (a catalog the reader rejects is passed over, as ingest rejects it).
    Reads only what can be the newest: every catalog without a date in its path, then the catalogs of the
    latest path dates until one is readable."""
    root = Path(landing)
    path_days: dict[str, date | None] = {}
    for p in sorted((root / "enrichment").rglob("*")) if (root / "enrichment").is_dir() else []:
        rel = p.relative_to(root).as_posix()
        if is_kev_path(rel) and p.is_file() and not p.is_symlink():
            try:
                path_days[rel] = path_date(rel).day
            except IntelRejected:
                continue
    found: list[tuple[KevFile, DatedKev]] = []

    def read(rel: str) -> None:
        try:
            dated = read_kev_landing(rel, root / rel, now)
        except (IntelRejected, OSError):
            return
        if dated.file_date <= last_day:
            found.append((KevFile(dated.file_date, dated.catalog.date_released, rel), dated))

    for rel in [r for r, d in path_days.items() if d is None]:
        read(rel)
    for day in sorted({d for d in path_days.values() if d is not None and d <= last_day}, reverse=True):
        if found and max(f.file_date for f, _ in found) > day:
            break
        for rel in [r for r, d in path_days.items() if d == day]:
            read(rel)
        if found and max(f.file_date for f, _ in found) >= day:
            break
    if not found:
        return None
    chosen, dated = max(found, key=lambda x: kev_precedence(x[0]))
    return LandingKev(root / chosen.path, dated)
