"""Tickets against scans (POLICY.md "Escalation": CRITICAL pages and blocks, HIGH gets a ticket; MTTR is
tracked by tickets). kpis.json `tickets`, tickets.csv and the report's section 5b, as of T
(docs/tickets-and-delivery.md; decisions D19-D21 in docs/kpi-decisions.md).

A ticket is linked to a finding when it names the finding's vulnerability ID, and, when it names any
image of the inventory (lineage or its name), only to findings of the images it names. A ticket's state
at T is read from its own times: created before T, closed before T or not (D19).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np

from ifc_scan.timeutil import iso_z

ESCALATED = ("CRITICAL", "HIGH")
DEFAULT_ESCALATION_HOURS = {"CRITICAL": 24, "HIGH": 168}
_RANK = {"CRITICAL": 4, "HIGH": 3, "MEDIUM": 2, "LOW": 1, "UNKNOWN": 0}
TICKET_COLUMNS = ("kind", "status", "ticket", "ticket_url", "ticket_created", "ticket_closed", "finding_id",
                  "lineage", "vulnerability_id", "severity", "detected_at", "escalation_due", "hours")


def escalation_hours(policy: dict) -> dict:
    """The policy's escalation window per severity (hours from detection to a ticket), defaults 24 h / 7 d."""
    return {**DEFAULT_ESCALATION_HOURS, **(policy.get("escalation_hours") or {})}


class TicketEvidence:
    """Every ingested ticket row, loaded once per run; `at(T)` picks each ticket's newest snapshot before T."""

    def __init__(self, con):
        cols = ("system", "key", "title", "url", "created_at", "closed_at", "updated_at", "vuln_ids", "text",
                "snapshot_date", "source_path")
        self.rows = [dict(zip(cols, r)) for r in con.execute(
            f"SELECT {', '.join(cols[:-2])}, CAST(snapshot_date AS TIMESTAMP), source_path FROM tickets "
            "ORDER BY system, key, snapshot_date, updated_at NULLS FIRST, source_path").fetchall()]

    def collected_before(self, T: datetime) -> bool:
        return any(r["snapshot_date"] < T for r in self.rows)

    def at(self, T: datetime) -> list[dict]:
        newest: dict[tuple, dict] = {}
        for r in self.rows:                       # ordered: the last one before T wins
            if r["snapshot_date"] < T and r["created_at"] < T:
                newest[(r["system"], r["key"])] = r
        return list(newest.values())


# an image reference (registry host with a dot, then a path) that is not part of a URL or an e-mail
_IMAGE_REF = re.compile(r"(?<![\w/.@:-])[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?/[a-z0-9._/-]*[a-z0-9]", re.I)


def _named_lineages(text: str, lineages: dict) -> tuple[set, bool]:
    """The images a ticket names: (the known lineages it names, by full reference or by name as a whole
    word; whether it names any image at all, a reference to an image ifc_scan does not know included)."""
    low = (text or "").lower()
    out = set()
    for lineage, name in lineages.items():
        if lineage.lower() in low or (name and re.search(rf"(?<![\w.-]){re.escape(name.lower())}(?![\w.-])", low)):
            out.add(lineage)
    return out, bool(out) or bool(_IMAGE_REF.search(low))


def _stats(xs: list[float]) -> dict:
    if not xs:
        return {"n": 0, "mean": None, "median": None}
    arr = np.array(sorted(xs), dtype=float)
    return {"n": len(xs), "mean": round(float(arr.mean()), 2), "median": round(float(np.median(arr)), 2)}


def _tickets_at(evidence: TicketEvidence, T: datetime, lineages: dict) -> list[dict]:
    """Each ticket as known at T, with the lineages it names, whether it names any image (then it links only
    to findings of those), and whether it was closed before T (D19)."""
    tickets = []
    for t in evidence.at(T):
        names, scoped = _named_lineages(t["text"], lineages)
        tickets.append({**t, "names": names, "scoped": scoped,
                        "closed_by_T": t["closed_at"] is not None and t["closed_at"] < T})
    return tickets


def _linker(tickets: list[dict]) -> Callable:
    """finding -> the tickets linked to it: those naming its vulnerability ID and, when scoped, its lineage."""
    by_id: dict[str, list[dict]] = defaultdict(list)
    for t in tickets:
        for vid in t["vuln_ids"] or []:
            by_id[vid].append(t)

    def linked(f) -> list[dict]:
        return [t for t in by_id.get(f.vuln_id, ()) if not t["scoped"] or f.lineage in t["names"]]
    return linked


def _ticket_row(kind, status, t, f=None, **extra) -> dict:
    """A row of tickets.csv pairing a ticket (or none) with a finding (or none)."""
    return {"kind": kind, "status": status, "ticket": f"{t['system']}:{t['key']}" if t else None,
            "ticket_url": t["url"] if t else None, "ticket_created": iso_z(t["created_at"]) if t else None,
            "ticket_closed": iso_z(t["closed_at"]) if t and t["closed_by_T"] else None,
            "finding_id": f.finding_id if f else None, "lineage": f.lineage if f else None,
            "vulnerability_id": f.vuln_id if f else None, "severity": f.severity if f else None,
            "detected_at": iso_z(f.detected_at) if f else None, "escalation_due": None, "hours": None,
            **extra}


def _escalation(ctx, open_findings: list, linked: Callable, window: dict) -> tuple[dict, list[dict]]:
    """Open HIGH/CRITICAL findings of deployable images whose escalation window has passed by T, each
    on time, late or missing a ticket (D20)."""
    escalation = {s: {"due": 0, "on_time": 0, "late": 0, "missing": 0} for s in ESCALATED}
    rows = []
    for f in sorted(open_findings, key=lambda f: (f.severity, f.lineage, f.vuln_id, f.finding_id)):
        if f.severity not in ESCALATED or f.lineage not in ctx.obs.deployable:   # D20: production images
            continue
        due = f.detected_at + timedelta(hours=window[f.severity])
        if due > ctx.T:
            continue
        ts = sorted(linked(f), key=lambda t: t["created_at"])
        status = "missing" if not ts else ("on_time" if ts[0]["created_at"] <= due else "late")
        escalation[f.severity]["due"] += 1
        escalation[f.severity][status] += 1
        rows.append(_ticket_row("escalation", status, ts[0] if ts else None, f, escalation_due=iso_z(due)))
    return escalation, rows


def _closed_without_fix(open_findings: list, linked: Callable) -> tuple[set, list[dict]]:
    """Tickets closed before T while a finding they name is still open at T."""
    closed, rows = set(), []
    for f in open_findings:
        for t in linked(f):
            if t["closed_by_T"]:
                closed.add((t["system"], t["key"]))
                rows.append(_ticket_row("closed_without_fix", "finding still open at T", t, f))
    return closed, rows


def _fixed_with_open_tickets(ctx, linked: Callable) -> tuple[int, list[dict]]:
    """Findings fixed in the week whose every linked ticket is still open at T."""
    state_of = {f.finding_id: f for f in ctx.state.findings}
    fixed_open, rows = 0, []
    for c in ctx.state.closes:
        f = state_of.get(c.finding_id)
        if c.reason != "fixed" or f is None or f.is_open:
            continue
        ts = linked(f)
        if ts and all(not t["closed_by_T"] for t in ts):
            fixed_open += 1
            rows.extend(_ticket_row("fixed_ticket_open", "ticket still open at T", t, f) for t in ts)
    return fixed_open, rows


def _ticket_mttr(ctx, tickets: list[dict]) -> tuple[dict, list[dict]]:
    """Hours to close, by the highest severity named, of the tickets closed in [S, T) that name a finding."""
    durations: dict[str, list[float]] = defaultdict(list)
    findings_of: dict[str, list] = defaultdict(list)
    for f in ctx.state.findings:
        findings_of[f.vuln_id].append(f)
    rows = []
    for t in sorted(tickets, key=lambda t: (t["system"], t["key"])):
        if t["closed_at"] is None or not (ctx.S <= t["closed_at"] < ctx.T):
            continue
        sevs = [f.severity for vid in t["vuln_ids"] or [] for f in findings_of.get(vid, ())
                if not t["scoped"] or f.lineage in t["names"]]
        if not sevs:
            continue
        sev = max(sevs, key=lambda s: _RANK.get(s, 0))
        h = round((t["closed_at"] - t["created_at"]).total_seconds() / 3600, 2)
        durations[sev].append(h)
        rows.append({**dict.fromkeys(TICKET_COLUMNS), "kind": "ticket_closed", "status": "closed in the week",
                     "ticket": f"{t['system']}:{t['key']}", "ticket_url": t["url"],
                     "ticket_created": iso_z(t["created_at"]), "ticket_closed": iso_z(t["closed_at"]),
                     "severity": sev, "hours": h})
    return durations, rows


def reconcile(ctx, evidence: TicketEvidence) -> tuple[dict, list[dict]]:
    """kpis.json `tickets` and the rows of tickets.csv for the week [S, T)."""
    T = ctx.T
    window = escalation_hours(ctx.policy)
    lineages = {**{f.lineage: f.lineage.rsplit("/", 1)[-1] for f in ctx.state.findings}, **ctx.obs.deployable}
    tickets = _tickets_at(evidence, T, lineages)
    linked = _linker(tickets)
    open_findings = [f for f in ctx.open_findings() if not ctx.retired(f.lineage)]
    escalation, escalation_rows = _escalation(ctx, open_findings, linked, window)
    closed_without_fix, closed_rows = _closed_without_fix(open_findings, linked)
    fixed_open, fixed_rows = _fixed_with_open_tickets(ctx, linked)
    durations, mttr_rows = _ticket_mttr(ctx, tickets)
    summary = {
        "evidence_collected": evidence.collected_before(T),
        "tickets_known": len(tickets),
        "escalation_hours": {s: window[s] for s in ESCALATED},
        "escalation": escalation,
        "closed_without_fix": len(closed_without_fix),
        "fixed_ticket_open": fixed_open,
        "ticket_mttr_hours": {s: _stats(durations[s]) for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")},
    }
    return summary, escalation_rows + closed_rows + fixed_rows + mttr_rows
