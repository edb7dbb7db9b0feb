"""Collect GitHub Actions evidence into the landing zone: runs, jobs (all attempts), log archives and
Trivy artifacts, in the layout of design/INPUTS.md (`ci/github-actions/<run_id>/`).

Incremental and polite: a state file remembers completed runs (never fetched again) and the runs still
in progress (fetched again until they complete); pagination is followed; 403/429 rate limits wait for
`Retry-After` or the rate-limit reset; 5xx answers are retried a bounded number of times; a 404 or 410
on an expired log or artifact is recorded as "expired at source", not an error. The token comes from an
environment variable and is sent only to the API host (never to redirect targets), never logged and
never written. Each run folder is built in a hidden temporary folder and renamed into place.

Every request goes through the one HTTP client (ifc_scan/collect/http.py: https only, also after a
redirect; a total deadline per request and per collection). What an answer says is validated before it
is used (ids, times, anything that becomes a path): a bad item is recorded in the summary's `bad_items`
and skipped, the rest collected and the cursor saved; a listing cut short (a page already read, the page
budget, the collection's deadline) holds the cursor; no cursor moves past now.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import stat
import tempfile
import time
import urllib.parse
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ifc_scan.collect.http import (DeadlineExceeded, HttpClient, HttpError, Limits, UnsafeURL, redact_url,
                                   retry_after_seconds)
from ifc_scan.timeutil import BadTimestamp, iso_z, parse_ts
from ifc_scan.zip_budget import BoundedZip, ZipBomb

DEFAULT_WORKFLOWS = ("image-scan.yml", "ci.yml", "cd.yml")
MAX_DOWNLOAD = 512 * 1024 * 1024
MAX_RETRIES = 4


class CollectError(Exception):
    pass


class DeadlinePassed(CollectError):
    """The collection's total deadline passed: stop, keep what was collected, save the cursor."""


class ListingIncomplete(CollectError):
    """Pagination stopped early (a `Link: next` back to a page already read, or the page budget): what was
    listed is collected, but no cursor moves past what was not listed."""


class BadItem(CollectError):
    """One item of an answer fails validation: it is recorded and skipped, the rest is collected."""


@dataclass
class Summary:
    requests: int = 0
    runs_listed: int = 0
    collected: int = 0
    skipped_complete: int = 0
    in_progress: int = 0
    expired: list = field(default_factory=list)
    failed: list = field(default_factory=list)      # "run <id>: reason": not collected, tried again next time
    bad_items: list = field(default_factory=list)   # items of an answer that failed validation: skipped
    incomplete: list = field(default_factory=list)  # listings or the collection stopped early, and why
    retries: int = 0
    waited_seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class GitHubClient:
    """GitHub's rules on top of the one HTTP client: the token only to the API's own origin, redirects
    followed by hand (each hop checked by the client), rate limits and 5xx retried a bounded number of
    times, pagination with a page budget and a seen-page check."""

    def __init__(self, base_url: str, token: str | None, summary: Summary, sleep=time.sleep, log=None,
                 limits: Limits | None = None):
        try:
            self.http = HttpClient(limits or Limits().from_env(), user_agent="ifc-scan-collector",
                                   configured_urls=[base_url])
            api = self.http.check(base_url)
        except HttpError as exc:
            raise CollectError(f"API base URL: {exc}" if isinstance(exc, UnsafeURL) else str(exc)) from None
        self.base = base_url.rstrip("/")
        self.api_origin = (api.scheme, api.hostname, api.port)
        self._token = token
        self.summary, self.sleep, self.log = summary, sleep, log or (lambda m: None)

    def _headers(self, url: str) -> dict:
        h = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        p = urllib.parse.urlsplit(url)
        if self._token and (p.scheme, p.hostname, p.port) == self.api_origin:
            h["Authorization"] = f"Bearer {self._token}"
        return h

    def absolute(self, url: str) -> str:
        return self.base + url if url.startswith("/") else url

    def checked_url(self, value, what: str) -> str:
        """A URL taken from an answer (a download link), refused as a BadItem unless it may be requested."""
        if not isinstance(value, str):
            raise BadItem(f"{what}: no download URL")
        try:
            self.http.check(self.absolute(value))
        except HttpError as exc:
            raise BadItem(f"{what}: download URL {exc}") from None
        return value

    def request(self, url: str, max_bytes: int = MAX_DOWNLOAD, seconds: float | None = None) -> tuple[int, dict, bytes]:
        """GET with retries, rate-limit waits and manual redirects, each try within `seconds` (default: the
        download deadline). Returns (status, headers, body); 404/410 are returned, not raised."""
        url = self.absolute(url)
        attempt = 0
        for _hop in range(6):
            while True:
                self.summary.requests += 1
                try:
                    ans = self.http.send("GET", url, headers=self._headers(url), max_bytes=max_bytes, seconds=seconds)
                except DeadlineExceeded as exc:
                    raise (DeadlinePassed if self.http.collection.passed() else CollectError)(str(exc)) from None
                except HttpError as exc:
                    if isinstance(exc, UnsafeURL) or attempt >= MAX_RETRIES:
                        raise CollectError(str(exc)) from None
                    attempt += 1
                    self.summary.retries += 1
                    self._wait(min(2 ** attempt * 0.5, 30))
                    continue
                if ans.status in (301, 302, 303, 307, 308) and ans.headers.get("location"):
                    url = urllib.parse.urljoin(url, ans.headers["location"])
                    try:
                        self.http.check(url)
                    except HttpError as exc:
                        raise CollectError(f"redirect {exc}") from None
                    break
                if 200 <= ans.status < 300 or ans.status in (404, 410):
                    return ans.status, ans.headers, ans.body if ans.status < 300 else b""
                wait = _rate_limit_wait(ans.status, ans.headers, ans.body[:2000], self.http.limits.max_wait)
                if wait is not None and attempt < MAX_RETRIES:
                    attempt += 1
                    self.summary.retries += 1
                    self.summary.waited_seconds += wait
                    self.log(f"rate limited ({ans.status}); waiting {wait:.0f} s")
                    self._wait(wait)
                    continue
                if 500 <= ans.status < 600 and attempt < MAX_RETRIES:
                    attempt += 1
                    self.summary.retries += 1
                    self.log(f"server error {ans.status} on {redact_url(url)}; retry {attempt}")
                    self._wait(min(2 ** attempt * 0.5, 30))
                    continue
                raise CollectError(f"GitHub answered {ans.status} for {redact_url(url)}")
        raise CollectError(f"too many redirects for {redact_url(url)}")

    def _wait(self, seconds: float) -> None:
        """Sleep, unless the wait would outlast the collection's deadline (then stop now, not later)."""
        if seconds >= self.http.collection.remaining():
            raise DeadlinePassed(f"a wait of {seconds:.0f} s would pass the collection's deadline of "
                                 f"{self.http.collection.seconds:g} s")
        self.sleep(seconds)

    def json(self, url: str):
        status, _h, body = self.request(url, seconds=self.http.limits.answer_seconds)
        if status in (404, 410):
            raise CollectError(f"not found: {redact_url(self.absolute(url))}")
        return json_answer(body, self.absolute(url))

    def pages(self, url: str, key: str | None):
        """Follow Link: rel="next" pagination; yields the items under `key` (None: the answer is a list).
        Stops with ListingIncomplete on a page already read or past the page budget."""
        url, seen = self.absolute(url), set()
        while url:
            if url in seen:
                raise ListingIncomplete(f"Link: next of {redact_url(url)} points back to a page already read")
            if len(seen) >= self.http.limits.max_pages:
                raise ListingIncomplete(f"page budget of {self.http.limits.max_pages} pages reached at "
                                        f"{redact_url(url)}")
            seen.add(url)
            status, headers, body = self.request(url, seconds=self.http.limits.answer_seconds)
            if status in (404, 410):
                raise CollectError(f"not found: {redact_url(url)}")
            doc = json_answer(body, url)
            items = doc if key is None else ((doc.get(key) or []) if isinstance(doc, dict) else None)
            if not isinstance(items, list):
                raise CollectError(f"unexpected answer shape from {redact_url(url)}: no list"
                                   f"{'' if key is None else ' under ' + key}")
            yield from items
            nxt = _next_link(headers.get("link") or "")
            url = urllib.parse.urljoin(url, nxt) if nxt else None


def json_answer(body: bytes, url: str):
    """An answer's JSON; CollectError naming the (redacted) URL when it is not JSON."""
    try:
        return json.loads(body)
    except ValueError as exc:
        raise CollectError(f"{redact_url(url)} did not answer JSON: {str(exc)[:100]}") from None


def _next_link(link: str) -> str | None:
    for part in link.split(","):
        m = re.search(r'<([^>]+)>\s*;\s*rel="next"', part)
        if m:
            return m.group(1)
    return None


def _rate_limit_wait(code: int, headers: dict, body: bytes, cap: float) -> float | None:
    if code not in (403, 429):
        return None
    if headers.get("retry-after"):
        return retry_after_seconds(headers["retry-after"], cap)
    reset = str(headers.get("x-ratelimit-reset") or "")
    if headers.get("x-ratelimit-remaining") == "0" and re.fullmatch(r"[0-9]{1,12}", reset):
        return min(max(float(reset) - time.time(), 1.0), cap)
    if b"rate limit" in body.lower():
        return min(60.0, cap)   # secondary rate limit without Retry-After: GitHub asks for at least a minute
    return None


# ---- what an answer says, validated before it is used ------------------------------------------------

ID_MAX = 2 ** 63 - 1
CLOCK_SKEW = timedelta(minutes=10)   # a server's clock a little ahead of ours is not a forgery


def valid_id(value, what: str) -> int:
    """An id from an answer: an integer in 1..2**63-1 (a string, a float or a bool is refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= ID_MAX:
        raise BadItem(f"{what}: id {value!r:.60} is not an integer in 1..2**63-1")
    return value


def valid_sha(value, what: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-fA-F]{40}", value):
        raise BadItem(f"{what}: sha {value!r:.60} is not 40 hexadecimal digits")
    return value.lower()


def valid_time(value, what: str, now: datetime) -> datetime:
    """An RFC 3339 time from an answer, as naive UTC, not after `now` (beyond a little clock skew)."""
    try:
        t = parse_ts(value)
    except BadTimestamp as exc:
        raise BadItem(f"{what}: {exc}") from None
    if t is None:
        raise BadItem(f"{what}: no time given")
    if t > now + CLOCK_SKEW:
        raise BadItem(f"{what}: dated {value!r:.40}, after now ({iso_z(now)}): refused")
    return t


def inside(root: Path, *parts: str) -> Path:
    """root/parts, refused unless it stays inside root once resolved (.., absolute parts, symlinks)."""
    base = root.resolve()
    target = base.joinpath(*parts).resolve()
    if target == base or not target.is_relative_to(base):
        raise BadItem(f"{'/'.join(parts)!r:.120} would be written outside {root}")
    return root.joinpath(*parts)


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def safe_extract_json(zip_bytes: bytes, dest: Path, pattern: str = "*") -> tuple[list[str], list[str]]:
    """Extract the .json/.sarif members of an artifact zip into dest. Returns (written, refused)."""
    written, refused = [], []
    try:
        zf = BoundedZip(zip_bytes, "artifact zip")
    except (zipfile.BadZipFile, ValueError) as exc:
        raise CollectError(f"artifact is not a valid zip archive: {exc}") from None
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        parts = name.split("/")
        if info.is_dir():
            continue
        if name.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", name) or stat.S_ISLNK(info.external_attr >> 16):
            refused.append(name)
            continue
        if not name.lower().endswith((".json", ".sarif")) or info.file_size > MAX_DOWNLOAD:
            continue
        target = (dest / name).resolve()
        if not str(target).startswith(str(dest.resolve()) + os.sep):
            refused.append(name)
            continue
        bomb = zf.refusal(info)
        if bomb:
            refused.append(f"{name} (not extracted: {bomb})")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:    # the CRC is checked as the member is read to its end; the inflation is bounded as it is read
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
        except (ZipBomb, *ZIP_MEMBER_ERRORS) as exc:   # a bomb, encrypted, Deflate64 or another method, corrupt
            target.unlink(missing_ok=True)
            refused.append(f"{name} (not extracted: {type(exc).__name__}: {str(exc)[:120]})")
            continue
        written.append(name)
    return written, refused


def check_log_archive(body: bytes) -> str | None:
    """Each member read to its end (the CRC checked) within the inflation budget: the first problem, or None.
    A problem is noted and the archive kept: the ingest reads each member alone and says which failed."""
    zf = BoundedZip(body, "logs.zip")
    for info in zf.infolist():
        bomb = zf.refusal(info)
        if bomb:
            return bomb
        try:
            with zf.open(info) as member:
                while member.read():
                    pass
        except (ZipBomb, *ZIP_MEMBER_ERRORS) as exc:
            return f"{info.filename[:200]}: {type(exc).__name__}: {str(exc)[:200]}"
    return None


# what reading one zip member can raise: RuntimeError (encrypted), NotImplementedError (Deflate64 and
# other methods), BadZipFile (CRC), zlib.error and EOFError (truncated data)
ZIP_MEMBER_ERRORS = (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, EOFError, ValueError)


def state_beside(run_collector_state: str | Path, name: str) -> Path:
    """Where another collector keeps its state: a file `name` beside the run collector's state file."""
    return Path(run_collector_state).parent / name


def load_state(path: Path, empty: dict | None = None) -> dict:
    """A collector's state file, or `empty` (the run collector's empty state by default) when there is none."""
    if path.is_file():
        return json.loads(path.read_text())
    return dict(empty) if empty is not None else {"completed": [], "in_progress": [], "since": None}


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old bytes or the new ones, never a part (a hidden temporary
    file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_state(path: Path, state: dict) -> None:
    write_atomic(path, json.dumps(state, indent=1, sort_keys=True).encode())


@dataclass
class _RunPass:
    """What one collection learns about runs, for the cursor it saves."""
    summary: Summary
    completed: set
    still_running: set = field(default_factory=set)
    running_days: list = field(default_factory=list)
    newest_complete: str | None = None
    cursor_held: bool = False          # a listing stopped early: the cursor must not pass what was not listed


def stored_cursor(value, now: datetime, log) -> str | None:
    """A cursor read from a state file; one after now (written before cursors were checked) is dropped,
    so the next listing starts from the beginning (ids already complete are still skipped)."""
    if value and str(value)[:10] > now.date().isoformat():
        log(f"collect: saved cursor {str(value)[:40]!r} is after today; listing from the beginning")
        return None
    return value


def collect(repo: str, landing: str | Path, state_path: str | Path, *, base_url: str = "https://api.github.com",
            token_env: str = "GITHUB_TOKEN", workflows=DEFAULT_WORKFLOWS, since: str | None = None,
            artifact_pattern: str = "trivy-results-*", sleep=time.sleep, log=None, limits: Limits | None = None,
            now: datetime | None = None) -> Summary:
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo):
        raise CollectError(f"repository must be OWNER/NAME, not {repo!r}")
    landing, state_path, log = Path(landing), Path(state_path), log or (lambda m: None)
    now = now or utc_now()
    summary = Summary()
    client = GitHubClient(base_url, os.environ.get(token_env), summary, sleep, log, limits)
    state = load_state(state_path)
    created = since or stored_cursor(state.get("since"), now, log)
    runs_root = landing / "ci" / "github-actions"
    runs_root.mkdir(parents=True, exist_ok=True)
    run_pass = _RunPass(summary, set(state["completed"]))
    try:
        for wf in workflows:
            try:
                _collect_workflow(client, repo, wf, created, runs_root, artifact_pattern, now, run_pass)
            except ListingIncomplete as exc:     # what was listed is collected; the cursor stays
                summary.incomplete.append(f"{wf}: {exc}")
                log(f"collect: listing of {wf} stopped early: {exc}")
                run_pass.cursor_held = True
    except DeadlinePassed as exc:
        summary.incomplete.append(f"collection stopped: {exc}")
        log(f"collect: stopped: {exc}")
        run_pass.cursor_held = True
    # next time, list from the oldest run still running (it must be fetched again once it completes),
    # else from the newest completed run's day; runs already complete are skipped by id. Never past today.
    cursor = created if run_pass.cursor_held else (
        min(run_pass.running_days) if run_pass.running_days else (run_pass.newest_complete or created))
    if cursor and cursor > now.date().isoformat():
        cursor = now.date().isoformat()
    state.update(completed=sorted(run_pass.completed), in_progress=sorted(run_pass.still_running), since=cursor)
    save_state(state_path, state)
    return summary


def _collect_workflow(client: GitHubClient, repo: str, wf: str, created: str | None, runs_root: Path, pattern: str,
                      now: datetime, p: _RunPass) -> None:
    q = {"per_page": "100"}
    if created:
        q["created"] = f">={created}"
    url = f"/repos/{repo}/actions/workflows/{urllib.parse.quote(wf)}/runs?{urllib.parse.urlencode(q)}"
    for run in client.pages(url, "workflow_runs"):
        p.summary.runs_listed += 1
        try:
            if not isinstance(run, dict):
                raise BadItem(f"a listed run is not an object: {str(run)[:60]!r}")
            rid = valid_id(run.get("id"), "run")
            day = valid_time(run.get("created_at"), f"run {rid} created_at", now).date().isoformat()
        except BadItem as exc:           # this run only: recorded, skipped, the others collected
            p.summary.bad_items.append(f"{wf}: {exc}")
            client.log(f"collect: {wf}: skipped: {exc}")
            continue
        if rid in p.completed:
            p.summary.skipped_complete += 1
            continue
        try:
            _collect_run(client, repo, rid, run, runs_root, pattern, p.summary)
        except CollectError as exc:      # this run only: the others are collected, the cursor saved
            p.summary.failed.append(f"run {rid}: {exc}")
            client.log(f"collect: run {rid} not collected: {exc}")
            p.still_running.add(rid)     # listed again next time, like a run in progress
            p.running_days.append(day)
            if isinstance(exc, DeadlinePassed):
                raise
            continue
        if run.get("status") == "completed":
            p.completed.add(rid)
            p.summary.collected += 1
            p.newest_complete = max(p.newest_complete or day, day)
        else:
            p.still_running.add(rid)
            p.running_days.append(day)
            p.summary.in_progress += 1


def _collect_run(client: GitHubClient, repo: str, rid: int, run: dict, runs_root: Path, pattern: str,
                 summary: Summary) -> None:
    final = inside(runs_root, str(rid))
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{rid}-", dir=runs_root))
    try:
        (tmp / "run.json").write_text(json.dumps(run, indent=1))
        jobs = list(client.pages(f"/repos/{repo}/actions/runs/{rid}/jobs?filter=all&per_page=100", "jobs"))
        (tmp / "jobs.json").write_text(json.dumps({"total_count": len(jobs), "jobs": jobs}, indent=1))
        notes = {"expired_at_source": [], "refused_members": []}
        if run.get("status") == "completed":
            status, _h, body = client.request(f"/repos/{repo}/actions/runs/{rid}/logs")
            if status in (404, 410):
                notes["expired_at_source"].append("logs")
                summary.expired.append(f"{rid}/logs")
            else:
                try:
                    bad = check_log_archive(body)
                except (zipfile.BadZipFile, ValueError) as exc:
                    raise CollectError(f"run {rid}: log archive is not a valid zip: {exc}") from None
                if bad:
                    notes.setdefault("log_archive_problems", []).append(str(bad))
                (tmp / "logs.zip").write_bytes(body)
            for art in client.pages(f"/repos/{repo}/actions/runs/{rid}/artifacts?per_page=100", "artifacts"):
                art = art if isinstance(art, dict) else {"name": f"(not an object: {str(art)[:60]})"}
                name = str(art.get("name", ""))
                if not fnmatch.fnmatch(name, pattern):
                    continue
                if art.get("expired"):
                    notes["expired_at_source"].append(f"artifact {name}")
                    summary.expired.append(f"{rid}/{name}")
                    continue
                try:
                    where = inside(tmp / "artifacts", re.sub(r"[^\w.\-]", "_", name)[:100])
                    client.checked_url(art.get("archive_download_url"), f"artifact {name[:100]!r}")
                except BadItem as exc:     # this artifact only: named in collect-notes.json
                    notes.setdefault("bad_items", []).append(str(exc))
                    summary.bad_items.append(f"run {rid}: {exc}")
                    continue
                status, _h, body = client.request(art["archive_download_url"])
                if status in (404, 410):
                    notes["expired_at_source"].append(f"artifact {name}")
                    summary.expired.append(f"{rid}/{name}")
                    continue
                _written, refused = safe_extract_json(body, where)
                notes["refused_members"] += [f"{name}: {m}" for m in refused]
        if notes["expired_at_source"] or notes["refused_members"] or notes.get("bad_items"):
            (tmp / "collect-notes.json").write_text(json.dumps(notes, indent=1))
        if final.exists():           # an in-progress run collected again: swap the folders
            old = runs_root / f".old-{rid}-{os.getpid()}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
