"""The lifecycle stage: build every finding's lifecycle once from all observations and persist it.

The walk is causal (each moment uses only what was observed before it), so the state at any T is
the persisted lifecycle read up to T (ifc_scan/lifecycle/state.py). The weekly stage reads these
tables and nothing else of the lifecycle.

One observation is not causal by KPIS.md's own rule: which image a deploy put in production is known
only once an alias (manifest digest -> config digest) is observed, which can be after the deploy. For
a week end T between the deploy and that observation, the as-of-T reading does not know the image
yet. For exactly those (lineage, T) the lineage's lifecycle as known at T is stored beside the main
one (as_of = T, listed in lifecycle_corrections), so every week still reads what was known before T.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd

from ifc_scan.faults import fault_point
from ifc_scan.gcpause import cyclic_gc_paused
from ifc_scan.lifecycle.exception_match import ExceptionIndex
from ifc_scan.lifecycle.incremental import (FINDING_STATE_COLUMNS, LINEAGE_STATE_COLUMNS, corrections_digest,
                                            finding_fingerprint, items_by_lineage, plan_build, restore_walks,
                                            scans_to_read)
from ifc_scan.lifecycle.observations import Observations, attach_findings, is_production_deploy, load
from ifc_scan.lifecycle.timeline import Lifecycle, build_lifecycle

FINDING_COLUMNS = ("finding_id", "as_of", "lineage", "vulnerability_id", "pkg_name", "pkg_path", "detected_at", "cause", "purl",
                   "target", "title")
EVENT_COLUMNS = ("finding_id", "as_of", "seq", "time", "kind", "reason", "severity", "due_at", "image_id", "scan_id", "target",
                 "purl", "title", "last_time", "presences")
MOMENT_COLUMNS = ("lineage", "as_of", "seq", "time", "image_id", "scan_id", "via_deploy")
IMAGE_COLUMNS = ("lineage", "as_of", "seq", "since", "image_id")


_INPUTS_DIGEST = ("SELECT coalesce(sha256(string_agg(path || ':' || sha256, ',' ORDER BY path, sha256)), '') "
                  "FROM source_files WHERE status = 'ingested'")


class LifecycleOutOfDate(RuntimeError):
    pass


def inputs_digest(con, policy: dict) -> str:
    """Which ingested files the warehouse holds and the SLA table (due times depend on it): the lifecycle
    records the digest it was built from."""
    files = con.execute(_INPUTS_DIGEST).fetchone()[0]
    sla = json.dumps(policy["sla_hours"], sort_keys=True)
    readers = dict(con.execute("SELECT key, value FROM derived_meta WHERE key IN "
                               "('ci_reader_version', 'exception_reader_version')").fetchall())
    return hashlib.sha256(f"{files}|{sla}|ci-reader:{readers.get('ci_reader_version', '')}"
                          f"|exception-reader:{readers.get('exception_reader_version', '')}".encode()).hexdigest()


def lifecycle_is_current(con, policy: dict) -> bool:
    row = con.execute("SELECT value FROM derived_meta WHERE key = 'lifecycle_inputs'").fetchone()
    return row is not None and row[0] == inputs_digest(con, policy)


def require_current_lifecycle(con, policy: dict) -> None:
    """The weekly stage reads the lifecycle; refuse to compute weeks from one built before the last ingest
    (or with another SLA table)."""
    if not lifecycle_is_current(con, policy):
        raise LifecycleOutOfDate("the finding lifecycle was not built from the warehouse's current inputs: "
                                 "materialise finding_lifecycle (ingest_job) or run `ifc-scan report`, which builds it")


@dataclass
class LifecycleCounts:
    findings: int
    finding_events: int
    timeline_moments: int
    lineages: int
    scans_without_image: int
    corrections: int             # (lineage, week end) pairs stored as known at that week end
    earliest_change: object      # datetime of the earliest event that differs from the stored lifecycle, or None
    lineages_rebuilt: int = 0    # walked again from their start
    lineages_extended: int = 0   # walk resumed from its stored state

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "earliest_change"}


def _empty_columns():
    return tuple({c: [] for c in cols} for cols in (FINDING_COLUMNS, EVENT_COLUMNS, MOMENT_COLUMNS, IMAGE_COLUMNS,
                                                    FINDING_STATE_COLUMNS))


def _add_columns(cols, lc, as_of: datetime | None = None, write=None) -> None:
    """Append a lifecycle to column lists (not row tuples: a year at org scale is millions of events).
    A resumed lineage (lc.resumed) adds only what its walk added; `write(finding)` False leaves a finding
    whose stored rows are unchanged. The main lifecycle (as_of None) also gives each finding's state."""
    f_cols, e_cols, m_cols, i_cols, s_cols = cols
    for f in sorted(lc.findings.values(), key=lambda f: f.fid):
        if write is not None and not write(f):
            continue
        for c, v in zip(FINDING_COLUMNS, (f.fid, as_of, f.lineage, f.vuln_id, f.pkg_name, f.pkg_path, f.detected_at,
                                          f.cause, f.purl, f.target, f.title)):
            f_cols[c].append(v)
        for i, e in enumerate(f.events, start=f.first_seq):   # `present` events are already one per week
            for c, v in zip(EVENT_COLUMNS, (f.fid, as_of, i, e.time, e.kind, e.reason, e.severity, e.due_at, e.image,
                                            e.scan_id, e.target, e.purl, e.title, e.last_time or e.time, e.presences)):
                e_cols[c].append(v)
        if as_of is None:
            seen, close = f.last_seen_and_close()
            close = close or (None, None, None)
            for c, v in zip(FINDING_STATE_COLUMNS, (f.fid, f.lineage, f.vuln_id, f.pkg_name, f.pkg_path, f.detected_at,
                                                    f.cause, f.purl, f.target, f.title, f.cls, f.fixed, f.severity,
                                                    f.due_at, f.open, f.last_image, f.first_seq + len(f.events) - 1,
                                                    seen, *close)):
                s_cols[c].append(v)
    for lineage in sorted(lc.moments):
        resume = lc.resumed.get(lineage)
        new = lc.moments[lineage][resume.moments_restored:] if resume else lc.moments[lineage]
        for i, m in enumerate(new, start=resume.moments_stored if resume else 0):
            for c, v in zip(MOMENT_COLUMNS, (lineage, as_of, i, m.time, m.image, m.scan.scan_id, m.via_deploy)):
                m_cols[c].append(v)
    for lineage in sorted(lc.current_images):
        resume = lc.resumed.get(lineage)
        for i, (since, image) in enumerate(lc.current_images[lineage], start=resume.images_stored if resume else 0):
            for c, v in zip(IMAGE_COLUMNS, (lineage, as_of, i, since, image)):
                i_cols[c].append(v)


def retroactive_week_ends(obs: Observations) -> dict[str, list[datetime]]:
    """lineage -> the week ends T (Mondays 00:00) at which one of its production deploys was before T but
    the alias naming the deployed image was not yet observed (observed at or after T, or never dated)."""
    first_known: dict = {}
    for when, lineage, digest, _image in obs.alias_sources:   # sorted by time, undated last
        first_known.setdefault((lineage, digest), when)
    horizon = max([s.observed_at for s in obs.scans] + [d.time for d in obs.deploys], default=None)
    out: dict[str, set] = {}
    for d in obs.deploys:
        if d.image is None or not is_production_deploy(d):
            continue
        when = first_known.get((d.lineage, d.digest))
        last = when if when is not None else (horizon + timedelta(days=7) if horizon else d.time)
        if when is not None and when <= d.time:
            continue
        day = d.time.date() + timedelta(days=7 - d.time.weekday())      # the Monday after the deploy
        t = datetime(day.year, day.month, day.day)
        while t <= last:
            out.setdefault(d.lineage, set()).add(t)
            t += timedelta(days=7)
    return {lin: sorted(ts) for lin, ts in out.items()}


def _frame(cols: dict) -> pd.DataFrame:
    """Columns to a frame, emptying each list as it goes (a year at org scale is millions of events)."""
    data = {}
    for c in list(cols):
        data[c] = pd.Series(cols[c], dtype=object)
        cols[c].clear()
    return pd.DataFrame(data)


def lifecycle_base(con, policy: dict) -> str:
    """What every lineage's walk depends on besides its own observations: the SLA table (due times) and the
    readers' versions. A change rebuilds every lineage; anything else rebuilds or extends only the lineages
    it touches (ifc_scan/lifecycle/incremental.py)."""
    readers = dict(con.execute("SELECT key, value FROM derived_meta WHERE key IN "
                               "('ci_reader_version', 'exception_reader_version')").fetchall())
    return hashlib.sha256(json.dumps([policy["sla_hours"], readers], sort_keys=True).encode()).hexdigest()


def _stored_states(con, policy: dict) -> dict | None:
    """lineage -> its stored walk state, or None when the stored lifecycle was built with another SLA table or
    reader version (then every lineage is walked again)."""
    row = con.execute("SELECT value FROM derived_meta WHERE key = 'lifecycle_base'").fetchone()
    if row is None or row[0] != lifecycle_base(con, policy):
        return None
    cols = ", ".join(LINEAGE_STATE_COLUMNS)
    return {r[0]: r for r in con.execute(f"SELECT {cols} FROM lifecycle_lineage_state").fetchall()}


def derive_lifecycle(con, policy: dict, full: bool = False) -> LifecycleCounts:
    """Bring the stored lifecycle up to the warehouse's observations (_derive_lifecycle), with the cyclic
    garbage collector paused while it holds every scan's metadata and the walk (ifc_scan/gcpause.py)."""
    with cyclic_gc_paused():
        return _derive_lifecycle(con, policy, full)


def _derive_lifecycle(con, policy: dict, full: bool = False) -> LifecycleCounts:
    """Bring the stored lifecycle up to the warehouse's observations: walk only the lineages the new
    observations touch (extended from their stored walk, or from their start when something before it
    changed), or every lineage when `full` or the SLA table or a reader changed. The stored result is the
    same either way; it is replaced in one transaction."""
    obs = load(con, with_findings=False)
    items = items_by_lineage(obs)
    ends = retroactive_week_ends(obs)
    stored = None if full else _stored_states(con, policy)
    plan = plan_build(obs, ExceptionIndex(obs), items, ends, stored)
    to_read = scans_to_read(plan, items)
    attach_findings(con, to_read, every_scan=stored is None)
    lc = Lifecycle(obs, policy)
    restored = restore_walks(con, lc, plan, to_read)
    lc.run(only=plan.rebuild | set(plan.extend))
    cols = _empty_columns()
    _add_columns(cols, lc, write=lambda f: f.fid not in restored or finding_fingerprint(f) != restored[f.fid])
    states = _lineage_states(lc, plan, items, ends)
    del lc, restored
    corrections = {"lineage": [], "as_of": [], "reason": []}
    for lineage in sorted(plan.rebuild):
        for t in ends.get(lineage, []):
            _add_columns(cols, build_lifecycle(obs.as_of(t), policy, only={lineage}), as_of=t)
            corrections["lineage"].append(lineage)
            corrections["as_of"].append(t)
            corrections["reason"].append("a production deploy's image was identified only after this week end")
    no_image = obs.scans_without_image
    del obs, items
    frames = {name: _frame(c) for name, c in zip(("findings", "finding_events", "timeline_moments", "current_images",
                                                  "lifecycle_finding_state"), cols)}
    frames["lifecycle_corrections"] = _frame(corrections)
    frames["lifecycle_lineage_state"] = _frame(states)
    del cols
    earliest = _replace_rows(con, plan, frames, everything=stored is None, policy=policy)
    sizes = [con.execute(q).fetchone()[0] for q in (
        "SELECT count(*) FROM findings", "SELECT count(*) FROM finding_events", "SELECT count(*) FROM timeline_moments",
        "SELECT count(DISTINCT lineage) FROM timeline_moments WHERE as_of IS NULL",
        "SELECT count(*) FROM lifecycle_corrections")]
    return LifecycleCounts(*sizes[:4], no_image, sizes[4], earliest, len(plan.rebuild), len(plan.extend))


def _lineage_states(lc, plan, items: dict, ends: dict) -> dict:
    """The stored walk state of every lineage walked (LINEAGE_STATE_COLUMNS)."""
    out = {c: [] for c in LINEAGE_STATE_COLUMNS}
    for lineage in sorted(plan.rebuild | set(plan.extend)):
        if lineage not in items:
            continue
        current, has_deploy = lc.walk_state.get(lineage, (None, False))
        resume = lc.resumed.get(lineage)
        images = (resume.images_stored if resume else 0) + len(lc.current_images.get(lineage, []))
        moments = len(lc.moments.get(lineage, [])) + ((resume.moments_stored - resume.moments_restored) if resume else 0)
        for c, v in zip(LINEAGE_STATE_COLUMNS, (lineage, items[lineage].last_time(), plan.digests[lineage], current,
                                                has_deploy, moments, images,
                                                corrections_digest(ends.get(lineage, [])))):
            out[c].append(v)
    return out


# Rows of the lineages walked again from their start, and the rows a resumed walk rewrites (a finding's
# events from its last stored one on, its row and state; the lineage's state)
_DELETES = {
    # the rewritten events as a semi-join on (finding_id, seq): a correlated EXISTS was planned as a delim join
    # over every stored event (1.7 s of a night's lifecycle step at a year)
    "finding_events": "finding_id IN (SELECT finding_id FROM findings WHERE lineage IN (SELECT lineage FROM _rebuilt)) "
                      "OR (as_of IS NULL AND (finding_id, seq) IN (SELECT e.finding_id, e.seq FROM finding_events e "
                      "JOIN _rewritten r ON r.finding_id = e.finding_id AND e.seq >= r.from_seq WHERE e.as_of IS NULL))",
    "findings": "lineage IN (SELECT lineage FROM _rebuilt) "
                "OR (as_of IS NULL AND finding_id IN (SELECT finding_id FROM _rewritten))",
    "timeline_moments": "lineage IN (SELECT lineage FROM _rebuilt)",
    "current_images": "lineage IN (SELECT lineage FROM _rebuilt)",
    "lifecycle_corrections": "lineage IN (SELECT lineage FROM _rebuilt)",
    "lifecycle_finding_state": "lineage IN (SELECT lineage FROM _rebuilt) "
                               "OR finding_id IN (SELECT finding_id FROM _rewritten)",
    "lifecycle_lineage_state": "lineage IN (SELECT lineage FROM _rebuilt) OR lineage IN (SELECT lineage FROM _extended)",
}


def _replace_rows(con, plan, frames: dict, everything: bool, policy: dict):
    """Delete the rows being replaced and insert the new ones, in one transaction; returns the time of the
    earliest event that differs from what was stored (None: no event changed)."""
    rebuilt = pd.DataFrame({"lineage": sorted(plan.rebuild)}, dtype=object)  # noqa: F841 (read by DuckDB)
    extended = pd.DataFrame({"lineage": sorted(plan.extend)}, dtype=object)  # noqa: F841
    new_events = frames["finding_events"]  # noqa: F841
    cols = ", ".join(EVENT_COLUMNS)
    con.execute("BEGIN TRANSACTION")
    try:
        replaced = "finding_events"      # everything: no copy of the whole table
        if not everything:
            for name, df in (("_rebuilt", rebuilt), ("_extended", extended)):
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM df")
            con.execute("CREATE OR REPLACE TEMP TABLE _rewritten AS SELECT finding_id, min(seq) AS from_seq "
                        "FROM new_events WHERE as_of IS NULL GROUP BY finding_id")
            con.execute(f"CREATE OR REPLACE TEMP TABLE _replaced AS SELECT {cols} FROM finding_events "
                        f"WHERE {_DELETES['finding_events']}")
            replaced = "_replaced"
        earliest = con.execute(
            f"SELECT min(time) FROM ((SELECT {cols} FROM {replaced} EXCEPT SELECT {cols} FROM new_events) "
            f"UNION ALL (SELECT {cols} FROM new_events EXCEPT SELECT {cols} FROM {replaced}))").fetchone()[0]
        for table, where in _DELETES.items():
            con.execute(f"DELETE FROM {table}" + ("" if everything else f" WHERE {where}"))
        for table, df in frames.items():
            if len(df):
                con.register("frame", df)
                names = ", ".join(df.columns)
                con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM frame")
                con.unregister("frame")
        con.execute("INSERT OR REPLACE INTO derived_meta VALUES ('lifecycle_inputs', ?)", (inputs_digest(con, policy),))
        con.execute("INSERT OR REPLACE INTO derived_meta VALUES ('lifecycle_base', ?)", (lifecycle_base(con, policy),))
        fault_point()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS _rebuilt; DROP TABLE IF EXISTS _extended; DROP TABLE IF EXISTS _rewritten; "
                    "DROP TABLE IF EXISTS _replaced")
    return earliest
