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
from typing import NamedTuple

PRESENCE = ("detect", "present", "reopen")


class FindingAtT(NamedTuple):
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
    last_close_scan: str | None          # the scan of the moment that closed it (None: retired)


class CloseAtT(NamedTuple):
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
    findings: list[FindingAtT]               # the ones a week reads (see relevant()), by finding_id
    closes: list[CloseAtT]                   # closes in [S, T), by (finding_id, time)
    regressions: int                         # reopens in [S, T)
    current_images: dict[str, list[tuple[datetime, str]]]   # lineage -> [(since, image)], since < T

    def open(self) -> list[FindingAtT]:
        return [f for f in self.findings if f.is_open]

    def current_image(self, lineage: str) -> str | None:
        hist = self.current_images.get(lineage)
        return hist[-1][1] if hist else None


def relevant(is_open: bool, severity: str, detected_at: datetime, last_close: datetime | None, start: datetime) -> bool:
    """The findings detected before T that any figure or population of the week reads: open at T, detected
    or last closed in [S, T), or CRITICAL at T (exceptions.critical_over_90d looks at every such ID)."""
    return is_open or severity == "CRITICAL" or detected_at >= start or (last_close is not None and last_close >= start)


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
        close_time = last_close.time if last_close else None
        if relevant(is_open, last_p.severity or "UNKNOWN", f.detected_at, close_time, start):
            findings.append(FindingAtT(
                f.fid, f.lineage, f.vuln_id, f.pkg_name, f.pkg_path, f.detected_at, f.cause, is_open,
                last_p.severity or "UNKNOWN", events[-1].due_at if events else None, last_p.target, last_p.purl,
                last_p.title, presences[-1].scan_id if presences else None,
                close_time, last_close.reason if last_close else None, last_close.scan_id if last_close else None))
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

# What a finding's events say of it, as of the last event aggregated (one definition: the full read at
# T and the incremental reader's delta both use it). Presences are detect, present and reopen events;
# the state is the last of detect, reopen and close; the due time is the last event's.
_AGGREGATE = """
       arg_max({e}.kind, {e}.seq) FILTER (WHERE {e}.kind IN ('detect', 'reopen', 'close')) AS state_kind,
       count(*) FILTER (WHERE {e}.kind IN ('detect', 'present', 'reopen')) AS presences,
       arg_max_null({e}.severity, {e}.seq) FILTER (WHERE {e}.kind IN ('detect', 'present', 'reopen')) AS severity,
       arg_max_null({e}.due_at, {e}.seq) AS due_at,
       arg_max_null({e}.target, {e}.seq) FILTER (WHERE {e}.kind IN ('detect', 'present', 'reopen')) AS target,
       arg_max_null({e}.purl, {e}.seq) FILTER (WHERE {e}.kind IN ('detect', 'present', 'reopen')) AS purl,
       arg_max_null({e}.title, {e}.seq) FILTER (WHERE {e}.kind IN ('detect', 'present', 'reopen')) AS title,
       arg_max_null({e}.scan_id, {e}.seq) FILTER (WHERE {e}.kind IN ('detect', 'present', 'reopen')) AS last_seen_scan,
       max({e}.time) FILTER (WHERE {e}.kind = 'close') AS last_close_time,
       arg_max_null({e}.reason, {e}.seq) FILTER (WHERE {e}.kind = 'close') AS last_close_reason,
       arg_max_null({e}.scan_id, {e}.seq) FILTER (WHERE {e}.kind = 'close') AS last_close_scan"""

_FINDINGS_AT_T = f"""
WITH ev AS (SELECT * FROM finding_events WHERE time < $T),
agg AS (
SELECT f.finding_id, f.lineage, f.vulnerability_id, f.pkg_name, f.pkg_path, f.detected_at, f.cause,{_AGGREGATE.format(e="ev")}
FROM findings f JOIN ev ON ev.finding_id = f.finding_id AND ev.as_of IS NOT DISTINCT FROM f.as_of
WHERE f.detected_at < $T AND {_F_VERSION}
GROUP BY ALL)
SELECT finding_id, lineage, vulnerability_id, pkg_name, pkg_path, detected_at, cause, state_kind <> 'close',
       coalesce(severity, 'UNKNOWN'), due_at, target, purl, title, last_seen_scan, last_close_time, last_close_reason,
       last_close_scan
FROM agg ORDER BY finding_id
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


_FINDING_ROWS = """
SELECT finding_id, lineage, vulnerability_id, pkg_name, pkg_path, detected_at, cause FROM findings WHERE as_of IS NULL
"""

# The main lifecycle's events in [A, B), one aggregate row per finding: what the window changes.
_DELTA = f"""
SELECT e.finding_id,{_AGGREGATE.format(e="e")}
FROM finding_events e WHERE e.as_of IS NULL AND e.time >= $A AND e.time < $B
GROUP BY e.finding_id
"""

# Every finding of the main lifecycle as it stands at instant $S (the state StoreReader carries): read from its
# stored final state (lifecycle_finding_state) when it has no event at or after $S, else aggregated from its
# events before $S. A week read alone so reads the findings and the events of those still changing, not
# every event of history.
_STATE_AT = f"""
WITH later AS (SELECT DISTINCT finding_id FROM finding_events WHERE as_of IS NULL AND time >= $S),
agg AS (SELECT e.finding_id,{_AGGREGATE.format(e="e")}
        FROM finding_events e WHERE e.as_of IS NULL AND e.time < $S AND e.finding_id IN (SELECT finding_id FROM later)
        GROUP BY e.finding_id)
SELECT finding_id, CASE WHEN is_open THEN 'detect' ELSE 'close' END, severity, target, purl, title, last_seen_scan,
       due_at, last_close_time, last_close_reason, last_close_scan
FROM lifecycle_finding_state WHERE detected_at < $S AND finding_id NOT IN (SELECT finding_id FROM later)
UNION ALL
SELECT finding_id, state_kind, severity, target, purl, title, last_seen_scan, due_at, last_close_time,
       last_close_reason, last_close_scan FROM agg
"""

# Closes and reopens in [S, T) of the main lifecycle, with the presences in [A, T) that precede each close
_WEEK_EVENTS = """
SELECT finding_id, seq, time, kind, reason, severity, due_at FROM finding_events
WHERE as_of IS NULL AND time >= $A AND time < $T AND (kind IN ('close', 'reopen') AND time >= $S
      OR kind IN ('detect', 'present', 'reopen') AND finding_id IN (
          SELECT finding_id FROM finding_events WHERE as_of IS NULL AND kind = 'close' AND time >= $S AND time < $T))
ORDER BY finding_id, seq
"""


class StoreReader:
    """Reads the persisted lifecycle at successive week ends, carrying each finding's state forward: week
    T aggregates only the events since the previous T it read, so a backfill of N weeks reads every event
    once (linear in history), not N times. The first week read (and any week read after a later one)
    starts from the state at its start S (_STATE_AT), so a week read alone reads its own events.
    Lineages with a correction at T (lifecycle_corrections) are read from their as-of-T version."""

    def __init__(self, con):
        self.con = con
        self.meta = {r[0]: r for r in con.execute(_FINDING_ROWS).fetchall()}
        self._reset()

    def _reset(self):
        self.read_until = datetime.min
        self.state: dict[str, list] = {}

    def _advance(self, end: datetime) -> None:
        if end < self.read_until:
            self._reset()
        for (fid, state_kind, presences, sev, due, target, purl, title, scan, close_t, close_r, close_s) in \
                self.con.execute(_DELTA, {"A": self.read_until, "B": end}).fetchall():
            old = self.state.get(fid)
            if old is None:
                self.state[fid] = [state_kind, sev, target, purl, title, scan, due, close_t, close_r, close_s]
                continue
            if state_kind is not None:
                old[0] = state_kind
            if presences:
                old[1:6] = [sev, target, purl, title, scan]
            old[6] = due
            if close_t is not None:
                old[7:10] = [close_t, close_r, close_s]
        self.read_until = end

    def _jump(self, start: datetime) -> None:
        """Start from the stored state at `start` instead of aggregating every event before it."""
        self.state = {r[0]: list(r[1:]) for r in self.con.execute(_STATE_AT, {"S": start}).fetchall()}
        self.read_until = start

    def read(self, start: datetime, end: datetime) -> LifecycleAtT:
        if self.read_until > start:      # an earlier or the same week again: start over
            self._reset()
        if self.read_until == datetime.min:
            self._jump(start)
        before_sev = {fid: v[1] for fid, v in self.state.items()}   # severities at the last week end read
        lower = self.read_until
        self._advance(end)
        findings = []
        for fid, st in self.state.items():
            m = self.meta[fid]
            is_open, sev = st[0] != "close", st[1] or "UNKNOWN"
            if m[5] < end and relevant(is_open, sev, m[5], st[7], start):
                findings.append(FindingAtT(*m, is_open, sev, st[6], st[2], st[3], st[4], st[5], st[7], st[8], st[9]))
        findings.sort()
        closes, regressions = self._week_events(start, end, lower, before_sev)
        corrected = {lin for (lin,) in self.con.execute("SELECT lineage FROM lifecycle_corrections WHERE as_of = ?",
                                                        (end,)).fetchall()}
        images = _images(self.con, end)
        if corrected:   # rare: the lineages whose past changed after T, read in full from their as-of-T version
            exact = state_from_store(self.con, start, end)
            findings = sorted([f for f in findings if f.lineage not in corrected] +
                              [f for f in exact.findings if f.lineage in corrected], key=lambda f: f.finding_id)
            closes = sorted([c for c in closes if self.meta[c.finding_id][1] not in corrected] +
                            [c for c in exact.closes if c.finding_id in {f.finding_id for f in exact.findings
                                                                           if f.lineage in corrected}],
                            key=lambda c: (c.finding_id, c.time))
            regressions = exact.regressions
        return LifecycleAtT(start, end, findings, closes, regressions, images)

    def _week_events(self, start, end, lower, before_sev):
        """Closes in [S, T) with the severity of the last presence before each (among the events since
        `lower`, else the severity held at `lower`), and the count of reopens in [S, T)."""
        rows = self.con.execute(_WEEK_EVENTS, {"A": lower, "S": start, "T": end}).fetchall()
        closes, regressions = [], 0
        for fid, _seq, time, kind, reason, _sev, due in rows:
            if kind == "reopen" and time >= start:
                regressions += 1
            if kind == "close" and time >= start:
                closes.append((fid, time, reason, due))
        # the severity of the last presence strictly before each close, from the ordered events
        closes_out = []
        by_fid: dict[str, list] = {}
        for fid, _seq, time, kind, reason, sev, due in rows:
            by_fid.setdefault(fid, []).append((time, kind, sev))
        for fid, time, reason, due in closes:
            sev = next((sv for t, k, sv in reversed(by_fid[fid]) if t < time and k in PRESENCE), None)
            if sev is None:
                sev = before_sev.get(fid)
            closes_out.append(CloseAtT(fid, time, reason, sev or "UNKNOWN", due, self.meta[fid][5]))
        return closes_out, regressions


def _images(con, end: datetime) -> dict:
    images: dict[str, list] = {}
    for lineage, since, image in con.execute(_IMAGES_AT_T, {"T": end}).fetchall():
        images.setdefault(lineage, []).append((since, image))
    return images


def state_from_store(con, start: datetime, end: datetime) -> LifecycleAtT:
    params = {"T": end}
    findings = [f for f in (FindingAtT(*r) for r in con.execute(_FINDINGS_AT_T, params).fetchall())
                if relevant(f.is_open, f.severity, f.detected_at, f.last_close_time, start)]
    closes = [CloseAtT(*r) for r in con.execute(_CLOSES_IN_WEEK, {"T": end, "S": start}).fetchall()]
    regressions = con.execute(_REOPENS_IN_WEEK, {"S": start, "T": end}).fetchone()[0]
    return LifecycleAtT(start, end, findings, closes, regressions, _images(con, end))
