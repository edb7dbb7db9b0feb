"""Which lineages a lifecycle build must walk again, and how a stored walk is resumed (issue 28).

Each lineage's walk is stored with where it stopped: `processed_until` (the time of its last scan or
production deploy) and a digest of everything the walk read up to then (its scans, production deploys,
alias observations, the exception snapshots that apply to it, its retirement). On the next build:
- the same digest, new items only after `processed_until`: the walk is resumed from its stored state
  (the walker's current image, the lineage's findings each with its last event, its moments) and only
  the new items are walked;
- a changed digest (a file dated before what was processed arrived, a file changed or went away, an alias
  or exception that rewrites the past), a new lineage, a retired one that changed, or a change to the
  week ends it needs corrections for: that lineage alone is walked again from its start;
- no new item: nothing is done for it.
A change to the SLA table or to a reader's version rebuilds every lineage (store.lifecycle_base).
The stored result is the one a full rebuild gives (ifc_scan_tests/test_incremental.py).
"""

from __future__ import annotations

import bisect
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from ifc_scan.lifecycle.exception_match import ExceptionIndex
from ifc_scan.lifecycle.observations import Observations, Scan, is_production_deploy
from ifc_scan.lifecycle.timeline import Event, Finding, Moment, Resume

LINEAGE_STATE_COLUMNS = ("lineage", "processed_until", "inputs_sha256", "current_image", "has_deploy", "moments",
                         "images", "corrections_sha256")
FINDING_STATE_COLUMNS = ("finding_id", "lineage", "vulnerability_id", "pkg_name", "pkg_path", "detected_at", "cause",
                         "purl", "target", "title", "cls", "fixed", "severity", "due_at", "is_open", "last_image",
                         "last_seq", "last_seen_scan", "last_close_time", "last_close_reason", "last_close_scan")


@dataclass
class LineageItems:
    scans: list = field(default_factory=list)          # in (observed_at, scan_id) order
    deploys: list = field(default_factory=list)        # production deploys, in time order
    aliases: list = field(default_factory=list)        # (time, manifest digest, config digest)

    def last_time(self) -> datetime | None:
        times = [s.observed_at for s in self.scans[-1:]] + [d.time for d in self.deploys[-1:]]
        return max(times, default=None)


def items_by_lineage(obs: Observations) -> dict[str, LineageItems]:
    out: dict[str, LineageItems] = defaultdict(LineageItems)
    for s in obs.scans:
        out[s.lineage].scans.append(s)
    for d in obs.deploys:
        if is_production_deploy(d):
            out[d.lineage].deploys.append(d)
    for when, lineage, digest, image in obs.alias_sources:
        if lineage in out:
            out[lineage].aliases.append((when, digest, image))
    return dict(out)


def _scan_key(s: Scan) -> tuple:
    return (s.scan_id, s.observed_at, s.image, s.is_registry, s.source_sha256, s.lists_suppressed,
            sorted(s.scope_severity or ()), s.scope_ignore_unfixed, sorted(s.scope_vuln_type or ()))


def lineage_digests(obs: Observations, exc: ExceptionIndex, lineage: str, items: LineageItems,
                    untils: list[datetime | None]) -> list[str]:
    """For each `until`, the sha256 of everything the lineage's walk reads up to it (all of it when the
    lineage is retired): the repr of (retirement, scan keys, deploys, aliases, exception snapshots). Each
    scan's key is made into text once for every `until` (its scans are in observed_at order, so the scans up
    to `until` are a prefix): a lineage's history was repr'd twice a night, its stored walk and its new end."""
    retired = obs.retired.get(lineage)
    scan_text = [repr(_scan_key(s)) for s in items.scans]
    scan_times = [s.observed_at for s in items.scans]
    out = []
    for until in untils:
        if retired is not None or until is None:
            until = datetime.max
        snapshots = [(scope, start, [tuple(e.__dict__.values()) for e in exc.by_snapshot.get((scope, start), [])])
                     for scope in sorted(obs.snapshots) if exc.scope_applies(scope, lineage)
                     for start in obs.snapshots[scope] if start <= until]
        scans = "[" + ", ".join(scan_text[:bisect.bisect_right(scan_times, until)]) + "]"
        # the text of repr((retired, [scan keys], [deploys], [aliases], snapshots)), the scans' part joined above
        text = (f"({retired!r}, {scans}, "
                f"{[(d.time, d.digest, d.image, d.run_id, d.line_no) for d in items.deploys if d.time <= until]!r}, "
                f"{[a for a in items.aliases if a[0] is None or a[0] <= until]!r}, {snapshots!r})")
        out.append(hashlib.sha256(text.encode()).hexdigest())
    return out


def corrections_digest(ends: list[datetime]) -> str:
    return hashlib.sha256(",".join(t.isoformat() for t in ends).encode()).hexdigest()


@dataclass
class Plan:
    rebuild: set[str]              # lineages walked from their start (every stored row of theirs replaced)
    extend: dict[str, tuple]       # lineage -> its stored state row (LINEAGE_STATE_COLUMNS): walk resumed
    digests: dict[str, str]        # lineage -> digest to store after the walk
    untouched: int


def plan_build(obs: Observations, exc: ExceptionIndex, items: dict[str, LineageItems], ends: dict[str, list],
               stored: dict[str, tuple] | None) -> Plan:
    """Decide per lineage: rebuild, extend or leave. `stored` None: rebuild everything."""
    plan = Plan(set(), {}, {}, 0)
    for lineage in sorted(set(items) | set(stored or {})):
        its = items.get(lineage, LineageItems())
        last = its.last_time()
        row = (stored or {}).get(lineage)
        if row is None or lineage not in items:
            plan.digests[lineage] = lineage_digests(obs, exc, lineage, its, [last])[0]
            plan.rebuild.add(lineage)
            continue
        state = dict(zip(LINEAGE_STATE_COLUMNS, row))
        until = state["processed_until"]
        plan.digests[lineage], walked = lineage_digests(obs, exc, lineage, its, [last, until])
        if walked != state["inputs_sha256"] \
                or corrections_digest(ends.get(lineage, [])) != state["corrections_sha256"]:
            plan.rebuild.add(lineage)
        elif last is not None and until is not None and last > until:
            if any(t > until for t in ends.get(lineage, [])):
                plan.rebuild.add(lineage)     # a correction after the stored walk: built from all its scans
            else:
                plan.extend[lineage] = row
        else:
            plan.untouched += 1
    return plan


def scans_to_read(plan: Plan, items: dict[str, LineageItems]) -> list[Scan]:
    """The scans whose findings the walk reads: all of a rebuilt lineage's; of an extended one, those after
    its stored walk and, for each new deploy, the scan of the deployed image it looks back at."""
    out = []
    for lineage in plan.rebuild:
        out.extend(items.get(lineage, LineageItems()).scans)
    for lineage, row in plan.extend.items():
        until = row[1]
        its = items[lineage]
        out.extend(s for s in its.scans if s.observed_at > until)
        for d in its.deploys:
            if d.time <= until:
                continue
            img = d.image or f"unmapped-manifest:{d.digest}"
            prior = [s for s in its.scans if s.image == img and s.observed_at < d.time]
            if prior and prior[-1].observed_at <= until:
                out.append(prior[-1])
    return list({s.scan_id: s for s in out}.values())


# An extended lineage's findings that its new items can touch: the open ones (a new scan may close them) and
# those a scan it reads shows (a closed one may reopen); each with its last stored event
_RESTORE_FINDINGS = f"""
SELECT {', '.join('s.' + c for c in FINDING_STATE_COLUMNS)}, e.time, e.kind, e.severity, e.due_at, e.image_id,
       e.scan_id, e.reason, e.target, e.purl, e.title, e.last_time, e.presences
FROM lifecycle_finding_state s
JOIN finding_events e ON e.finding_id = s.finding_id AND e.as_of IS NULL AND e.seq = s.last_seq
WHERE s.lineage IN (SELECT lineage FROM _resumed)
  AND (s.is_open OR (s.lineage, s.vulnerability_id, s.pkg_name, s.pkg_path) IN (SELECT * FROM _shown))
ORDER BY s.lineage, s.detected_at, s.finding_id
"""

# Its first moment (how a finding's cause is told) and the moments of the images its new items can make
# moments of (a new finding's cause looks at the earlier moments of the same image)
_RESTORE_MOMENTS = """
SELECT m.lineage, m.time, m.image_id, m.scan_id, m.via_deploy FROM timeline_moments m JOIN _resumed r USING (lineage)
WHERE m.as_of IS NULL AND (m.seq = 0 OR (m.lineage, m.image_id) IN (SELECT * FROM _images))
ORDER BY m.lineage, m.seq
"""


def _restore_scope(plan: Plan, scans: list[Scan]):
    """The frames the restore queries read: extended lineages, the keys their scans to read show, and the
    images their new items can put on the timeline."""
    import pandas as pd
    lineages = sorted(plan.extend)
    shown = {(s.lineage, *key) for s in scans if s.lineage in plan.extend for key in s.findings}
    images = {(lin, plan.extend[lin][3]) for lin in lineages} | {(s.lineage, s.image) for s in scans
                                                                 if s.lineage in plan.extend}
    return (pd.DataFrame({"lineage": lineages}, dtype=object),
            pd.DataFrame(sorted(shown), columns=["lineage", "vid", "pkg", "ppath"], dtype=object),
            pd.DataFrame(sorted(images, key=str), columns=["lineage", "image"], dtype=object))


def restore_walks(con, lc, plan: Plan, scans: list[Scan]) -> dict[str, tuple]:
    """Load into `lc` what each extended lineage's walk needs of its stored state (`scans`: those the walk
    reads, with their findings); returns finding_id -> its restored state, so the write can leave findings
    the night did not change untouched."""
    if not plan.extend:
        return {}
    for name, df in zip(("_resumed", "_shown", "_images"), _restore_scope(plan, scans)):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM df")
    try:
        rows = con.execute(_RESTORE_FINDINGS).fetchall()
        moment_rows = con.execute(_RESTORE_MOMENTS).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS _resumed; DROP TABLE IF EXISTS _shown; DROP TABLE IF EXISTS _images")
    by_lineage: dict[str, list[Finding]] = defaultdict(list)
    restored: dict[str, tuple] = {}
    for r in rows:
        f = _restored_finding(r)
        by_lineage[f.lineage].append(f)
        restored[f.fid] = finding_fingerprint(f)
    moments: dict[str, list[Moment]] = defaultdict(list)
    by_id = {s.scan_id: s for s in lc.obs.scans}
    for lineage, t, image, scan_id, via_deploy in moment_rows:
        moments[lineage].append(Moment(t, image, by_id[scan_id], via_deploy))
    for lineage in sorted(plan.extend):
        st = dict(zip(LINEAGE_STATE_COLUMNS, plan.extend[lineage]))
        lc.restore(lineage, Resume(st["processed_until"], st["current_image"], st["has_deploy"], st["moments"],
                                   st["images"]), by_lineage.get(lineage, []), moments.get(lineage, []))
    return restored


def _restored_finding(r: tuple) -> Finding:
    st = dict(zip(FINDING_STATE_COLUMNS, r[:len(FINDING_STATE_COLUMNS)]))
    t, kind, sev, due, image, scan_id, reason, target, purl, title, last_time, presences = r[len(FINDING_STATE_COLUMNS):]
    ev = Event(t, kind, sev, due, image, scan_id, reason, target, purl, title,
               last_time if kind == "present" else None, presences)
    key = (st["vulnerability_id"], st["pkg_name"], st["pkg_path"])
    close = None if st["last_close_time"] is None else (st["last_close_time"], st["last_close_reason"],
                                                         st["last_close_scan"])
    return Finding(st["finding_id"], st["lineage"], *key, st["detected_at"], st["cause"], st["purl"], st["target"],
                   st["title"], st["cls"], st["fixed"], st["severity"], st["due_at"], st["is_open"], st["last_image"],
                   [ev], key, st["last_seq"], (st["last_seen_scan"], close))


def finding_fingerprint(f: Finding) -> tuple:
    """What a stored finding's rows say (its state and its events): unchanged -> nothing to write."""
    return (f.detected_at, f.cause, f.purl, f.target, f.title, f.cls, f.fixed, f.severity, f.due_at, f.open,
            f.last_image, f.first_seq, tuple((e.time, e.kind, e.severity, e.due_at, e.image, e.scan_id, e.reason,
                                               e.target, e.purl, e.title, e.last_time or e.time, e.presences)
                                              for e in f.events))
