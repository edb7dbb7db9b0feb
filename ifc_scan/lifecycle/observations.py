"""Everything the lifecycle and the KPIs read from the warehouse, loaded once.

The one place where a scan's `observed_at` (and its source), its image identity, its CI scope, and
the production deploy history are derived (design/KPIS.md, "Scans, images, lineages").
"""

from __future__ import annotations

import bisect
import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

import pandas as pd


class ShownVuln(NamedTuple):
    """One finding as a scan shows it (a row of scan_vulnerabilities, minus its identity)."""
    severity: str | None
    fixed: str | None
    status: str | None
    cls: str | None
    suppressed: bool | None
    purl: str | None
    target: str | None
    title: str | None


@dataclass
class Scan:
    scan_id: str
    lineage: str
    image: str | None            # config digest (ImageID), or the manifest digest mapped to it
    observed_at: datetime
    observed_at_source: str       # created_at | ci | mtime
    is_registry: bool             # not a CI run's artifact
    ci_run_id: int | None
    source_path: str
    source_sha256: str
    lists_suppressed: bool
    scope_severity: frozenset | None = None
    scope_ignore_unfixed: bool = False
    scope_vuln_type: frozenset | None = None
    image_created: datetime | None = None
    findings: dict = field(default_factory=dict)   # (vuln_id, pkg_name, pkg_path) -> ShownVuln

    @property
    def partial(self) -> bool:
        return bool(self.scope_severity or self.scope_ignore_unfixed or self.scope_vuln_type)


@dataclass
class Deploy:
    lineage: str
    digest: str
    image: str | None
    time: datetime
    environment: str | None
    run_id: int
    log_file: str
    line_no: int | None
    outcome: str | None


def is_production_attempt(d: Deploy) -> bool:
    """A deploy step aimed at environment `production`, whatever its outcome. The build gate and the
    change-control evidence count attempts (conservative: a failed attempt still had to pass the gate)."""
    return (d.environment or "").lower() == "production"


def is_production_deploy(d: Deploy) -> bool:
    """A deploy that put its image in production: an attempt that did not fail (D4). Only these move
    a lineage's current image."""
    return is_production_attempt(d) and d.outcome != "failure"


@dataclass
class ExceptionEntry:
    scope: str
    snapshot_date: datetime
    file: str
    line_no: int | None
    section: str
    vuln_id: str | None
    expiry: datetime | None
    declared_expiry: datetime | None
    reason: str | None
    paths: list
    purls: list
    valid: bool
    invalid_reason: str | None
    sha256: str | None


@dataclass
class Observations:
    scans: list[Scan]
    deploys: list[Deploy]
    builds: list[dict]
    pushes: list[dict]
    aliases: dict                       # (lineage, manifest digest) -> config digest
    exceptions: list[ExceptionEntry]
    snapshots: dict                     # scope -> sorted [snapshot start datetime]
    deployable: dict                    # lineage -> name
    scope_lineage: dict                 # exception scope name -> lineage
    retired: dict                       # lineage -> retired_at
    scans_without_image: int = 0
    alias_sources: list = field(default_factory=list)   # (time, lineage, manifest digest, config digest)

    def _first_aliases(self) -> dict:
        """(lineage, manifest digest) -> (time it was first observed, config digest); undated ones never count."""
        cached = self.__dict__.get("_first_alias")
        if cached is None:
            cached = {}
            for when, lineage, digest, image_id in self.alias_sources:   # sorted by time
                if when is not None:
                    cached.setdefault((lineage, digest), (when, image_id))
            self.__dict__["_first_alias"] = cached
        return cached

    def as_of(self, t: datetime) -> "Observations":
        """Only what was observed before t: scans, CI events, aliases and exception snapshots.
        Scans, deploys, builds and pushes are time-ordered lists, so each is a prefix (bisect)."""
        first = self._first_aliases()
        aliases = {k: img for k, (when, img) in first.items() if when < t}
        scans = self.scans[:bisect.bisect_left(self.scans, t, key=lambda s: s.observed_at)]
        deploys = []
        for d in self.deploys[:bisect.bisect_left(self.deploys, t, key=lambda d: d.time)]:
            image = aliases.get((d.lineage, d.digest))
            deploys.append(d if image == d.image else replace(d, image=image))
        builds = [b if b["image"] == (b["image_id"] or aliases.get((b["lineage"], b["digest"])))
                  else {**b, "image": b["image_id"] or aliases.get((b["lineage"], b["digest"]))}
                  for b in self.builds[:bisect.bisect_left(self.builds, t, key=_event_time)]]
        pushes = [p if p["image"] == aliases.get((p["lineage"], p["digest"]))
                  else {**p, "image": aliases.get((p["lineage"], p["digest"]))}
                  for p in self.pushes[:bisect.bisect_left(self.pushes, t, key=_event_time)]]
        snapshots = {k: [d for d in v if d <= t] for k, v in self.snapshots.items()}
        exceptions = [e for e in self.exceptions if e.snapshot_date <= t]
        return Observations(scans, deploys, builds, pushes, aliases, exceptions, {k: v for k, v in snapshots.items() if v},
                            self.deployable, self.scope_lineage, self.retired, self.scans_without_image,
                            [a for a in self.alias_sources if a[0] is not None and a[0] < t])


def _event_time(event: dict) -> datetime:
    return event["time"] if event["time"] is not None else datetime.max     # undated events sort last


def _split_set(value: str | None) -> frozenset | None:
    """'CRITICAL,HIGH' -> {'CRITICAL', 'HIGH'}; empty -> None (no restriction)."""
    items = {v.strip().upper() for v in (value or "").split(",") if v.strip()}
    return frozenset(items) or None


_ATTRS = "severity, fixed_version, status, class, suppressed, purl, target, title"


def attach_findings(con, scans: list[Scan], every_scan: bool = False) -> None:
    """Each scan's findings, (vuln_id, pkg_name, pkg_path) -> ShownVuln, the first row winning where a scan
    lists one twice. Read as integer codes: a finding is shown by every nightly scan, so a year at org
    scale is millions of rows but few distinct keys and values, each made into a Python object once.
    Only the given scans' rows are read (an incremental lifecycle reads the night's), all when every_scan."""
    by_id = {s.scan_id: s for s in scans}
    if not by_id:
        return
    wanted = pd.DataFrame({"scan_id": list(by_id)}, dtype=object)  # noqa: F841 (read by DuckDB)
    source, order = "scan_vulnerabilities", "v.rowid"
    rows = "scan_vulnerabilities WHERE vulnerability_id IS NOT NULL"
    if not every_scan:      # the given scans' rows copied once: four passes over every stored row were O(history)
        con.execute("CREATE OR REPLACE TEMP TABLE _rows AS SELECT rowid AS rid, * FROM scan_vulnerabilities "
                    "WHERE vulnerability_id IS NOT NULL AND scan_id IN (SELECT scan_id FROM wanted)")
        source, order, rows = "_rows", "v.rid", "_rows"
    con.execute("CREATE OR REPLACE TEMP TABLE _keys AS SELECT row_number() OVER () - 1 AS k, * FROM ("
                "SELECT DISTINCT vulnerability_id AS vid, coalesce(pkg_name, '') AS pkg, coalesce(pkg_path, '') AS ppath "
                f"FROM {rows})")
    con.execute(f"CREATE OR REPLACE TEMP TABLE _attrs AS SELECT row_number() OVER () - 1 AS a, * FROM ("
                f"SELECT DISTINCT {_ATTRS} FROM {rows})")
    con.execute("CREATE OR REPLACE TEMP TABLE _scans AS SELECT row_number() OVER () - 1 AS s, scan_id FROM ("
                f"SELECT DISTINCT scan_id FROM {rows})")
    try:
        keys = [(v, p, pp) for _, v, p, pp in con.execute("SELECT * FROM _keys ORDER BY k").fetchall()]
        attrs = [ShownVuln(*r[1:]) for r in con.execute("SELECT * FROM _attrs ORDER BY a").fetchall()]
        targets = [by_id.get(sid) for _, sid in con.execute("SELECT * FROM _scans ORDER BY s").fetchall()]
        on_attrs = " AND ".join(f"v.{c} IS NOT DISTINCT FROM t.{c}" for c in _ATTRS.split(", "))
        codes = con.execute(
            f"SELECT s.s, k.k, t.a FROM {source} v JOIN _scans s USING (scan_id) "
            "JOIN _keys k ON k.vid = v.vulnerability_id AND k.pkg = coalesce(v.pkg_name, '') "
            "AND k.ppath = coalesce(v.pkg_path, '') "
            f"JOIN _attrs t ON {on_attrs} ORDER BY {order}").fetchnumpy()
    finally:
        con.execute("DROP TABLE IF EXISTS _keys; DROP TABLE IF EXISTS _attrs; DROP TABLE IF EXISTS _scans; "
                    "DROP TABLE IF EXISTS _rows")
    step = 500_000      # made into Python ints a slice at a time: all at once is ~100 B per row more at the peak
    for lo in range(0, len(codes["s"]), step):
        for si, ki, ai in zip(codes["s"][lo:lo + step].tolist(), codes["k"][lo:lo + step].tolist(),
                              codes["a"][lo:lo + step].tolist()):
            s = targets[si]
            if s is not None:
                s.findings.setdefault(keys[ki], attrs[ai])


# A build or push the log shows failing (a denied push, a build that stopped) produced no image: it is
# kept in ci_events as evidence but is no build to cover and no push (D15). A failed deploy is an attempt.
EVENT_HAPPENED = "coalesce(status, 'ok') <> 'failed'"


def _image_aliases(con) -> tuple[dict, list]:
    """(lineage, digest) -> image ID, from CI builds and scans' repo digests, the earliest source winning;
    and the sources themselves, (time, lineage, digest, image_id) in that order."""
    alias_sources = []
    for t, lineage, digest, image_id in con.execute(
            "SELECT time, lineage, digest, image_id FROM ci_events WHERE kind='build' AND digest IS NOT NULL "
            f"AND {EVENT_HAPPENED} "
            "AND image_id IS NOT NULL AND lineage IS NOT NULL ORDER BY time, run_id, line_no").fetchall():
        alias_sources.append((t, lineage, digest, image_id))
    scan_alias_rows = con.execute(
        "SELECT lineage, image_id, repo_digests, coalesce(created_at, file_mtime) FROM scans "
        "WHERE image_id IS NOT NULL AND lineage IS NOT NULL ORDER BY scan_id").fetchall()
    for lineage, image_id, digests, t in scan_alias_rows:
        for d in digests or []:
            if "@" in d:
                alias_sources.append((t, lineage, d.split("@", 1)[1].lower(), image_id))
    alias_sources.sort(key=lambda a: (a[0] or datetime.max, a[1], a[2]))
    aliases: dict = {}
    for _t, lineage, digest, image_id in alias_sources:
        aliases.setdefault((lineage, digest), image_id)
    return aliases, alias_sources


def _ci_scan_steps(con) -> dict:
    """CI scan steps by run: their completion time dates an artifact without CreatedAt; their `with:` the scope."""
    ci_scans = defaultdict(list)
    for run_id, lineage, t, sev, unfixed, vtype, output in con.execute(
            "SELECT run_id, lineage, time, scope_severity, scope_ignore_unfixed, scope_vuln_type, scan_output "
            "FROM ci_events WHERE kind='scan' ORDER BY time, line_no").fetchall():
        ci_scans[run_id].append(dict(lineage=lineage, time=t, severity=sev, unfixed=unfixed, vtype=vtype,
                                     output=os.path.basename(output) if output else None))
    return ci_scans


def _ci_step_of(ci_scans: dict, ci_run_id, path: str, lineage: str) -> dict | None:
    """The CI scan step that wrote this scan file: the one naming its output file, else the run's only
    step for its lineage."""
    if ci_run_id is None:
        return None
    cands = ci_scans.get(ci_run_id, [])
    base = os.path.basename(path)
    step = next((c for c in cands if c["output"] == base), None)
    if step is None:
        same = [c for c in cands if c["lineage"] == lineage]
        step = same[0] if len(same) == 1 else None
    return step


def _apply_ci_scope(s: Scan, step: dict) -> None:
    """The scan's scope as its CI step's `with:` declared it; every severity listed is no restriction."""
    s.scope_severity = _split_set(step["severity"])
    s.scope_ignore_unfixed = bool(step["unfixed"])
    s.scope_vuln_type = _split_set(step["vtype"])
    if s.scope_severity and s.scope_severity >= {"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"}:
        s.scope_severity = None


def observed_at(created_at, step: dict | None, mtime) -> tuple[datetime, str]:
    """A scan's observed_at and its source: CreatedAt, else its CI scan step's completion, else the file's mtime."""
    if created_at is not None:
        return created_at, "created_at"
    if step is not None and step["time"] is not None:
        return step["time"], "ci"
    return mtime, "mtime"


def observed_at_by_scan(con, scan_ids) -> dict[str, datetime]:
    """observed_at of the given scans by the rule above (any scan, with or without a lineage)."""
    wanted = sorted(set(scan_ids))
    if not wanted:
        return {}
    ci_scans = _ci_scan_steps(con)
    return {scan_id: observed_at(created_at, _ci_step_of(ci_scans, ci_run_id, path, lineage), mtime)[0]
            for scan_id, lineage, created_at, mtime, ci_run_id, path in con.execute(
                "SELECT scan_id, lineage, created_at, file_mtime, ci_run_id, source_path FROM scans "
                "WHERE scan_id IN (SELECT unnest(?::VARCHAR[]))", (wanted,)).fetchall()}


# the scans whose observed_at is their CreatedAt and whose image is their ImageID, with no alias or CI step read
_PLAIN_SCAN = "lineage IS NOT NULL AND image_id IS NOT NULL AND created_at IS NOT NULL"


def _load_scans(con, aliases: dict, ci_scans: dict, only_not_plain: bool = False) -> tuple[list[Scan], int]:
    """Every scan of a known lineage whose image can be identified (by its ID or a digest alias), dated by
    CreatedAt, else its CI step's completion, else the file's mtime; and how many had no image.
    only_not_plain: only the scans that need an alias or a CI step for that (evidence_span)."""
    scans: list[Scan] = []
    no_image = 0
    for (scan_id, lineage, image_id, digests, created_at, mtime, ci_run_id, path, sha, lists_sup,
         image_created) in con.execute(
            "SELECT scan_id, lineage, image_id, repo_digests, created_at, file_mtime, ci_run_id, source_path, "
            "source_sha256, lists_suppressed, image_created FROM scans WHERE lineage IS NOT NULL "
            + (f"AND NOT ({_PLAIN_SCAN}) " if only_not_plain else "") + "ORDER BY scan_id").fetchall():
        image = image_id
        if image is None:
            for d in digests or []:
                if "@" in d:
                    image = aliases.get((lineage, d.split("@", 1)[1].lower()))
        if image is None:
            no_image += 1
            continue
        step = _ci_step_of(ci_scans, ci_run_id, path, lineage)
        observed, source = observed_at(created_at, step, mtime)
        s = Scan(scan_id, lineage, image, observed, source, ci_run_id is None, ci_run_id, path, sha, bool(lists_sup),
                 image_created=image_created)
        if step is not None:
            _apply_ci_scope(s, step)
        scans.append(s)
    return scans, no_image


def _deploys(con, aliases: dict) -> list[Deploy]:
    return [Deploy(lineage, digest, aliases.get((lineage, digest)), t, env, run_id, log_file, line_no, outcome)
            for lineage, digest, t, env, run_id, log_file, line_no, outcome in con.execute(
                "SELECT lineage, digest, time, environment, run_id, log_file, line_no, "
                "CASE WHEN status = 'failed' THEN 'failure' ELSE outcome END FROM ci_events "
                "WHERE kind='deploy' AND digest IS NOT NULL AND lineage IS NOT NULL AND time IS NOT NULL "
                "ORDER BY time, run_id, line_no").fetchall()]


def _builds_and_pushes(con, aliases: dict) -> tuple[list[dict], list[dict]]:
    """Builds and pushes that happened, each with the image it produced where known."""
    builds = [dict(zip(("run_id", "lineage", "digest", "image_id", "time", "log_file", "line_no", "job_name", "outcome"), r))
              for r in con.execute("SELECT run_id, lineage, digest, image_id, time, log_file, line_no, job_name, outcome "
                                   f"FROM ci_events WHERE kind='build' AND lineage IS NOT NULL AND {EVENT_HAPPENED} "
                                   "ORDER BY time, run_id, line_no").fetchall()]
    for b in builds:
        b["image"] = b["image_id"] or aliases.get((b["lineage"], b["digest"]))
    pushes = [dict(zip(("run_id", "lineage", "digest", "time"), r)) for r in con.execute(
        f"SELECT run_id, lineage, digest, time FROM ci_events WHERE kind='push' AND lineage IS NOT NULL AND {EVENT_HAPPENED} "
        "ORDER BY time").fetchall()]
    for p in pushes:
        p["image"] = aliases.get((p["lineage"], p["digest"]))
    return builds, pushes


def _inventory(con, builds: list[dict]) -> tuple[dict, dict, dict]:
    """(deployable lineage -> name, name -> lineage, retired lineage -> when)."""
    deployable = dict(con.execute("SELECT lineage, name FROM inventory_deployable").fetchall())
    if not deployable:  # without an inventory, every lineage with a CI build event is deployable
        deployable = {b["lineage"]: b["lineage"].rsplit("/", 1)[-1] for b in builds}
    scope_lineage = {name: lin for lin, name in deployable.items()}
    retired = {lin: at for lin, at in con.execute(
        "SELECT lineage, min(retired_at) FROM inventory_retired GROUP BY lineage").fetchall()}
    return deployable, scope_lineage, retired


def _exception_records(con) -> tuple[list[ExceptionEntry], dict]:
    """Every exception entry of every snapshot, and each scope's snapshot dates in order."""
    exceptions = [ExceptionEntry(*r) for r in con.execute(
        "SELECT scope, CAST(snapshot_date AS TIMESTAMP), file, line_no, section, vuln_id, expiry, declared_expiry, reason, "
        "paths, purls, valid, invalid_reason, sha256 FROM exceptions ORDER BY scope, snapshot_date, file, line_no").fetchall()]
    snapshots: dict = defaultdict(list)
    for scope, d in con.execute("SELECT DISTINCT scope, CAST(snapshot_date AS TIMESTAMP) FROM exception_snapshots "
                                "ORDER BY 1, 2").fetchall():
        snapshots[scope].append(d)
    return exceptions, dict(snapshots)


def load(con, with_findings: bool = True) -> Observations:
    """Everything observed, over all time. with_findings=False leaves each scan's findings empty (the
    weekly stage reads the persisted lifecycle instead of raw findings)."""
    aliases, alias_sources = _image_aliases(con)
    scans, no_image = _load_scans(con, aliases, _ci_scan_steps(con))
    if with_findings:
        attach_findings(con, scans, every_scan=True)
    scans.sort(key=lambda s: (s.observed_at, s.scan_id))
    deploys = _deploys(con, aliases)
    builds, pushes = _builds_and_pushes(con, aliases)
    deployable, scope_lineage, retired = _inventory(con, builds)
    exceptions, snapshots = _exception_records(con)
    return Observations(scans, deploys, builds, pushes, aliases, exceptions, snapshots, deployable,
                        scope_lineage, retired, no_image, alias_sources)


def evidence_span(con) -> tuple[datetime, datetime] | None:
    """The first and last time of the evidence: every loaded scan's observed_at and every dated CI event.
    The same span as from load() without loading every scan: the plain scans' span is a SQL aggregate,
    only the others are dated here by _load_scans."""
    times = [t for t in con.execute(f"SELECT min(created_at), max(created_at) FROM scans WHERE {_PLAIN_SCAN}").fetchone()
             if t is not None]
    if con.execute(f"SELECT count(*) FROM scans WHERE lineage IS NOT NULL AND NOT ({_PLAIN_SCAN})").fetchone()[0]:
        # the aliases (every CI build and every scan's repo digests) only name the image of a scan without one
        unnamed = con.execute("SELECT count(*) FROM scans WHERE lineage IS NOT NULL AND image_id IS NULL").fetchone()[0]
        scans, _ = _load_scans(con, _image_aliases(con)[0] if unnamed else {}, _ci_scan_steps(con),
                               only_not_plain=True)
        times += [s.observed_at for s in scans if s.observed_at is not None]
    times += [t for t in con.execute("SELECT min(time), max(time) FROM ci_events WHERE time IS NOT NULL").fetchone()
              if t is not None]
    return (min(times), max(times)) if times else None


class ScanIndex:
    """Scans by lineage, by (lineage, image) and by image, each in (observed_at, scan_id) order, so a week's
    questions ("scans of X before t", "days with a scan in [S, T)") are answered by bisection instead of a
    pass over every scan. Built once per run from all scans; every query is bounded by the week's T, so
    an index of all scans and one of the scans before T give the same answers."""

    def __init__(self, scans: list[Scan]):
        self.by_id = {s.scan_id: s for s in scans}
        self.lineage = self._group(scans, lambda s: s.lineage)
        self.image = self._group(scans, lambda s: s.image)
        self.lineage_image = self._group(scans, lambda s: (s.lineage, s.image))
        self.created = self._group([s for s in scans if s.image_created is not None], lambda s: s.image)
        self.by_run_image: dict = {}
        for s in scans:
            if s.ci_run_id is not None:
                self.by_run_image.setdefault((s.ci_run_id, s.image), s.observed_at)   # the earliest
        self.fallback = {src: [s.observed_at for s in scans if s.observed_at_source == src] for src in ("ci", "mtime")}

    @staticmethod
    def _group(scans, key) -> dict:
        out: dict = defaultdict(lambda: ([], []))
        for s in scans:
            times, items = out[key(s)]
            times.append(s.observed_at)
            items.append(s)
        return dict(out)

    @staticmethod
    def _before(group, t) -> list:
        if group is None:
            return []
        times, items = group
        return items[:bisect.bisect_left(times, t)]

    def times(self, lineage: str, t: datetime) -> list[datetime]:
        g = self.lineage.get(lineage)
        return [] if g is None else g[0][:bisect.bisect_left(g[0], t)]

    def first_time(self, lineage: str, t: datetime) -> datetime | None:
        g = self.lineage.get(lineage)
        return g[0][0] if g and g[0][0] < t else None

    def any_between(self, lineage: str, a: datetime, b: datetime) -> bool:
        g = self.lineage.get(lineage)
        return bool(g) and bisect.bisect_left(g[0], b) > bisect.bisect_left(g[0], a)

    def of_image(self, image, t: datetime) -> list[Scan]:
        return self._before(self.image.get(image), t)

    def first_of_image(self, image, t: datetime) -> datetime | None:
        g = self.image.get(image)
        return g[0][0] if g and g[0][0] < t else None

    def latest(self, lineage: str, image, t: datetime) -> Scan | None:
        before = self._before(self.lineage_image.get((lineage, image)), t)
        return before[-1] if before else None

    def image_created(self, image, t: datetime) -> datetime | None:
        """ImageConfig.created from the first scan (in order) of the image that carries it, before t."""
        g = self.created.get(image)
        return g[1][0].image_created if g and g[0][0] < t else None

    def in_run(self, run_id, image, t: datetime) -> bool:
        first = self.by_run_image.get((run_id, image))
        return first is not None and first < t

    def fallback_count(self, source: str, t: datetime) -> int:
        return bisect.bisect_left(self.fallback[source], t)
