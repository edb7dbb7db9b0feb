"""Collect ticket evidence from GitHub Issues into the landing zone (`tickets/github/<date>/`).

By label (`GET /repos/{o}/{r}/issues?labels=&state=all&since=`) or by a search query
(`GET /search/issues?q=... repo:{o}/{r}`), paginated, with the run collector's client (rate limits,
retries, token only to the API host). Incremental: a state file remembers the newest `updated_at` seen,
and the next collection asks only for issues updated since. Each collection writes one file dated the
day it was taken, holding the issues as GitHub answered them; the reader keeps, per issue, the newest
file dated before a week's end (ifc_scan/kpis/tickets.py). Jira is read from files a team drops in
`tickets/jira/<date>/` (search API answers or CSV exports).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

from ifc_scan.collect.github import (BadItem, CollectError, DeadlinePassed, GitHubClient, ListingIncomplete, Summary,
                                     inside, load_state, save_state, state_beside, stored_cursor, valid_id, valid_time,
                                     write_atomic)
from ifc_scan.collect.http import Limits
from ifc_scan.timeutil import iso_z


def state_path_beside(run_collector_state: str | Path) -> Path:
    return state_beside(run_collector_state, "tickets.json")


def collect_github_issues(repo: str, landing: str | Path, state_path: str | Path, *, labels: str = "security",
                          query: str | None = None, base_url: str = "https://api.github.com",
                          token_env: str = "GITHUB_TOKEN", now: datetime | None = None, sleep=time.sleep,
                          log=None, limits: Limits | None = None) -> dict:
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo):
        raise CollectError(f"repository must be OWNER/NAME, not {repo!r}")
    landing, state_path, log = Path(landing), Path(state_path), log or (lambda m: None)
    now = now or datetime.now(timezone.utc)
    now_utc = (now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now).replace(microsecond=0)
    counters = Summary()
    client = GitHubClient(base_url, os.environ.get(token_env), counters, sleep, log, limits)
    state = load_state(state_path, {})
    key = f"{repo}|{query or 'labels=' + labels}"
    since = stored_cursor(state.get(key), now_utc, log)
    if query:
        q = f"{query} repo:{repo}" + (f" updated:>={since}" if since else "")
        url, field = f"/search/issues?{urllib.parse.urlencode({'q': q, 'per_page': '100'})}", "items"
    else:
        params = {"state": "all", "per_page": "100", "sort": "updated", "direction": "asc"}
        if labels:
            params["labels"] = labels
        if since:
            params["since"] = since
        url, field = f"/repos/{repo}/issues?{urllib.parse.urlencode(params)}", None
    issues, bad, newest, incomplete = [], [], None, None
    try:
        for item in client.pages(url, field):
            try:
                updated = _valid_issue(item, now_utc)
            except BadItem as exc:       # this issue only: recorded and skipped, the rest collected
                bad.append(str(exc))
                log(f"collect tickets: skipped: {exc}")
                continue
            issues.append(item)
            newest = max(newest or updated, updated)
    except (ListingIncomplete, DeadlinePassed) as exc:   # what was read is kept; the cursor stays
        incomplete = str(exc)
        log(f"collect tickets: listing stopped early: {exc}")
    written = None
    if issues:
        out = inside(landing, "tickets", "github", now.strftime("%Y-%m-%d"),
                     f"{repo.replace('/', '__')}-{now:%H%M%S}.json")
        write_atomic(out, json.dumps(issues, indent=1).encode())
        written = str(out.relative_to(landing))
    if newest and not incomplete:       # never past now: a later issue would never be asked for again
        state[key] = iso_z(min(newest, now_utc))
    if issues or bad:
        save_state(state_path, state)
    return {"requests": counters.requests, "retries": counters.retries, "issues": len(issues),
            "pull_requests_skipped_by_reader": sum(1 for i in issues if i.get("pull_request")), "written": written,
            "bad_items": bad, "incomplete": incomplete}


def _valid_issue(item, now: datetime) -> datetime:
    """An issue as the reader needs it (a number, an updated_at not after now); its updated_at."""
    if not isinstance(item, dict):
        raise BadItem(f"a listed issue is not an object: {str(item)[:60]!r}")
    number = valid_id(item.get("number"), "issue")
    return valid_time(item.get("updated_at"), f"issue #{number} updated_at", now)
