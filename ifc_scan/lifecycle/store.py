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
from ifc_scan.lifecycle.observations import Observations, is_production_deploy, load
from ifc_scan.lifecycle.timeline import build_lifecycle

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

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "earliest_change"}


def _empty_columns():
    return tuple({c: [] for c in cols} for cols in (FINDING_COLUMNS, EVENT_COLUMNS, MOMENT_COLUMNS, IMAGE_COLUMNS))


def _add_columns(cols, lc, as_of: datetime | None = None) -> None:
    """Append a lifecycle to column lists (not row tuples: a year at org scale is millions of events)."""
    f_cols, e_cols, m_cols, i_cols = cols
    for f in sorted(lc.findings.values(), key=lambda f: f.fid):
        for c, v in zip(FINDING_COLUMNS, (f.fid, as_of, f.lineage, f.vuln_id, f.pkg_name, f.pkg_path, f.detected_at,
                                          f.cause, f.purl, f.target, f.title)):
            f_cols[c].append(v)
        for i, e in enumerate(f.events):      # `present` events are already one per week (timeline.Event)
            for c, v in zip(EVENT_COLUMNS, (f.fid, as_of, i, e.time, e.kind, e.reason, e.severity, e.due_at, e.image,
                                            e.scan_id, e.target, e.purl, e.title, e.last_time or e.time, e.presences)):
                e_cols[c].append(v)
    for lineage in sorted(lc.moments):
        for i, m in enumerate(lc.moments[lineage]):
            for c, v in zip(MOMENT_COLUMNS, (lineage, as_of, i, m.time, m.image, m.scan.scan_id, m.via_deploy)):
                m_cols[c].append(v)
    for lineage in sorted(lc.current_images):
        for i, (since, image) in enumerate(lc.current_images[lineage]):
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


def derive_lifecycle(con, policy: dict) -> LifecycleCounts:
    """Rebuild the lifecycle from all observations and replace the stored one in one transaction."""
    obs = load(con)
    cols = _empty_columns()
    _add_columns(cols, build_lifecycle(obs, policy))
    main_lineages = len(set(cols[2]["lineage"]))
    corrections = {"lineage": [], "as_of": [], "reason": []}
    for lineage, ends in retroactive_week_ends(obs).items():
        for t in ends:
            _add_columns(cols, build_lifecycle(obs.as_of(t), policy, only={lineage}), as_of=t)
            corrections["lineage"].append(lineage)
            corrections["as_of"].append(t)
            corrections["reason"].append("a production deploy's image was identified only after this week end")
    f_cols, e_cols, m_cols, i_cols = cols
    sizes = (len(f_cols["finding_id"]), len(e_cols["finding_id"]), len(m_cols["lineage"]))
    frames = {"findings": _frame(f_cols), "finding_events": _frame(e_cols), "timeline_moments": _frame(m_cols),
              "current_images": _frame(i_cols), "lifecycle_corrections": _frame(corrections)}
    no_image = obs.scans_without_image
    del obs, cols, f_cols, e_cols, m_cols, i_cols
    con.execute("BEGIN TRANSACTION")
    try:
        new_events = frames["finding_events"]  # noqa: F841 (read by DuckDB)
        cols = ", ".join(EVENT_COLUMNS)
        earliest = con.execute(
            f"SELECT min(time) FROM ((SELECT {cols} FROM finding_events EXCEPT SELECT {cols} FROM new_events) "
            f"UNION ALL (SELECT {cols} FROM new_events EXCEPT SELECT {cols} FROM finding_events))").fetchone()[0]
        for table, df in frames.items():
            con.execute(f"DELETE FROM {table}")
            if len(df):
                con.register("frame", df)
                names = ", ".join(df.columns)
                con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM frame")
                con.unregister("frame")
        con.execute("INSERT OR REPLACE INTO derived_meta VALUES ('lifecycle_inputs', ?)", (inputs_digest(con, policy),))
        fault_point()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return LifecycleCounts(*sizes, main_lineages, no_image, len(corrections["lineage"]), earliest)
