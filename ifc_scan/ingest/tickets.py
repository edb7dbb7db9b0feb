"""Ticket evidence (design: docs/tickets-and-delivery.md): GitHub Issues as the REST API answers them,
Jira search API answers (v2 and v3: `/rest/api/{2,3}/search`, `/search/jql`) and Jira CSV exports.

Landing zone: `tickets/<system>/<YYYY-MM-DD>/<file>`, the date being when the answer or export was
taken (evidence for the weeks that end after it, as exception snapshots are). A ticket names the
vulnerabilities it is about by their IDs anywhere in its title, body or labels (CVE-, GHSA-, and the
other prefixes Trivy reports); the weekly stage links it to the findings of those IDs.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from typing import NamedTuple

from ifc_scan.timeutil import BadTimestamp, parse_ts, strptime_ascii

# the advisory ID families Trivy reports (NVD, GitHub, Go, OSV ecosystems, distributions)
VULN_ID = re.compile(r"\b(?:CVE-\d{4}-\d{4,}|GHSA(?:-[23456789cfghjmpqrvwx]{4}){3}|GO-\d{4}-\d{4,}|PYSEC-\d{4}-\d+|"
                     r"RUSTSEC-\d{4}-\d{4}|DSA-\d{3,}-\d+|DLA-\d{3,}-\d+|ALAS2?-\d{4}-\d+|RHSA-\d{4}:\d+|"
                     r"USN-\d+-\d+|TEMP-\d{7}-[0-9A-F]{6})\b", re.I)
MAX_TEXT = 200_000          # characters of a ticket read for IDs (a pasted log must not stall the ingest)


class TicketRejected(Exception):
    pass


class Ticket(NamedTuple):
    system: str               # github | jira
    key: str                  # owner/repo#123 | PROJ-123
    title: str
    url: str | None
    state: str                # open | closed (as the answer had it)
    created_at: datetime
    closed_at: datetime | None
    updated_at: datetime | None
    vuln_ids: list[str]
    text: str                 # title, labels and body (capped): the weekly stage looks for image names in it


def vuln_ids_in(*texts: str) -> list[str]:
    found = []
    for t in texts:
        for m in VULN_ID.findall((t or "")[:MAX_TEXT]):
            v = m.upper()
            if v.startswith("GHSA-"):
                v = "GHSA-" + m[5:].lower()
            if v not in found:
                found.append(v)
    return found


def _ts(value, what: str, key: str) -> datetime | None:
    try:
        return parse_ts(value) if value not in (None, "") else None
    except BadTimestamp:
        raise TicketRejected(f"ticket {key}: {what} {value!r:.40} is not a time") from None


# ---- GitHub Issues --------------------------------------------------------------------------------

def _github_issue(item: dict, repo_hint: str | None) -> Ticket | None:
    if not isinstance(item, dict) or "number" not in item:
        raise TicketRejected("not a GitHub issue (no number)")
    if item.get("pull_request"):
        return None               # the issues API lists pull requests too
    url = item.get("html_url") or ""
    m = re.match(r"https?://[^/]+/([^/]+/[^/]+)/issues/\d+", url)
    repo = m.group(1) if m else (repo_hint or "?")
    key = f"{repo}#{item['number']}"
    labels = " ".join((lb.get("name") or "") if isinstance(lb, dict) else str(lb) for lb in item.get("labels") or [])
    title, body = str(item.get("title") or ""), str(item.get("body") or "")[:MAX_TEXT]
    created = _ts(item.get("created_at"), "created_at", key)
    if created is None:
        raise TicketRejected(f"ticket {key}: no created_at")
    state = "closed" if item.get("state") == "closed" else "open"
    closed = _ts(item.get("closed_at"), "closed_at", key) if state == "closed" else None
    return Ticket("github", key, title[:500], url or None, state, created, closed,
                  _ts(item.get("updated_at"), "updated_at", key), vuln_ids_in(title, labels, body),
                  f"{title}\n{labels}\n{body}")


def parse_github_issues(text: str, repo_hint: str | None = None) -> list[Ticket]:
    """A list of issues (the answer of GET /repos/{o}/{r}/issues), one issue object, or the search API's
    {"items": [...]}."""
    doc = _json(text)
    items = doc.get("items") if isinstance(doc, dict) and "items" in doc else doc
    items = [items] if isinstance(items, dict) else items
    if not isinstance(items, list):
        raise TicketRejected("not a GitHub issues answer (a list of issues, or {\"items\": [...]})")
    return [t for t in (_github_issue(i, repo_hint) for i in items) if t is not None]


# ---- Jira -----------------------------------------------------------------------------------------

def _adf_text(node) -> str:
    """Jira Cloud v3 bodies are Atlassian Document Format: the text is in the leaves."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict):
        return (node.get("text") or "") + " ".join(_adf_text(c) for c in node.get("content") or [])
    if isinstance(node, list):
        return " ".join(_adf_text(c) for c in node)
    return ""


def _jira_done(status: dict | None) -> bool:
    cat = (status or {}).get("statusCategory") or {}
    return cat.get("key") == "done" or str((status or {}).get("name", "")).lower() in ("done", "closed", "resolved")


def parse_jira_search(text: str, base_url: str | None = None) -> list[Ticket]:
    doc = _json(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("issues"), list):
        raise TicketRejected("not a Jira search answer (no issues list)")
    out = []
    for it in doc["issues"]:
        if not isinstance(it, dict) or not it.get("key"):
            raise TicketRejected("a Jira issue without a key")
        key, f = it["key"], it.get("fields") or {}
        title = str(f.get("summary") or "")
        body = _adf_text(f.get("description"))[:MAX_TEXT]
        labels = " ".join(str(x) for x in f.get("labels") or [])
        created = _jira_time(f.get("created"), key, "created")
        if created is None:
            raise TicketRejected(f"ticket {key}: no created time")
        done = _jira_done(f.get("status"))
        closed = _jira_time(f.get("resolutiondate"), key, "resolutiondate") if done else None
        if done and closed is None:
            closed = _jira_time(f.get("statuscategorychangedate") or f.get("updated"), key, "updated")
        self_url = it.get("self") or ""
        host = re.match(r"(https?://[^/]+)", self_url)
        url = f"{(base_url or (host.group(1) if host else '')).rstrip('/')}/browse/{key}" if (base_url or host) else None
        out.append(Ticket("jira", key, title[:500], url, "closed" if done else "open", created, closed,
                          _jira_time(f.get("updated"), key, "updated"), vuln_ids_in(title, labels, body),
                          f"{title}\n{labels}\n{body}"))
    return out


_JIRA_TZ = re.compile(r"([+-]\d{2})(\d{2})$", re.ASCII)


def _jira_time(value, key: str, what: str) -> datetime | None:
    """Jira's REST times: 2026-03-01T10:15:30.000+0100 (offset without a colon)."""
    if value in (None, ""):
        return None
    return _ts(_JIRA_TZ.sub(r"\1:\2", str(value)), what, key)


_CSV_FORMATS = ("%d/%b/%y %I:%M %p", "%d/%b/%Y %I:%M %p", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M")


def _csv_time(value: str, key: str, what: str) -> datetime | None:
    """Jira CSV exports write the exporting user's format, without a zone; UTC is assumed (documented)."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return parse_ts(value)
    except BadTimestamp:
        pass
    for fmt in _CSV_FORMATS:
        try:
            return strptime_ascii(value, fmt)
        except ValueError:
            continue
    raise TicketRejected(f"ticket {key}: {what} {value!r:.40} is in no date format Jira exports")


def parse_jira_csv(text: str, base_url: str | None = None) -> list[Ticket]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    header = [h.strip() for h in rows[0]]
    idx: dict[str, list[int]] = {}
    for i, h in enumerate(header):
        idx.setdefault(h.lower(), []).append(i)      # Jira repeats "Labels" once per label

    def col(row, name):
        return [row[i] for i in idx.get(name.lower(), []) if i < len(row) and row[i]]
    if "issue key" not in idx or "created" not in idx:
        raise TicketRejected("not a Jira CSV export (no 'Issue key' and 'Created' columns)")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(row):
            continue
        key = (col(row, "Issue key") or [""])[0]
        if not key:
            raise TicketRejected(f"row {n}: no issue key")
        title = (col(row, "Summary") or [""])[0]
        body = " ".join(col(row, "Description"))[:MAX_TEXT]
        labels = " ".join(col(row, "Labels"))
        status = (col(row, "Status") or [""])[0]
        category = (col(row, "Status Category") or [""])[0]
        done = category.lower() == "done" or status.lower() in ("done", "closed", "resolved")
        created = _csv_time((col(row, "Created") or [""])[0], key, "Created")
        if created is None:
            raise TicketRejected(f"row {n} ({key}): no Created time")
        closed = _csv_time((col(row, "Resolved") or [""])[0], key, "Resolved") if done else None
        if done and closed is None:
            closed = _csv_time((col(row, "Updated") or [""])[0], key, "Updated")
        out.append(Ticket("jira", key, title[:500], f"{base_url.rstrip('/')}/browse/{key}" if base_url else None,
                          "closed" if done else "open", created, closed,
                          _csv_time((col(row, "Updated") or [""])[0], key, "Updated"),
                          vuln_ids_in(title, labels, body), f"{title}\n{labels}\n{body}"))
    return out


def _json(text: str):
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise TicketRejected(f"not valid JSON: {exc}") from None


def parse_ticket_file(rel: str, text: str) -> list[Ticket]:
    """`tickets/<system>/<date>/<file>` -> its tickets. Raises TicketRejected with the reason."""
    parts = rel.split("/")
    system = parts[1].lower() if len(parts) > 1 else ""
    name = parts[-1].lower()
    if system == "github":
        return parse_github_issues(text)
    if system == "jira":
        if name.endswith(".csv"):
            return parse_jira_csv(text)
        return parse_jira_search(text)
    raise TicketRejected(f"unknown ticket system folder {system!r}: tickets/github/ or tickets/jira/")
