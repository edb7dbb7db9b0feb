"""The lifecycle stage: build every finding's lifecycle once from all observations and persist it.

The walk is causal (each moment uses only what was observed before it), so the state at any T is
the persisted lifecycle read up to T (ifc_scan/lifecycle/state.py). The weekly stage reads these
tables and nothing else of the lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ifc_scan.faults import fault_point
from ifc_scan.lifecycle.observations import load
from ifc_scan.lifecycle.timeline import build_lifecycle

FINDING_COLUMNS = ("finding_id", "lineage", "vulnerability_id", "pkg_name", "pkg_path", "detected_at", "cause", "purl",
                   "target", "title")
EVENT_COLUMNS = ("finding_id", "seq", "time", "kind", "reason", "severity", "due_at", "image_id", "scan_id", "target",
                 "purl", "title")
MOMENT_COLUMNS = ("lineage", "seq", "time", "image_id", "scan_id", "via_deploy")
IMAGE_COLUMNS = ("lineage", "seq", "since", "image_id")


@dataclass
class LifecycleCounts:
    findings: int
    finding_events: int
    timeline_moments: int
    lineages: int
    scans_without_image: int
    earliest_change: object      # datetime of the earliest event that differs from the stored lifecycle, or None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "earliest_change"}


def _columns(lc):
    """Column lists (not row tuples: a year at org scale is millions of events)."""
    f_cols = {c: [] for c in FINDING_COLUMNS}
    e_cols = {c: [] for c in EVENT_COLUMNS}
    for f in sorted(lc.findings.values(), key=lambda f: f.fid):
        for c, v in zip(FINDING_COLUMNS, (f.fid, f.lineage, f.vuln_id, f.pkg_name, f.pkg_path, f.detected_at, f.cause,
                                          f.purl, f.target, f.title)):
            f_cols[c].append(v)
        for i, e in enumerate(f.events):
            for c, v in zip(EVENT_COLUMNS, (f.fid, i, e.time, e.kind, e.reason, e.severity, e.due_at, e.image,
                                            e.scan_id, e.target, e.purl, e.title)):
                e_cols[c].append(v)
    m_cols = {c: [] for c in MOMENT_COLUMNS}
    for lineage in sorted(lc.moments):
        for i, m in enumerate(lc.moments[lineage]):
            for c, v in zip(MOMENT_COLUMNS, (lineage, i, m.time, m.image, m.scan.scan_id, m.via_deploy)):
                m_cols[c].append(v)
    i_cols = {c: [] for c in IMAGE_COLUMNS}
    for lineage in sorted(lc.current_images):
        for i, (since, image) in enumerate(lc.current_images[lineage]):
            for c, v in zip(IMAGE_COLUMNS, (lineage, i, since, image)):
                i_cols[c].append(v)
    return f_cols, e_cols, m_cols, i_cols


def _frame(cols: dict) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in cols.items()})


def derive_lifecycle(con, policy: dict) -> LifecycleCounts:
    """Rebuild the lifecycle from all observations and replace the stored one in one transaction."""
    obs = load(con)
    lc = build_lifecycle(obs, policy)
    f_cols, e_cols, m_cols, i_cols = _columns(lc)
    frames = {"findings": _frame(f_cols), "finding_events": _frame(e_cols), "timeline_moments": _frame(m_cols),
              "current_images": _frame(i_cols)}
    no_image = obs.scans_without_image
    del lc, obs
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
        fault_point()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return LifecycleCounts(len(f_cols["finding_id"]), len(e_cols["finding_id"]), len(m_cols["lineage"]),
                           len(set(m_cols["lineage"])), no_image, earliest)
