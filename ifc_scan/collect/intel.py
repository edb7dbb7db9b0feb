"""Collect CISA's KEV catalog and FIRST's EPSS scores into the landing zone, one file per day each.

Both are public files (no token): KEV from CISA's feed, EPSS from FIRST's daily dump (its `-current` URL
redirects to the dated file). The URLs are settings (IFC_SCAN_KEV_URL, IFC_SCAN_EPSS_URL) for a mirror. The
one HTTP client (collect/http.py: https only, also after a redirect; a deadline per request and per
collection; a size cap; URLs redacted) with bounded retries on network errors, 429 and 5xx.

Each answer is read by the ingest's own reader (intel/files.py) before anything is written: a bad answer is
refused, named with its reason, and not written. The day D is the file's own: the KEV catalog's
dateReleased (UTC date), the EPSS file's score_date. Written atomically to
enrichment/kev/<D>/known_exploited_vulnerabilities.json and enrichment/epss/<D>/epss_scores-<D>.csv.gz.
A day's file already there is kept, unless a KEV catalog of the same day was released later (CISA
sometimes publishes twice a day): then the later one replaces it.
"""

from __future__ import annotations

import io
import time
import urllib.parse
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from ifc_scan.collect.github import inside, write_atomic
from ifc_scan.collect.http import (DeadlineExceeded, HttpClient, HttpError, Limits, UnsafeURL, redact_url,
                                   retry_after_seconds)
from ifc_scan.intel.files import (MAX_EPSS_GZ_BYTES, MAX_KEV_BYTES, IntelRejected, epss_landing_path,
                                  future_problem, kev_landing_path, parse_kev, read_epss)
from ifc_scan.settings import Settings

KEV_URL, EPSS_URL = Settings().kev_url, Settings().epss_url      # the defaults of the settings table
MAX_RETRIES = 3
MAX_REDIRECTS = 5


class FetchFailed(Exception):
    pass


@dataclass
class Fetched:
    """One source's outcome: written | unchanged | kept | refused | failed."""
    source: str
    url: str                   # redacted
    outcome: str
    path: str | None = None
    day: str | None = None
    reason: str | None = None


def _backoff(attempt: int) -> float:
    return min(2 ** attempt * 0.5, 30.0)


def _answer(http: HttpClient, url: str, max_bytes: int, sleep, log) -> bytes:
    """GET with manual redirects (each hop checked), bounded retries. Raises FetchFailed."""
    attempt = 0
    for _hop in range(MAX_REDIRECTS + 1):
        while True:
            try:
                ans = http.send("GET", url, max_bytes=max_bytes)
            except (DeadlineExceeded, UnsafeURL) as exc:
                raise FetchFailed(str(exc)) from None
            except HttpError as exc:
                if attempt >= MAX_RETRIES:
                    raise FetchFailed(str(exc)) from None
                attempt += 1
                log(f"collect intel: {exc}; retry {attempt}")
                sleep(_backoff(attempt))
                continue
            if ans.status in (301, 302, 303, 307, 308) and ans.headers.get("location"):
                url = urllib.parse.urljoin(url, ans.headers["location"])
                try:
                    http.check(url)
                except HttpError as exc:
                    raise FetchFailed(f"redirect {exc}") from None
                break
            if 200 <= ans.status < 300:
                return ans.body
            if (ans.status == 429 or ans.status >= 500) and attempt < MAX_RETRIES:
                attempt += 1
                wait = retry_after_seconds(ans.headers.get("retry-after"), http.limits.max_wait,
                                           default=_backoff(attempt))
                if wait >= http.collection.remaining():
                    raise FetchFailed(f"{redact_url(url)} answered {ans.status}; a wait of {wait:.0f} s would "
                                      "pass the collection's deadline")
                log(f"collect intel: {redact_url(url)} answered {ans.status}; retry {attempt} in {wait:.0f} s")
                sleep(wait)
                continue
            raise FetchFailed(f"{redact_url(url)} answered {ans.status}")
    raise FetchFailed(f"more than {MAX_REDIRECTS} redirects from {redact_url(url)}")


def _kev(body: bytes, landing: Path, now: datetime) -> tuple[str, str, str]:
    """(outcome, landing path, day) of a KEV answer. Raises IntelRejected."""
    catalog = parse_kev(body, None)
    day = catalog.date_released.date()
    if future_problem(day, now):
        raise IntelRejected(f"dateReleased {catalog.date_released.isoformat()}Z is in the future")
    rel = kev_landing_path(day)
    target = inside(landing, *rel.split("/"))
    if target.is_file():
        old = target.read_bytes()
        if old == body:
            return "unchanged", rel, day.isoformat()
        try:
            if parse_kev(old, day).date_released >= catalog.date_released:
                return "kept", rel, day.isoformat()      # the day's file is as new or newer
        except IntelRejected:
            pass                                         # a bad file of the day is replaced by a good one
    write_atomic(target, body)
    return "written", rel, day.isoformat()


def _epss(body: bytes, landing: Path, now: datetime) -> tuple[str, str, str]:
    read = read_epss(io.BytesIO(body), len(body), None, keep_rows=False)
    if future_problem(read.score_date, now):
        raise IntelRejected(f"score_date {read.score_date} is in the future")
    rel = epss_landing_path(read.score_date)
    target = inside(landing, *rel.split("/"))
    if target.is_file():
        return ("unchanged" if target.read_bytes() == body else "kept"), rel, read.score_date.isoformat()
    write_atomic(target, body)
    return "written", rel, read.score_date.isoformat()


SOURCES = {"kev": (MAX_KEV_BYTES, _kev), "epss": (MAX_EPSS_GZ_BYTES, _epss)}


def collect_intel(landing: str | Path, *, kev_url: str = KEV_URL, epss_url: str = EPSS_URL,
                  only: tuple[str, ...] = ("kev", "epss"), now: datetime | None = None, sleep=time.sleep,
                  log=None, limits: Limits | None = None, ca_file: str | None = None) -> list[Fetched]:
    """Fetch, check and write each source; one source failing does not stop the other."""
    landing, log = Path(landing), log or (lambda m: None)
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    urls = {"kev": kev_url, "epss": epss_url}
    http = HttpClient(limits or Limits().from_env(), user_agent="ifc-scan-collector",
                      configured_urls=[urls[s] for s in only], ca_file=ca_file)
    out = []
    for source in only:
        max_bytes, store = SOURCES[source]
        shown = redact_url(urls[source])
        try:
            http.check(urls[source])
            body = _answer(http, urls[source], max_bytes, sleep, log)
        except (FetchFailed, HttpError) as exc:
            out.append(Fetched(source, shown, "failed", reason=str(exc)))
            log(f"collect intel: {source}: failed: {exc}")
            continue
        try:
            outcome, rel, day = store(body, landing, now)
        except IntelRejected as exc:
            out.append(Fetched(source, shown, "refused", reason=f"not written: {exc}"))
            log(f"collect intel: {source}: refused, not written: {exc}")
            continue
        out.append(Fetched(source, shown, outcome, rel, day))
        log(f"collect intel: {source}: {outcome} {rel}")
    return out


def as_dicts(fetched: list[Fetched]) -> list[dict]:
    return [asdict(f) for f in fetched]
