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

from ifc_scan.collect.github import (CollectError, GitHubClient, Summary, load_state, save_state, state_beside,
                                     write_atomic)


def state_path_beside(run_collector_state: str | Path) -> Path:
    return state_beside(run_collector_state, "tickets.json")


def collect_github_issues(repo: str, landing: str | Path, state_path: str | Path, *, labels: str = "security",
                          query: str | None = None, base_url: str = "https://api.github.com",
                          token_env: str = "GITHUB_TOKEN", now: datetime | None = None, sleep=time.sleep,
                          log=None) -> dict:
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo):
        raise CollectError(f"repository must be OWNER/NAME, not {repo!r}")
    landing, state_path = Path(landing), Path(state_path)
    counters = Summary()
    client = GitHubClient(base_url, os.environ.get(token_env), counters, sleep, log)
    state = load_state(state_path, {})
    key = f"{repo}|{query or 'labels=' + labels}"
    since = state.get(key)
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
    issues = list(client.pages(url, field))
    now = now or datetime.now(timezone.utc)
    written = None
    if issues:
        out = landing / "tickets" / "github" / now.strftime("%Y-%m-%d") / f"{repo.replace('/', '__')}-{now:%H%M%S}.json"
        write_atomic(out, json.dumps(issues, indent=1).encode())
        written = str(out.relative_to(landing))
        state[key] = max(str(i.get("updated_at") or "") for i in issues) or since
        save_state(state_path, state)
    return {"requests": counters.requests, "retries": counters.retries, "issues": len(issues),
            "pull_requests_skipped_by_reader": sum(1 for i in issues if i.get("pull_request")), "written": written}
