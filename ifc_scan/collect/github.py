"""Collect GitHub Actions evidence into the landing zone: runs, jobs (all attempts), log archives and
Trivy artifacts, in the layout of design/INPUTS.md (`ci/github-actions/<run_id>/`).

Incremental and polite: a state file remembers completed runs (never fetched again) and the runs still
in progress (fetched again until they complete); pagination is followed; 403/429 rate limits wait for
`Retry-After` or the rate-limit reset; 5xx answers are retried a bounded number of times; a 404 or 410
on an expired log or artifact is recorded as "expired at source", not an error. The token comes from an
environment variable and is sent only to the API host (never to redirect targets), never logged and
never written. Each run folder is built in a hidden temporary folder and renamed into place.
"""

from __future__ import annotations

import fnmatch
import io
import json
import os
import re
import shutil
import stat
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_WORKFLOWS = ("image-scan.yml", "ci.yml", "cd.yml")
MAX_DOWNLOAD = 512 * 1024 * 1024
MAX_RETRIES = 4
MAX_WAIT = 900.0          # never sleep longer than this for one rate-limit answer


class CollectError(Exception):
    pass


@dataclass
class Summary:
    requests: int = 0
    runs_listed: int = 0
    collected: int = 0
    skipped_complete: int = 0
    in_progress: int = 0
    expired: list = field(default_factory=list)
    failed: list = field(default_factory=list)      # "run <id>: reason": not collected, tried again next time
    retries: int = 0
    waited_seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None   # redirects are followed by hand, so the token is not forwarded to another host


class GitHubClient:
    def __init__(self, base_url: str, token: str | None, summary: Summary, sleep=time.sleep, log=None):
        self.base = base_url.rstrip("/")
        self.api_host = urllib.parse.urlsplit(self.base).netloc
        self._token = token
        self.summary, self.sleep, self.log = summary, sleep, log or (lambda m: None)
        self.opener = urllib.request.build_opener(_NoRedirect)

    def _headers(self, url: str) -> dict:
        h = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28",
             "User-Agent": "ifc-scan-collector"}
        if self._token and urllib.parse.urlsplit(url).netloc == self.api_host:
            h["Authorization"] = f"Bearer {self._token}"
        return h

    def request(self, url: str, max_bytes: int = MAX_DOWNLOAD) -> tuple[int, dict, bytes]:
        """GET with retries, rate-limit waits and manual redirects. Returns (status, headers, body);
        404/410 are returned, not raised."""
        if not url.startswith("http"):
            url = self.base + url
        attempt = 0
        for _hop in range(5):
            while True:
                self.summary.requests += 1
                req = urllib.request.Request(url, headers=self._headers(url))
                try:
                    with self.opener.open(req, timeout=60) as resp:
                        body = resp.read(max_bytes + 1)
                        if len(body) > max_bytes:
                            raise CollectError(f"download larger than {max_bytes} bytes: {_safe(url)}")
                        return resp.status, dict(resp.headers), body
                except urllib.error.HTTPError as e:
                    headers = dict(e.headers or {})
                    if e.code in (301, 302, 303, 307, 308) and headers.get("Location"):
                        url = urllib.parse.urljoin(url, headers["Location"])
                        break
                    if e.code in (404, 410):
                        return e.code, headers, b""
                    wait = _rate_limit_wait(e.code, headers, e.read()[:2000])
                    if wait is not None and attempt < MAX_RETRIES:
                        attempt += 1
                        self.summary.retries += 1
                        self.summary.waited_seconds += wait
                        self.log(f"rate limited ({e.code}); waiting {wait:.0f} s")
                        self.sleep(wait)
                        continue
                    if 500 <= e.code < 600 and attempt < MAX_RETRIES:
                        attempt += 1
                        self.summary.retries += 1
                        self.log(f"server error {e.code} on {_safe(url)}; retry {attempt}")
                        self.sleep(min(2 ** attempt * 0.5, 30))
                        continue
                    raise CollectError(f"GitHub answered {e.code} for {_safe(url)}") from None
                except urllib.error.URLError as e:
                    if attempt < MAX_RETRIES:
                        attempt += 1
                        self.summary.retries += 1
                        self.sleep(min(2 ** attempt * 0.5, 30))
                        continue
                    raise CollectError(f"cannot reach {_safe(url)}: {e.reason}") from None
        raise CollectError(f"too many redirects for {_safe(url)}")

    def json(self, url: str):
        status, _h, body = self.request(url)
        if status in (404, 410):
            raise CollectError(f"not found: {_safe(url)}")
        return json.loads(body)

    def pages(self, url: str, key: str | None):
        """Follow Link: rel="next" pagination; yields the items under `key` (None: the answer is a list)."""
        while url:
            status, headers, body = self.request(url)
            if status in (404, 410):
                raise CollectError(f"not found: {_safe(url)}")
            doc = json.loads(body)
            items = doc if key is None else ((doc.get(key) or []) if isinstance(doc, dict) else None)
            if not isinstance(items, list):
                raise CollectError(f"unexpected answer shape from {_safe(url)}: no list{'' if key is None else ' under ' + key}")
            yield from items
            url = _next_link(headers.get("Link") or headers.get("link") or "")


def _safe(url: str) -> str:
    """A URL for messages: no query string (signed download URLs carry credentials there)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _next_link(link: str) -> str | None:
    for part in link.split(","):
        m = re.search(r'<([^>]+)>\s*;\s*rel="next"', part)
        if m:
            return m.group(1)
    return None


def _rate_limit_wait(code: int, headers: dict, body: bytes) -> float | None:
    h = {k.lower(): v for k, v in headers.items()}
    if code not in (403, 429):
        return None
    if h.get("retry-after"):
        try:
            return min(float(h["retry-after"]), MAX_WAIT)
        except ValueError:
            return 60.0
    if h.get("x-ratelimit-remaining") == "0" and h.get("x-ratelimit-reset"):
        return min(max(float(h["x-ratelimit-reset"]) - time.time(), 1.0), MAX_WAIT)
    if b"rate limit" in body.lower():
        return 60.0   # secondary rate limit without Retry-After: GitHub asks for at least a minute
    return None


def safe_extract_json(zip_bytes: bytes, dest: Path, pattern: str = "*") -> tuple[list[str], list[str]]:
    """Extract the .json/.sarif members of an artifact zip into dest. Returns (written, refused)."""
    written, refused = [], []
    try:
        zf = zipfile.ZipFile(io.BytesIO(zip_bytes))
    except zipfile.BadZipFile as exc:
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
        target.parent.mkdir(parents=True, exist_ok=True)
        try:    # the CRC is checked as the member is read to its end
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
        except ZIP_MEMBER_ERRORS as exc:   # encrypted, Deflate64 or another method, corrupt
            target.unlink(missing_ok=True)
            refused.append(f"{name} (not extracted: {type(exc).__name__}: {str(exc)[:120]})")
            continue
        written.append(name)
    return written, refused


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


def collect(repo: str, landing: str | Path, state_path: str | Path, *, base_url: str = "https://api.github.com",
            token_env: str = "GITHUB_TOKEN", workflows=DEFAULT_WORKFLOWS, since: str | None = None,
            artifact_pattern: str = "trivy-results-*", sleep=time.sleep, log=None) -> Summary:
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo):
        raise CollectError(f"repository must be OWNER/NAME, not {repo!r}")
    landing, state_path = Path(landing), Path(state_path)
    summary = Summary()
    client = GitHubClient(base_url, os.environ.get(token_env), summary, sleep, log)
    state = load_state(state_path)
    completed = set(state["completed"])
    created = since or state.get("since")
    runs_root = landing / "ci" / "github-actions"
    runs_root.mkdir(parents=True, exist_ok=True)
    still_running, running_days = set(), []
    newest_complete = state.get("since")
    for wf in workflows:
        q = {"per_page": "100"}
        if created:
            q["created"] = f">={created}"
        url = f"/repos/{repo}/actions/workflows/{urllib.parse.quote(wf)}/runs?{urllib.parse.urlencode(q)}"
        for run in client.pages(url, "workflow_runs"):
            summary.runs_listed += 1
            rid = int(run["id"])
            if rid in completed:
                summary.skipped_complete += 1
                continue
            done = run.get("status") == "completed"
            try:
                _collect_run(client, repo, run, runs_root, artifact_pattern, summary)
            except CollectError as exc:     # this run only: the others are collected, the cursor saved
                summary.failed.append(f"run {rid}: {exc}")
                if log:
                    log(f"collect: run {rid} not collected: {exc}")
                still_running.add(rid)      # listed again next time, like a run in progress
                running_days.append(str(run.get("created_at", ""))[:10])
                continue
            if done:
                completed.add(rid)
                summary.collected += 1
                day = str(run.get("created_at", ""))[:10]
                newest_complete = max(newest_complete or day, day) if day else newest_complete
            else:
                still_running.add(rid)
                running_days.append(str(run.get("created_at", ""))[:10])
                summary.in_progress += 1
    # next time, list from the oldest run still running (it must be fetched again once it completes),
    # else from the newest completed run's day; runs already complete are skipped by id
    state.update(completed=sorted(completed), in_progress=sorted(still_running),
                 since=min(running_days) if running_days else (newest_complete or created))
    save_state(state_path, state)
    return summary


def _collect_run(client: GitHubClient, repo: str, run: dict, runs_root: Path, pattern: str, summary: Summary) -> None:
    rid = int(run["id"])
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
                    bad = zipfile.ZipFile(io.BytesIO(body)).testzip()
                except zipfile.BadZipFile as exc:
                    raise CollectError(f"run {rid}: log archive is not a valid zip: {exc}") from None
                except ZIP_MEMBER_ERRORS as exc:   # kept: the ingest reads each member alone and says which failed
                    bad = f"{type(exc).__name__}: {str(exc)[:120]}"
                if bad:
                    notes.setdefault("log_archive_problems", []).append(str(bad))
                (tmp / "logs.zip").write_bytes(body)
            for art in client.pages(f"/repos/{repo}/actions/runs/{rid}/artifacts?per_page=100", "artifacts"):
                name = str(art.get("name", ""))
                if not fnmatch.fnmatch(name, pattern):
                    continue
                if art.get("expired"):
                    notes["expired_at_source"].append(f"artifact {name}")
                    summary.expired.append(f"{rid}/{name}")
                    continue
                status, _h, body = client.request(art["archive_download_url"])
                if status in (404, 410):
                    notes["expired_at_source"].append(f"artifact {name}")
                    summary.expired.append(f"{rid}/{name}")
                    continue
                safe_name = re.sub(r"[^\w.\-]", "_", name)[:100]
                _written, refused = safe_extract_json(body, tmp / "artifacts" / safe_name)
                notes["refused_members"] += [f"{name}: {m}" for m in refused]
        if notes["expired_at_source"] or notes["refused_members"]:
            (tmp / "collect-notes.json").write_text(json.dumps(notes, indent=1))
        final = runs_root / str(rid)
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
