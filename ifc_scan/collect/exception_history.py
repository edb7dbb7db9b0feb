"""Collect the history of the exception files from version control into the landing zone, so that
snapshots need no hands and every exception line can be traced to the change that made it and the
approvals that change had.

For each ignore file (a path in the repository, mapped to an exception scope) and each commit on the
branch that changed it, two landing files are written (design/INPUTS.md, docs/exception-governance.md):

- `approvals/<scope>/<YYYY-MM-DD>/<sha>.json`: the change record: the commit, when the change reached
  the branch (`landed_at`: the pull request's merge time, else the commit's), its pull request, the
  reviews on that pull request (or the commit's `Approved-by:` trailers) and the file's text at that
  commit;
- `exceptions/<scope>/<YYYY-MM-DD>/<file name>`: the file as it stood at the end of that day on the
  branch (the last change landed that day; an empty file once the file was deleted).

Two sources share the writer: GitHub's REST API (commits touching the path, each commit's pull
request, that pull request's reviews, the file's content at the commit), incremental with a state file
and polite as the run collector (pagination, rate limits, token only to the API host); and a local
git clone (`git log --first-parent`), for teams that do not review on GitHub.

A branch rewritten by a force push: changes no longer on the branch are moved out of the landing zone
into the state folder's `rewritten/` (kept, never deleted) and named in the summary.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ifc_scan.collect.github import (BadItem, CollectError, DeadlinePassed, GitHubClient, Summary as _RunSummary,
                                     inside, json_answer, load_state, save_state, state_beside, utc_now, valid_id,
                                     valid_sha, valid_time, write_atomic)
from ifc_scan.collect.http import Limits
from ifc_scan.timeutil import iso_z

RECORD_SCHEMA = "ifc-scan.exception-change/1"
DEFAULT_FILES = (".trivyignore=_global",)
_SCOPE = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
# commit-message trailers that record an approval in a repository without GitHub reviews
_TRAILER = re.compile(r"^(Approved-by)\s*:\s*(.+?)\s*$", re.I | re.M)
_IDENT = re.compile(r"^(?P<name>.*?)\s*<(?P<email>[^>]+)>$")


@dataclass
class Review:
    reviewer: str                 # GitHub login, or the trailer's name
    state: str                    # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    submitted_at: str | None      # RFC 3339 UTC
    via: str                      # github-review | git-trailer
    email: str | None = None
    commit_id: str | None = None  # the pull request commit the review was given on


@dataclass
class Change:
    sha: str
    parents: list[str]
    author_login: str | None
    author_name: str | None
    author_email: str | None
    authored_at: str | None
    committer_login: str | None
    committed_at: str
    message: str
    landed_at: str                # when the change reached the branch
    landed_by: str                # pull_request | commit
    pull_request: dict | None
    reviews: list[Review]
    content: str | None           # the file's text at this commit; None: the commit deleted it
    signature: dict | None = None  # the commit's signature as checked (git: `_GIT_SIGNATURE`; GitHub: its verification)


@dataclass
class FileSpec:
    path: str                     # path of the ignore file in the repository
    scope: str                    # exception scope (landing zone folder)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @classmethod
    def parse(cls, text: str) -> "FileSpec":
        path, _, scope = text.partition("=")
        path, scope = path.strip().lstrip("/"), (scope.strip() or "_global")
        if not path or ".." in path.split("/"):
            raise CollectError(f"--file {text!r}: give a path inside the repository, as PATH=SCOPE")
        if not _SCOPE.fullmatch(scope):
            raise CollectError(f"--file {text!r}: scope {scope!r} is not a folder name (letters, digits, _ . -)")
        return cls(path, scope)


@dataclass
class HistorySummary:
    requests: int = 0
    changes_listed: int = 0
    changes_written: int = 0
    snapshots_written: int = 0
    reviews_refreshed: int = 0
    rewritten: list = field(default_factory=list)    # "<scope> <sha>": no longer on the branch (force push)
    conflicts: list = field(default_factory=list)    # landing files not written by this collector, left alone
    bad_items: list = field(default_factory=list)    # answer items that failed validation: recorded, skipped
    failed: list = field(default_factory=list)       # files not collected this time (their state kept), and why
    retries: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _utc(ts: str | None) -> str | None:
    """Any RFC 3339 / ISO 8601 time -> 'YYYY-MM-DDTHH:MM:SSZ' in UTC."""
    if not ts:
        return None
    t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the writer both sources share -------------------------------------------------------------------

def landing_history(changes: list[Change]) -> list[Change]:
    """Changes in the order they reached the branch (landed_at; a pull request's commits in commit order)."""
    return sorted(changes, key=lambda c: (c.landed_at, c.committed_at))


def write_history(landing: Path, spec: FileSpec, changes: list[Change], key_state: dict, *, source: str,
                  repository: str, branch: str, moved_to: Path, summary: HistorySummary) -> None:
    """Write the change records and the day snapshots of one ignore file. `changes` is the file's whole
    history on the branch; what an earlier collection wrote and is no longer in it is moved to `moved_to`."""
    written: dict = key_state.setdefault("written", {})         # landing path -> sha256 this collector wrote
    ordered = landing_history(changes)
    wanted: dict[str, bytes] = {}
    for c in ordered:
        record = {
            "schema": RECORD_SCHEMA, "source": source, "repository": repository, "branch": branch,
            "path": spec.path, "scope": spec.scope, "file": spec.name,
            "commit": {"sha": c.sha, "parents": c.parents, "author_login": c.author_login, "author_name": c.author_name,
                       "author_email": c.author_email, "authored_at": c.authored_at,
                       "committer_login": c.committer_login, "committed_at": c.committed_at, "message": c.message,
                       "signature": c.signature},
            "landed_at": c.landed_at, "landed_by": c.landed_by, "pull_request": c.pull_request,
            "reviews": [asdict(r) for r in c.reviews], "deleted": c.content is None,
            "content_sha256": hashlib.sha256((c.content or "").encode()).hexdigest(), "content": c.content or "",
        }
        rel = f"approvals/{spec.scope}/{c.landed_at[:10]}/{c.sha}.json"
        wanted[rel] = (json.dumps(record, indent=1) + "\n").encode()
    by_day: dict[str, Change] = {}
    for c in ordered:                       # the day's last change is the file at the end of that day
        by_day[c.landed_at[:10]] = c
    for day, c in by_day.items():
        wanted[f"exceptions/{spec.scope}/{day}/{spec.name}"] = (c.content or "").encode()
    for rel, data in wanted.items():
        try:
            target = inside(landing, rel)
        except BadItem as exc:             # never written: a path that leaves the landing zone
            summary.bad_items.append(str(exc))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if target.is_file():
            current = hashlib.sha256(target.read_bytes()).hexdigest()
            if current == digest:
                written[rel] = digest
                continue
            if written.get(rel) != current:   # someone else's file: never overwritten
                summary.conflicts.append(f"{rel}: exists with other content, not written by this collector; left alone")
                continue
        write_atomic(target, data)
        written[rel] = digest
        if rel.startswith("approvals/"):
            summary.changes_written += 1
        else:
            summary.snapshots_written += 1
    for rel in sorted(set(written) - set(wanted)):    # written earlier, no longer on the branch
        src = landing / rel
        if src.is_file() and hashlib.sha256(src.read_bytes()).hexdigest() == written[rel]:
            dest = moved_to / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(src), dest)
            summary.rewritten.append(f"{rel} moved to {dest}")
            try:
                src.parent.rmdir()              # the day folder, when nothing else is in it
            except OSError:
                pass
        del written[rel]


# ---- GitHub -------------------------------------------------------------------------------------------

def _obj(value) -> dict:
    """An answer's nested object, or {} when the server put anything else there (its fields then count
    as missing, and a missing one that is needed makes the item a BadItem)."""
    return value if isinstance(value, dict) else {}


def _github_reviews(client: GitHubClient, repo: str, number: int, now: datetime, summary: "HistorySummary") -> list[Review]:
    out = []
    for r in client.pages(f"/repos/{repo}/pulls/{number}/reviews?per_page=100", None):
        if not isinstance(r, dict) or not r.get("submitted_at"):     # a pending review was never given
            continue
        try:
            at = iso_z(valid_time(r["submitted_at"], f"pull request #{number} review", now))
        except BadItem as exc:        # this review only: recorded, not counted
            summary.bad_items.append(str(exc))
            continue
        out.append(Review(str(_obj(r.get("user")).get("login") or "(deleted user)"), str(r.get("state", "")).upper(),
                          at, "github-review", None, r.get("commit_id")))
    return out


def _pick_pull(pulls: list[dict], sha: str, branch: str) -> dict | None:
    """The pull request that brought the commit to the branch: merged into it, its merge commit first."""
    merged = [p for p in pulls if isinstance(p, dict) and p.get("merged_at")
              and _obj(p.get("base")).get("ref") == branch]
    if not merged:
        return None
    merged.sort(key=lambda p: (p.get("merge_commit_sha") != sha, str(p["merged_at"])))
    return merged[0]


def _github_content(client: GitHubClient, repo: str, path: str, sha: str) -> str | None:
    url = f"/repos/{repo}/contents/{urllib.parse.quote(path)}?ref={sha}"
    status, _h, body = client.request(url, seconds=client.http.limits.answer_seconds)
    if status in (404, 410):
        return None                              # the commit deleted the file
    doc = json_answer(body, client.absolute(url))
    if not isinstance(doc, dict) or doc.get("type", "file") != "file":
        raise CollectError(f"{path} at {sha[:12]} is not a file")
    if doc.get("encoding") == "base64":
        try:
            return base64.b64decode(str(doc.get("content") or "")).decode("utf-8", errors="replace")
        except binascii.Error as exc:
            raise CollectError(f"{path} at {sha[:12]}: content is not base64 ({exc})") from None
    if doc.get("download_url"):                  # over 1 MB: GitHub gives no inline content
        status, _h, raw = client.request(client.checked_url(doc["download_url"], f"{path} at {sha[:12]}"))
        return raw.decode("utf-8", errors="replace")
    raise CollectError(f"{path} at {sha[:12]}: GitHub gave no content")


def _github_change(client: GitHubClient, repo: str, branch: str, spec: FileSpec, item: dict, sha: str,
                   now: datetime) -> Change:
    """One commit of the listing, every field used checked (BadItem names the first that is not right)."""
    commit = _obj(item.get("commit"))
    pulls = client.json(f"/repos/{repo}/commits/{sha}/pulls")
    pull = _pick_pull(pulls if isinstance(pulls, list) else [], sha, branch)
    pr = None if pull is None else {
        "number": valid_id(pull.get("number"), f"commit {sha[:12]}: pull request"), "title": pull.get("title"),
        "url": pull.get("html_url"), "author": _obj(pull.get("user")).get("login"),
        "merged_at": iso_z(valid_time(pull.get("merged_at"), f"commit {sha[:12]}: pull request merged_at", now)),
        "merge_commit_sha": pull.get("merge_commit_sha"), "base": _obj(pull.get("base")).get("ref")}
    committed = iso_z(valid_time(_obj(commit.get("committer")).get("date"), f"commit {sha[:12]} date", now))
    authored = _obj(commit.get("author")).get("date")
    return Change(sha, [str(p.get("sha")) for p in item.get("parents") or [] if isinstance(p, dict)],
                  _obj(item.get("author")).get("login"), _obj(commit.get("author")).get("name"),
                  _obj(commit.get("author")).get("email"),
                  iso_z(valid_time(authored, f"commit {sha[:12]} author date", now)) if authored else None,
                  _obj(item.get("committer")).get("login"), committed, str(commit.get("message") or ""),
                  pr["merged_at"] if pr else committed, "pull_request" if pr else "commit", pr, [],
                  _github_content(client, repo, spec.path, sha), _github_signature(commit))


def _github_listing(client: GitHubClient, repo: str, branch: str, spec: FileSpec, known: list[str],
                    summary: "HistorySummary") -> tuple[list[dict], str | None]:
    """The commits that changed the file since the newest one already known (newest first), each with a
    valid sha, and that known sha (None when the listing reached the start without one)."""
    fresh = []
    q = urllib.parse.urlencode({"path": spec.path, "sha": branch, "per_page": "100"})
    for item in client.pages(f"/repos/{repo}/commits?{q}", None):   # newest first
        summary.changes_listed += 1
        try:
            sha = valid_sha(item.get("sha") if isinstance(item, dict) else None, f"{spec.path}: a listed commit")
        except BadItem as exc:        # this commit only: recorded and skipped
            summary.bad_items.append(str(exc))
            continue
        if sha in known:
            return fresh, sha
        fresh.append({**item, "sha": sha})
    return fresh, None


def _collect_github_file(client: GitHubClient, repo: str, branch: str, spec: FileSpec, ks: dict, landing: Path,
                         moved_to: Path, now: datetime, summary: "HistorySummary", log) -> None:
    known: list[str] = ks["history"]
    fresh, hit = _github_listing(client, repo, branch, spec, known, summary)
    changes_by_sha = {sha: ks["changes"][sha] for sha in known if sha in ks["changes"]}
    added = []
    for item in reversed(fresh):
        try:
            changes_by_sha[item["sha"]] = asdict(_github_change(client, repo, branch, spec, item, item["sha"], now))
            added.append(item["sha"])
        except BadItem as exc:        # this change only: recorded and skipped
            summary.bad_items.append(str(exc))
    history = (known[:known.index(hit) + 1] if hit else []) + added
    # reviews are read again for every pull request of the history: a review dismissed after the
    # merge must stop counting
    reviews_of: dict[int, list] = {}
    for sha in history:
        pr = changes_by_sha[sha]["pull_request"]
        if pr:
            if pr["number"] not in reviews_of:
                reviews_of[pr["number"]] = [asdict(r) for r in _github_reviews(client, repo, pr["number"], now, summary)]
                summary.reviews_refreshed += 1
            changes_by_sha[sha]["reviews"] = reviews_of[pr["number"]]
    rewritten = [sha for sha in known if sha not in history]
    if rewritten:
        log(f"{spec.path}: {len(rewritten)} change(s) no longer on {branch} (force push); their files are moved aside")
    write_history(landing, spec, [_change_from_dict(changes_by_sha[sha]) for sha in history], ks, source="github",
                  repository=repo, branch=branch, moved_to=moved_to, summary=summary)
    ks["history"], ks["changes"] = history, {sha: changes_by_sha[sha] for sha in history}


def collect_github_history(repo: str, files: list[FileSpec], landing: str | Path, state_path: str | Path, *,
                           branch: str = "main", base_url: str = "https://api.github.com",
                           token_env: str = "GITHUB_TOKEN", sleep=time.sleep, log=None, limits: Limits | None = None,
                           now: datetime | None = None) -> HistorySummary:
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo):
        raise CollectError(f"repository must be OWNER/NAME, not {repo!r}")
    landing, state_path, log, now = Path(landing), Path(state_path), log or (lambda m: None), now or utc_now()
    counters = _RunSummary()
    client = GitHubClient(base_url, os.environ.get(token_env), counters, sleep, log, limits)
    state = load_state(state_path, {"files": {}})
    summary = HistorySummary()
    for spec in files:
        ks = state["files"].setdefault(f"github:{repo}:{branch}:{spec.path}", {"history": [], "changes": {}})
        try:
            _collect_github_file(client, repo, branch, spec, ks, landing, state_path.parent / "rewritten", now,
                                 summary, log)
        except CollectError as exc:    # this file only: its state stays as it was, the other files go on
            summary.failed.append(f"{spec.path}: {exc}")
            log(f"exception history: {spec.path} not collected: {exc}")
            if isinstance(exc, DeadlinePassed):
                break
            continue
        save_state(state_path, state)
    for bad in summary.bad_items:
        log(f"exception history: skipped: {bad}")
    summary.requests, summary.retries = counters.requests, counters.retries
    return summary


def _change_from_dict(d: dict) -> Change:
    return Change(**{**d, "reviews": [Review(**r) for r in d["reviews"]]})


# ---- a local git clone -------------------------------------------------------------------------------

def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=300)


# git's verdict on a commit's signature (%G?) -> the record's status; only "good" can make a trailer count,
# and only when the key is one approvers.yaml lists for the approver the trailer names (kpis/approvals.py)
_GIT_SIGNATURE = {"G": "good", "U": "good", "X": "expired signature", "Y": "expired key", "R": "revoked key",
                  "B": "bad", "E": "cannot be checked", "N": "none"}
_PRINCIPAL = re.compile(r"[\w.@+-]+")


def _allowed_signers(landing: Path) -> str:
    """gpg.ssh.allowedSignersFile lines from the landing zone's inventory/approvers.yaml (its SSH keys, each
    under its approver's login), so that git names the approver of a listed key. Without a readable file the
    list is empty: git still checks every SSH signature (a good one by an unlisted key is "good" with its
    fingerprint), and the approver judgement matches that fingerprint against the warehouse's approvers."""
    from ifc_scan.ingest.approvals import RecordRejected, parse_approvers   # ingest imports this module
    path = landing / "inventory" / "approvers.yaml"
    try:
        approvers = parse_approvers(path.read_text(encoding="utf-8-sig")) if path.is_file() else []
    except (OSError, UnicodeDecodeError, RecordRejected):
        approvers = []
    # the file's syntax has no room for spaces, commas or quotes in a principal: such a login is "approver"
    lines = {f'{a.login if _PRINCIPAL.fullmatch(a.login) else "approver"} namespaces="git" {k}'
             for a in approvers for k in a.keys if " " in k}
    return "".join(f"{line}\n" for line in sorted(lines))


def _github_signature(commit: dict) -> dict:
    """GitHub's `verification` of a commit, kept as GitHub said it. Not a check of ours: `verified` means a
    key on the committer's GitHub account made the signature, not that approvers.yaml lists it for the
    approver a trailer names (D22), so on this path trailers are not read as approvals at all."""
    v = commit.get("verification") if isinstance(commit.get("verification"), dict) else {}
    return {"checked_by": "github", "status": "not checked by ifc_scan", "github_verified": v.get("verified") is True,
            "github_reason": str(v.get("reason") or "")[:100] or None}


def _git_signature(status: str, key: str, primary_key: str, signer: str) -> dict:
    return {"checked_by": "git", "status": _GIT_SIGNATURE.get(status, f"unknown ({status})"), "git_status": status,
            "key_fingerprint": key or None, "primary_key_fingerprint": primary_key or None, "signer": signer or None}


def _trailer_reviews(message: str, committed_at: str) -> list[Review]:
    out = []
    for _kind, who in _TRAILER.findall(message):
        m = _IDENT.match(who)
        name, email = (m.group("name"), m.group("email")) if m else (who, None)
        out.append(Review(name or email or who, "APPROVED", committed_at, "git-trailer", email))
    return out


# hex, times and git's verdict first: no separator can occur in them; then the text the committer chose
# (and a GPG key's user id), whose separators can only shift that text. %G? %GF %GP %GS: git's check of
# the commit's signature, its key's fingerprint, the primary key's, the signer.
_GIT_FIELDS = "%H%x1f%P%x1f%aI%x1f%cI%x1f%G?%x1f%GF%x1f%GP%x1f%an%x1f%ae%x1f%GS%x1f%B"


def _git_change(repo_dir: Path, sha: str, path: str, verify: tuple) -> Change:
    out = _git(repo_dir, *verify, "show", "-s", f"--format={_GIT_FIELDS}", sha)
    if out.returncode != 0:
        raise CollectError(f"git show failed for {sha[:12]}: {out.stderr.decode(errors='replace').strip()[:200]}")
    fields = out.stdout.decode("utf-8", errors="replace").split("\x1f", 10)
    shown_sha, parents, authored, committed, sig, sig_key, sig_primary, an, ae, signer, body = fields
    if shown_sha != sha:
        raise CollectError(f"git show {sha[:12]} answered for {shown_sha[:12]!r}")
    committed = _utc(committed)
    shown = _git(repo_dir, "show", f"{sha}:{path}")
    content = shown.stdout.decode("utf-8", errors="replace") if shown.returncode == 0 else None
    return Change(sha, parents.split(), None, an, ae, _utc(authored), None, committed, body.strip(), committed,
                  "commit", None, _trailer_reviews(body, committed), content,
                  _git_signature(sig, sig_key, sig_primary, signer))


def collect_git_history(repo_dir: str | Path, files: list[FileSpec], landing: str | Path, state_path: str | Path, *,
                        branch: str = "HEAD", log=None) -> HistorySummary:
    """The first-parent history of `branch` in a local clone: each commit that changed the file as the
    branch saw it (a merge commit for a merged branch), approvals from its `Approved-by:` trailers."""
    repo_dir, landing, state_path = Path(repo_dir), Path(landing), Path(state_path)
    probe = _git(repo_dir, "rev-parse", "--verify", f"{branch}^{{commit}}")
    if probe.returncode != 0:
        raise CollectError(f"{repo_dir}: not a git repository or no branch {branch!r}: "
                           f"{probe.stderr.decode(errors='replace').strip()[:200]}")
    state = load_state(state_path, {"files": {}})
    summary = HistorySummary()
    signers = state_path.parent / "allowed-signers"
    write_atomic(signers, _allowed_signers(landing).encode())
    # pinned here, whatever the clone's config says: git verifies SSH signatures only with an allowed-signers file
    verify = ("-c", f"gpg.ssh.allowedSignersFile={signers.resolve()}", "-c", "gpg.ssh.program=ssh-keygen")
    for spec in files:
        # the commits only (hex): each one's fields are then read on their own, so that no text a committer
        # wrote can pass for another commit's record
        out = _git(repo_dir, "log", "--first-parent", "--format=%H", branch, "--", spec.path)
        if out.returncode != 0:
            raise CollectError(f"git log failed for {spec.path}: {out.stderr.decode(errors='replace').strip()[:200]}")
        changes = [_git_change(repo_dir, sha, spec.path, verify) for sha in out.stdout.decode("ascii").split()]
        summary.changes_listed += len(changes)
        key = f"git:{repo_dir.resolve()}:{branch}:{spec.path}"
        ks = state["files"].setdefault(key, {"history": []})
        write_history(landing, spec, changes, ks, source="git", repository=str(repo_dir.resolve()), branch=branch,
                      moved_to=state_path.parent / "rewritten", summary=summary)
        ks["history"] = [c.sha for c in landing_history(changes)]
        save_state(state_path, state)
    return summary


def parse_file_specs(specs) -> list[FileSpec]:
    """`PATH=SCOPE` items (a list, or one comma-separated string), each scope once."""
    if isinstance(specs, str):
        specs = [x for x in specs.split(",") if x.strip()]
    files = [FileSpec.parse(x) for x in (specs or DEFAULT_FILES)]
    scopes = [f.scope for f in files]
    if len(set(scopes)) != len(scopes):
        raise CollectError("each ignore file needs its own scope: a snapshot replaces its whole scope")
    return files


def state_path_beside(run_collector_state: str | Path) -> Path:
    return state_beside(run_collector_state, "exception-history.json")


def collect_exception_history(files, landing, state_path, *, repo: str = "", git: str = "", branch: str = "",
                              base_url: str = "https://api.github.com", token_env: str = "GITHUB_TOKEN",
                              log=None) -> HistorySummary:
    """The one entry point of the CLI and the Dagster asset: a local clone when `git` is given, else GitHub."""
    specs = parse_file_specs(files)
    if git:
        return collect_git_history(git, specs, landing, state_path, branch=branch or "HEAD", log=log)
    if not repo:
        raise CollectError("give a GitHub repository (OWNER/NAME) or a local git clone")
    return collect_github_history(repo, specs, landing, state_path, branch=branch or "main", base_url=base_url,
                                  token_env=token_env, log=log)
