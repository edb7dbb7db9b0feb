"""Everything the lifecycle and the KPIs read from the warehouse, loaded once.

The one place where a scan's `observed_at` (and its source), its image identity, its CI scope, and
the production deploy history are derived (design/KPIS.md, "Scans, images, lineages").
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime


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
    findings: dict = field(default_factory=dict)   # (vuln_id, pkg_name, pkg_path) -> row dict

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

    def as_of(self, t: datetime) -> "Observations":
        """Only what was observed before t: scans, CI events, aliases and exception snapshots."""
        aliases: dict = {}
        for when, lineage, digest, image_id in self.alias_sources:
            if when is not None and when < t:
                aliases.setdefault((lineage, digest), image_id)
        scans = [s for s in self.scans if s.observed_at < t]
        deploys = [replace(d, image=aliases.get((d.lineage, d.digest))) for d in self.deploys if d.time < t]
        builds = [{**b, "image": b["image_id"] or aliases.get((b["lineage"], b["digest"]))}
                  for b in self.builds if b["time"] is not None and b["time"] < t]
        pushes = [{**p, "image": aliases.get((p["lineage"], p["digest"]))}
                  for p in self.pushes if p["time"] is not None and p["time"] < t]
        snapshots = {k: [d for d in v if d <= t] for k, v in self.snapshots.items()}
        exceptions = [e for e in self.exceptions if e.snapshot_date <= t]
        return Observations(scans, deploys, builds, pushes, aliases, exceptions, {k: v for k, v in snapshots.items() if v},
                            self.deployable, self.scope_lineage, self.retired, self.scans_without_image,
                            [a for a in self.alias_sources if a[0] is not None and a[0] < t])


def _split_set(value: str | None) -> frozenset | None:
    """'CRITICAL,HIGH' -> {'CRITICAL', 'HIGH'}; empty -> None (no restriction)."""
    items = {v.strip().upper() for v in (value or "").split(",") if v.strip()}
    return frozenset(items) or None


def load(con, with_findings: bool = True) -> Observations:
    """Everything observed, over all time. with_findings=False leaves each scan's findings empty (the
    weekly stage reads the persisted lifecycle instead of raw findings)."""
    alias_sources = []
    for t, lineage, digest, image_id in con.execute(
            "SELECT time, lineage, digest, image_id FROM ci_events WHERE kind='build' AND digest IS NOT NULL "
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

    # CI scan steps: their completion time dates an artifact without CreatedAt; their `with:` the scope
    ci_scans = defaultdict(list)
    for run_id, lineage, t, sev, unfixed, vtype, output in con.execute(
            "SELECT run_id, lineage, time, scope_severity, scope_ignore_unfixed, scope_vuln_type, scan_output "
            "FROM ci_events WHERE kind='scan' ORDER BY time, line_no").fetchall():
        ci_scans[run_id].append(dict(lineage=lineage, time=t, severity=sev, unfixed=unfixed, vtype=vtype,
                                     output=os.path.basename(output) if output else None))

    scans: list[Scan] = []
    by_id: dict[str, Scan] = {}
    no_image = 0
    for (scan_id, lineage, image_id, digests, created_at, mtime, ci_run_id, path, sha, lists_sup,
         image_created) in con.execute(
            "SELECT scan_id, lineage, image_id, repo_digests, created_at, file_mtime, ci_run_id, source_path, "
            "source_sha256, lists_suppressed, image_created FROM scans WHERE lineage IS NOT NULL ORDER BY scan_id").fetchall():
        image = image_id
        if image is None:
            for d in digests or []:
                if "@" in d:
                    image = aliases.get((lineage, d.split("@", 1)[1].lower()))
        if image is None:
            no_image += 1
            continue
        step = None
        if ci_run_id is not None:
            cands = ci_scans.get(ci_run_id, [])
            base = os.path.basename(path)
            step = next((c for c in cands if c["output"] == base), None)
            if step is None:
                same = [c for c in cands if c["lineage"] == lineage]
                step = same[0] if len(same) == 1 else None
        if created_at is not None:
            observed, source = created_at, "created_at"
        elif step is not None and step["time"] is not None:
            observed, source = step["time"], "ci"
        else:
            observed, source = mtime, "mtime"
        s = Scan(scan_id, lineage, image, observed, source, ci_run_id is None, ci_run_id, path, sha, bool(lists_sup),
                 image_created=image_created)
        if step is not None:
            s.scope_severity = _split_set(step["severity"])
            s.scope_ignore_unfixed = bool(step["unfixed"])
            s.scope_vuln_type = _split_set(step["vtype"])
            if s.scope_severity and s.scope_severity >= {"CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"}:
                s.scope_severity = None
        scans.append(s)
        by_id[scan_id] = s
    if by_id and with_findings:
        cur = con.execute(
            "SELECT scan_id, vulnerability_id, pkg_name, coalesce(pkg_path, ''), severity, fixed_version, status, "
            "class, suppressed, purl, target, title FROM scan_vulnerabilities WHERE vulnerability_id IS NOT NULL")
        while True:
            chunk = cur.fetchmany(50000)
            if not chunk:
                break
            for sid, vid, pkg, ppath, sev, fixed, status, cls, sup, purl, target, title in chunk:
                s = by_id.get(sid)
                if s is not None:
                    s.findings.setdefault((vid, pkg or "", ppath), dict(severity=sev, fixed=fixed, status=status, cls=cls,
                                                                         suppressed=sup, purl=purl, target=target,
                                                                         title=title))
    scans.sort(key=lambda s: (s.observed_at, s.scan_id))

    deploys = []
    for lineage, digest, t, env, run_id, log_file, line_no, outcome in con.execute(
            "SELECT lineage, digest, time, environment, run_id, log_file, line_no, outcome FROM ci_events "
            "WHERE kind='deploy' AND digest IS NOT NULL AND lineage IS NOT NULL AND time IS NOT NULL "
            "ORDER BY time, run_id, line_no").fetchall():
        deploys.append(Deploy(lineage, digest, aliases.get((lineage, digest)), t, env, run_id, log_file, line_no, outcome))

    builds = [dict(zip(("run_id", "lineage", "digest", "image_id", "time", "log_file", "line_no", "job_name", "outcome"), r))
              for r in con.execute("SELECT run_id, lineage, digest, image_id, time, log_file, line_no, job_name, outcome "
                                   "FROM ci_events WHERE kind='build' AND lineage IS NOT NULL ORDER BY time, run_id, line_no").fetchall()]
    for b in builds:
        b["image"] = b["image_id"] or aliases.get((b["lineage"], b["digest"]))
    pushes = [dict(zip(("run_id", "lineage", "digest", "time"), r)) for r in con.execute(
        "SELECT run_id, lineage, digest, time FROM ci_events WHERE kind='push' AND lineage IS NOT NULL ORDER BY time").fetchall()]
    for p in pushes:
        p["image"] = aliases.get((p["lineage"], p["digest"]))

    deployable = dict(con.execute("SELECT lineage, name FROM inventory_deployable").fetchall())
    if not deployable:  # without an inventory, every lineage with a CI build event is deployable
        deployable = {b["lineage"]: b["lineage"].rsplit("/", 1)[-1] for b in builds}
    scope_lineage = {name: lin for lin, name in deployable.items()}
    retired = {lin: at for lin, at in con.execute(
        "SELECT lineage, min(retired_at) FROM inventory_retired GROUP BY lineage").fetchall()}

    exceptions = [ExceptionEntry(*r) for r in con.execute(
        "SELECT scope, CAST(snapshot_date AS TIMESTAMP), file, line_no, section, vuln_id, expiry, declared_expiry, reason, "
        "paths, purls, valid, invalid_reason, sha256 FROM exceptions ORDER BY scope, snapshot_date, file, line_no").fetchall()]
    snapshots: dict = defaultdict(list)
    for scope, d in con.execute("SELECT DISTINCT scope, CAST(snapshot_date AS TIMESTAMP) FROM exception_snapshots "
                                "ORDER BY 1, 2").fetchall():
        snapshots[scope].append(d)
    return Observations(scans, deploys, builds, pushes, aliases, exceptions, dict(snapshots), deployable,
                        scope_lineage, retired, no_image, alias_sources)
