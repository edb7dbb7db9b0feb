"""The lifecycle read at an instant T: what every finding-based KPI of a week needs, as named rows.

Two providers give the same rows:
- `state_from_store(con, S, T)`: SQL over the persisted lifecycle (tables findings, finding_events,
  current_images): what the weekly stage reads. One query per week; no Python object per event.
- `state_from_lifecycle(lc, S, T)`: an in-memory Lifecycle built from the observations before T. This
  is the as-of-T recomputation of design/KPIS.md, kept as the oracle that tests and `verify` compare
  the persisted lifecycle against.

Reading rules (one definition each, design/KPIS.md "Lifecycle of a finding, as of T"):
- open at T: the last of its detect / reopen / close events before T is not a close;
- severity at T: the severity of its last presence (detect, present, reopen) before T;
- due at T: the due time carried by its last event before T;
- a close's severity: the severity of the last presence before the close.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import datetime

PRESENCE = ("detect", "present", "reopen")


@dataclass(frozen=True)
class FindingAtT:
    finding_id: str
    lineage: str
    vuln_id: str
    pkg_name: str
    pkg_path: str
    detected_at: datetime
    cause: str
    is_open: bool
    severity: str
    due_at: datetime | None
    target: str | None
    purl: str | None
    title: str | None
    last_seen_scan: str | None
    last_close_time: datetime | None
    last_close_reason: str | None


@dataclass(frozen=True)
class CloseAtT:
    finding_id: str
    time: datetime
    reason: str                 # fixed | withdrawn | retired
    severity: str               # at its last presence before the close
    due_at: datetime | None     # in force when it closed
    detected_at: datetime


@dataclass
class LifecycleAtT:
    start: datetime
    end: datetime
    findings: list[FindingAtT]               # detected before T, by finding_id
    closes: list[CloseAtT]                   # closes in [S, T), by (finding_id, time)
    regressions: int                         # reopens in [S, T)
    current_images: dict[str, list[tuple[datetime, str]]]   # lineage -> [(since, image)], since < T

    def open(self) -> list[FindingAtT]:
        return [f for f in self.findings if f.is_open]

    def current_image(self, lineage: str) -> str | None:
        hist = self.current_images.get(lineage)
        return hist[-1][1] if hist else None


# ---- the oracle: an in-memory Lifecycle built from the observations before T ----------------------

def state_from_lifecycle(lc, start: datetime, end: datetime) -> LifecycleAtT:
    findings, closes, regressions = [], [], 0
    for f in sorted(lc.findings.values(), key=lambda f: f.fid):
        if f.detected_at >= end:
            continue
        events = f.events[:bisect.bisect_left([e.time for e in f.events], end)]
        is_open = False
        for e in events:
            if e.kind in ("detect", "reopen"):
                is_open = True
            elif e.kind == "close":
                is_open = False
        presences = [e for e in events if e.kind in PRESENCE]
        last_close = next((e for e in reversed(events) if e.kind == "close"), None)
        last_p = presences[-1] if presences else events[0]
        findings.append(FindingAtT(
            f.fid, f.lineage, f.vuln_id, f.pkg_name, f.pkg_path, f.detected_at, f.cause, is_open,
            last_p.severity or "UNKNOWN", events[-1].due_at if events else None, last_p.target, last_p.purl,
            last_p.title, presences[-1].scan_id if presences else None,
            last_close.time if last_close else None, last_close.reason if last_close else None))
        for e in events:
            if e.time < start:
                continue
            if e.kind == "close":
                before = [p for p in presences if p.time < e.time]
                sev = (before[-1].severity if before else events[0].severity) or "UNKNOWN"
                closes.append(CloseAtT(f.fid, e.time, e.reason, sev, e.due_at, f.detected_at))
            elif e.kind == "reopen":
                regressions += 1
    images = {lin: [(t, img) for t, img in hist if t < end] for lin, hist in lc.current_images.items()}
    return LifecycleAtT(start, end, findings, closes, regressions, {k: v for k, v in images.items() if v})


# ---- the weekly stage's reader: SQL over the persisted lifecycle --------------------------------------

# The version of each lineage's lifecycle that week end T reads: the main one (as_of NULL), or the one
# stored as known at T for a lineage listed in lifecycle_corrections at T (ifc_scan/lifecycle/store.py).
_VERSION = """(({t}.as_of IS NULL AND {t}.{lineage} NOT IN (SELECT lineage FROM lifecycle_corrections WHERE as_of = $T))
      OR {t}.as_of = $T)"""
_F_VERSION = _VERSION.format(t="f", lineage="lineage")

_FINDINGS_AT_T = f"""
WITH ev AS (SELECT * FROM finding_events WHERE time < $T)
SELECT f.finding_id, f.lineage, f.vulnerability_id, f.pkg_name, f.pkg_path, f.detected_at, f.cause,
       arg_max(ev.kind, ev.seq) FILTER (WHERE ev.kind IN ('detect', 'reopen', 'close')) <> 'close' AS is_open,
       coalesce(arg_max_null(ev.severity, ev.seq) FILTER (WHERE ev.kind IN ('detect', 'present', 'reopen')),
                'UNKNOWN') AS severity,
       arg_max_null(ev.due_at, ev.seq) AS due_at,
       arg_max_null(ev.target, ev.seq) FILTER (WHERE ev.kind IN ('detect', 'present', 'reopen')) AS target,
       arg_max_null(ev.purl, ev.seq) FILTER (WHERE ev.kind IN ('detect', 'present', 'reopen')) AS purl,
       arg_max_null(ev.title, ev.seq) FILTER (WHERE ev.kind IN ('detect', 'present', 'reopen')) AS title,
       arg_max_null(ev.scan_id, ev.seq) FILTER (WHERE ev.kind IN ('detect', 'present', 'reopen')) AS last_seen_scan,
       max(ev.time) FILTER (WHERE ev.kind = 'close') AS last_close_time,
       arg_max_null(ev.reason, ev.seq) FILTER (WHERE ev.kind = 'close') AS last_close_reason
FROM findings f JOIN ev ON ev.finding_id = f.finding_id AND ev.as_of IS NOT DISTINCT FROM f.as_of
WHERE f.detected_at < $T AND {_F_VERSION}
GROUP BY ALL
ORDER BY f.finding_id
"""

_CLOSES_IN_WEEK = f"""
WITH f AS (SELECT * FROM findings f WHERE {_F_VERSION}),
     ev AS (SELECT e.* FROM finding_events e JOIN f ON e.finding_id = f.finding_id AND e.as_of IS NOT DISTINCT FROM f.as_of
            WHERE e.time < $T),
     c AS (SELECT * FROM ev WHERE kind = 'close' AND time >= $S)
SELECT c.finding_id, c.time, c.reason,
       coalesce((SELECT arg_max_null(p.severity, p.seq) FROM ev p
                 WHERE p.finding_id = c.finding_id AND p.time < c.time AND p.kind IN ('detect', 'present', 'reopen')),
                'UNKNOWN') AS severity,
       c.due_at, f.detected_at
FROM c JOIN f USING (finding_id)
ORDER BY c.finding_id, c.seq
"""

_REOPENS_IN_WEEK = f"""
SELECT count(*) FROM finding_events e JOIN findings f ON e.finding_id = f.finding_id AND e.as_of IS NOT DISTINCT FROM f.as_of
WHERE e.kind = 'reopen' AND e.time >= $S AND e.time < $T AND {_F_VERSION}
"""

_IMAGES_AT_T = f"""
SELECT lineage, since, image_id FROM current_images c WHERE since < $T AND {_VERSION.format(t="c", lineage="lineage")}
ORDER BY lineage, seq
"""


def state_from_store(con, start: datetime, end: datetime) -> LifecycleAtT:
    params = {"T": end}
    findings = [FindingAtT(*r) for r in con.execute(_FINDINGS_AT_T, params).fetchall()]
    closes = [CloseAtT(*r) for r in con.execute(_CLOSES_IN_WEEK, {"T": end, "S": start}).fetchall()]
    regressions = con.execute(_REOPENS_IN_WEEK, {"S": start, "T": end}).fetchone()[0]
    images: dict[str, list] = {}
    for lineage, since, image in con.execute(_IMAGES_AT_T, params).fetchall():
        images.setdefault(lineage, []).append((since, image))
    return LifecycleAtT(start, end, findings, closes, regressions, images)
