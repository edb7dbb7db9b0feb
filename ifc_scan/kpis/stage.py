"""The weekly-KPI stage: one week's figures, controls and populations from the persisted lifecycle,
stored in the `weekly_kpis` table: the only place a figure is computed.

The report stage renders what is stored here and never computes. `oracle_week` is the as-of-T
recomputation of design/KPIS.md (observations before T -> a fresh lifecycle -> the same KPI code);
tests compare every stored week against it, and `ifc-scan verify` runs it from a manifest's inputs.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from itertools import compress
from json.encoder import encode_basestring_ascii
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np

from ifc_scan import __version__
from ifc_scan.controls.evaluate import evaluate_controls
from ifc_scan.faults import fault_point
from ifc_scan.gcpause import cyclic_gc_paused
from ifc_scan.intel.asof import known_from
from ifc_scan.kpis.requirements import judge_requirements, link_controls
from ifc_scan.kpis.targets import Targets
from ifc_scan.kpis.approvals import APPROVAL_COLUMNS, Governance
from ifc_scan.kpis.exploitation import EXPLOITATION_COLUMNS, exploitation_week
from ifc_scan.kpis.tickets import TICKET_COLUMNS, TicketEvidence
from ifc_scan.kpis.view import WeekKpis
from ifc_scan.kpis.weekly import (WeekContext, compute_week, days_overdue, nightly_by_lineage, open_sla_state,
                                  run_path, week_tickets)
from ifc_scan.lifecycle.observations import (Observations, ScanIndex, evidence_span, is_production_attempt,
                                             is_production_deploy, load)
from ifc_scan.lifecycle.store import require_current_lifecycle
from ifc_scan.lifecycle.state import LifecycleAtT, StoreReader, state_from_lifecycle
from ifc_scan.lifecycle.timeline import build_lifecycle
from ifc_scan.progress import Progress
from ifc_scan.timeutil import iso_z, monday_of, week_bounds, week_label

POLICY_KEYS = ("version", "source", "sla_hours", "blocking_severity", "max_exception_days_critical",
               "stale_image_days", "scan_gap_hours", "expiring_soon_days", "targets")
# the columns of each population's CSV, written as its header even when it has no row
POPULATION_COLUMNS = {
    "exceptions": ("scope", "snapshot_date", "file", "line", "id", "expiry", "declared_expiry", "reason", "valid",
                   "invalid_reason", "active", "expiring_14d", "expired_listed", "no_expiry", "no_reason",
                   "critical_over_90d", "unmatched", "sha256", *APPROVAL_COLUMNS),
    "coverage": ("kind", "lineage", "item", "image", "time", "detail", "evidence"),
    "deploys": ("time", "lineage", "digest", "image", "image_known", "run_id", "scanned_before", "pre_deploy_scan",
                "verified_before", "critical_unexcepted_before", "outcome", "counts_as_deploy", "evidence"),
    "config_and_secrets": ("kind", "lineage", "image", "severity", "id", "title", "target", "line", "detail", "scan_id"),
    "tickets": TICKET_COLUMNS,
}
SEV_ORDER = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3, "UNKNOWN": 4}


def canonical_json(doc) -> str:
    """kpis.json bytes: key order is the contract's order, so no sorting."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def manifest_hash(inputs: list[dict]) -> str:
    """kpis.json's inputs_manifest_sha256: sha256 of the canonical JSON list of the week's input files.
    InputCatalog.week_inputs computes the same bytes from cached entries; verify uses this one."""
    canon = json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canon).hexdigest()


def policy_hash(policy: dict) -> str:
    doc = {"policy": policy, "code": __version__}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class WeekResult:
    kpis: dict
    populations: dict          # name -> list of row dicts (the CSVs)
    inputs: list[dict] | None  # the input files the week rests on (manifest); None when loaded without them
    data_quality: dict

    @property
    def kpis_json(self) -> str:
        return canonical_json(self.kpis)

    @property
    def view(self) -> WeekKpis:
        return WeekKpis(self.kpis)


def _json_text(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def catalog_entry_json(path: str, sha256: str | None, size: int | None, kind: str) -> str:
    """json.dumps of one input entry with sort_keys and compact separators (manifest_hash's bytes), written
    out field by field: the encoder's per-call set-up was most of the cost at 72,813 entries a run."""
    return (f'{{"kind":{_json_text(kind)},"path":{_json_text(path)},"sha256":{_json_text(sha256)},'
            f'"size":{"null" if size is None else int(size)}}}')


class InputCatalog:
    """The ingested files with the time from which each is evidence (scans by observed_at, CI files by their
    run's creation, snapshots by their date, the inventory always), computed once; a week's inputs are the
    files whose time is before T (D10)."""

    def __init__(self, con, obs: Observations):
        run_created = dict(con.execute("SELECT CAST(run_id AS VARCHAR), created_at FROM ci_runs").fetchall())
        scan_time: dict = {}
        for s in obs.scans:
            scan_time[s.source_path] = min(scan_time.get(s.source_path, s.observed_at), s.observed_at)
        # a KEV or EPSS file's date D as its reader stored it (intel/files.py path_date); a file replaced under
        # the same name replaces its rows, so only its current content is an input
        intel_known_from = {(p, sha): known_from(d) for p, sha, d in con.execute(
            "SELECT source_path, source_sha256, catalog_date FROM kev_catalogs UNION ALL "
            "SELECT source_path, source_sha256, score_date FROM epss_files").fetchall()}
        self.entries: list[tuple] = []      # (time, entry dict, its canonical JSON), in (path, sha256) order
        self._times = self._texts = None    # the entries' times as an array and their JSON texts, made when asked
        for path, sha, size, kind in con.execute("SELECT path, sha256, size, kind FROM source_files "
                                                 "WHERE status='ingested' ORDER BY path, sha256").fetchall():
            t = _evidence_from(path, sha, kind, scan_time, run_created, intel_known_from)
            if t is not None:
                entry = {"path": path, "sha256": sha, "size": size, "kind": kind}
                self.entries.append((t, entry, catalog_entry_json(path, sha, size, kind)))

    def _before(self, end: datetime) -> list[bool]:
        """Which entries are evidence before `end`, compared as one array (every week of a run asks, and each
        question is over every file ever ingested)."""
        if self._times is None:
            self._times = np.array([t for t, _, _ in self.entries], dtype="datetime64[us]")
            self._texts = [j for _, _, j in self.entries]
        return (self._times < np.datetime64(end, "us")).tolist()

    def week_inputs(self, end: datetime) -> tuple[list[dict], str]:
        """The week's input files and the sha256 of their canonical JSON list (manifest_hash of the list)."""
        before = self._before(end)
        return [e for _, e, _ in compress(self.entries, before)], self.inputs_hash(end, before)

    def inputs_hash(self, end: datetime, before: list[bool] | None = None) -> str:
        """manifest_hash of the week's input list, without making the list."""
        before = self._before(end) if before is None else before
        return hashlib.sha256(("[" + ",".join(compress(self._texts, before)) + "]").encode()).hexdigest()

    def store(self, con) -> None:
        """Bring the input_catalog table to these entries: what the report stage reads a week's inputs from
        (stored_week_inputs), instead of every week storing the list of every file before it. Only the rows
        that differ are deleted and inserted (a night adds its own files to a table of every file)."""
        import pandas as pd
        df = pd.DataFrame([(e["path"], e["sha256"], e["size"], e["kind"], t) for t, e, _ in self.entries],  # noqa: F841
                          columns=["path", "sha256", "size", "kind", "evidence_from"], dtype=object)
        same = " AND ".join(f"c.{k} IS NOT DISTINCT FROM n.{k}" for k in ("path", "sha256", "size", "kind", "evidence_from"))
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE _catalog AS SELECT path, sha256, CAST(size AS BIGINT) AS size, "
                        "kind, CAST(evidence_from AS TIMESTAMP) AS evidence_from FROM df")
            con.execute(f"DELETE FROM input_catalog c WHERE NOT EXISTS (SELECT 1 FROM _catalog n WHERE {same})")
            con.execute(f"INSERT INTO input_catalog SELECT * FROM _catalog n WHERE NOT EXISTS "
                        f"(SELECT 1 FROM input_catalog c WHERE {same})")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.execute("DROP TABLE IF EXISTS _catalog")


def _evidence_from(path: str, sha: str, kind: str, scan_time: dict, run_created: dict,
                   intel_known_from: dict) -> datetime | None:
    """The time from which an ingested file is evidence; None: evidence for no KPI."""
    parts = path.split("/")
    if kind in ("scan", "ci-artifact"):
        return scan_time.get(path)   # None: a report with no image lineage is evidence for no KPI
    if kind == "ci-run":
        return run_created.get(parts[2])
    if kind in ("exception", "approval", "ticket"):
        t = datetime.fromisoformat(parts[2]) if len(parts) > 2 and len(parts[2]) == 10 else None
        return t - timedelta(microseconds=1) if t else None   # a snapshot dated T is in force at T
    if kind in ("kev", "epss"):         # known from its date D (the as-of rule, intel/asof.py)
        return intel_known_from.get((path, sha))   # None: a content the file no longer has is no input
    return datetime.min


class StaleWeek(ValueError):
    """A stored week's figures rest on other inputs than the warehouse now holds: compute it again."""


def stored_week_inputs(con, week: str, period_end: datetime, expected_sha256: str) -> list[dict]:
    """The week's input list from input_catalog, checked against the hash its stored figures name."""
    inputs = [{"path": p, "sha256": s, "size": n, "kind": k} for p, s, n, k in con.execute(
        "SELECT path, sha256, size, kind FROM input_catalog WHERE evidence_from < ? ORDER BY path, sha256",
        (period_end,)).fetchall()]
    if manifest_hash(inputs) != expected_sha256:
        raise StaleWeek(f"week {week}: its stored figures rest on other inputs than the warehouse now holds "
                        f"(a file was ingested since they were computed): compute the week again (weekly_kpis)")
    return inputs


def warehouse_quality(con) -> dict:
    """Rejected files and unparsed log lines (whole warehouse)."""
    return {"rejected": [{"path": p, "reason": r} for p, r in con.execute(
                "SELECT path, reason FROM ingest_errors ORDER BY path, reason").fetchall()],
            "unparsed_lines": con.execute(
                "SELECT count(*) FROM ci_log_issues WHERE reason LIKE 'looks like%'").fetchone()[0],
            # events that name no lineage because the log hides or leaves open their image (D15)
            "ci_masked_events": con.execute("SELECT count(*) FROM ci_events WHERE masked").fetchone()[0],
            "ci_unresolved_events": con.execute(
                "SELECT count(*) FROM ci_events WHERE NOT coalesce(masked, false) AND detail LIKE '%unresolved variable%'"
            ).fetchone()[0],
            "ci_failed_events": con.execute(
                "SELECT count(*) FROM ci_events WHERE status = 'failed' AND kind IN ('build', 'push')").fetchone()[0]}


def verified_digests(con) -> dict:
    """run id -> digests a successful cosign verify step named in that run."""
    out: dict = {}
    for run_id, digest in con.execute("SELECT run_id, digest FROM ci_events WHERE kind='verify' AND digest IS NOT NULL "
                                      "AND coalesce(outcome,'success')='success'").fetchall():
        out.setdefault(run_id, set()).add(digest)
    return out


def deploy_evidence(con, ctx: WeekContext, verified: dict) -> list[dict]:
    """Production deploys in W with what the change-control controls need (deploys.csv)."""
    out = []
    week = []
    for d in ctx.obs.deploys:
        if not is_production_attempt(d) or not (ctx.S <= d.time < ctx.T):
            continue
        prior = ctx.index.of_image(d.image, d.time) if d.image else []
        week.append((d, prior[-1] if prior else None))
    pre_ids = sorted({pre.scan_id for _, pre in week if pre is not None})
    criticals: dict[str, list] = {}
    if pre_ids:   # the CRITICAL findings of every pre-deploy scan, in one query
        for sid, vid, ppath, target, purl in con.execute(
                "SELECT scan_id, vulnerability_id, coalesce(pkg_path, ''), target, purl FROM scan_vulnerabilities "
                "WHERE scan_id IN (SELECT unnest(?)) AND severity = 'CRITICAL' AND vulnerability_id IS NOT NULL "
                "AND NOT coalesce(suppressed, false) ORDER BY ALL", [pre_ids]).fetchall():
            criticals.setdefault(sid, []).append((vid, ppath, target, purl))
    for d, pre in week:
        crit = pre is not None and any(not ctx.exc.matching(d.lineage, pre.observed_at, vid, ppath, target, purl)
                                       for vid, ppath, target, purl in criticals.get(pre.scan_id, ()))
        out.append({"time": iso_z(d.time), "lineage": d.lineage, "digest": d.digest, "image": d.image,
                    "image_known": d.image is not None, "run_id": d.run_id, "scanned_before": pre is not None,
                    "pre_deploy_scan": pre.scan_id if pre else None,
                    "verified_before": d.digest in verified.get(d.run_id, set()),
                    "critical_unexcepted_before": crit, "outcome": d.outcome,
                    "counts_as_deploy": is_production_deploy(d), "evidence": run_path(d.run_id, d.log_file, d.line_no)})
    return out


POPULATION_COLUMNS["findings"] = FINDING_COLUMNS = ("finding_id", "lineage", "vulnerability_id", "pkg_name", "pkg_path", "installed_version",
                   "fixed_version", "severity", "state", "cause", "detected_at", "due_at", "closed_at", "close_reason",
                   "ttr_hours", "closed_by", "excepted_by", "age_hours", "title", "last_seen_scan", "source_file",
                   "source_sha256", "image", "advisory_url", "days_overdue", *EXPLOITATION_COLUMNS)


def _versions(con, wanted: list[tuple]) -> dict:
    """(scan_id, vuln, pkg, path) -> (installed, fixed, advisory URL) as that scan listed the finding."""
    if not wanted:
        return {}
    cols = list(zip(*wanted))
    rows = con.execute(
        "SELECT v.scan_id, v.vulnerability_id, coalesce(v.pkg_name, ''), coalesce(v.pkg_path, ''), "
        "first(v.installed_version ORDER BY v.installed_version), first(v.fixed_version ORDER BY v.fixed_version), "
        "first(v.primary_url ORDER BY v.primary_url) "
        "FROM scan_vulnerabilities v JOIN (SELECT unnest(?) s, unnest(?) i, unnest(?) p, unnest(?) pp) w "
        "ON v.scan_id = w.s AND v.vulnerability_id = w.i AND coalesce(v.pkg_name, '') = w.p "
        "AND coalesce(v.pkg_path, '') = w.pp GROUP BY ALL", [list(c) for c in cols]).fetchall()
    return {r[:4]: r[4:] for r in rows}


# findings.csv states of a finding still open at T (the others read "closed (<reason>)")
OPEN_STATES = ("overdue", "open", "excepted")


def findings_population(con, ctx: WeekContext) -> list[dict]:
    """Every finding open at T or detected/closed in W (findings.csv), with the evidence behind it: the
    scan that last showed it (file and sha256), what closed it (a scan file, or a deploy's log line and
    the scan it was judged by), the exception line that excepts it at T, its versions in that scan."""
    chosen = []
    for f in ctx.state.findings:
        closed_in_week = not f.is_open and f.last_close_time is not None and f.last_close_time >= ctx.S
        if f.is_open or closed_in_week or ctx.S <= f.detected_at < ctx.T:
            chosen.append((f, closed_in_week))
    versions = _versions(con, [(f.last_seen_scan, f.vuln_id, f.pkg_name, f.pkg_path) for f, _ in chosen
                               if f.last_seen_scan])
    deploy_at = {(d.lineage, d.time): d for d in ctx.obs.deploys}
    rows = []
    for f, closed_in_week in chosen:
        seen = ctx.index.by_id.get(f.last_seen_scan)
        src = (seen.source_path, seen.source_sha256) if seen is not None else ("", "")
        excepted_by = None
        if f.is_open:
            entries = ctx.exc.matching(f.lineage, ctx.T, f.vuln_id, f.pkg_path, f.target, f.purl)
            excepted_by = "; ".join(f"exceptions/{e.scope}/{e.snapshot_date.date().isoformat()}/{e.file}:{e.line_no}"
                                    for e in entries) or None
            state = open_sla_state(f, bool(entries), ctx.T)
        else:
            state = f"closed ({f.last_close_reason})"
        closed_by = None
        if closed_in_week:
            closer = ctx.index.by_id.get(f.last_close_scan)
            d = deploy_at.get((f.lineage, f.last_close_time))
            if f.last_close_reason == "retired":
                closed_by = "lineage retired (inventory/deployable.yaml)"
            elif d is not None and closer is not None and closer.observed_at != f.last_close_time:
                closed_by = f"deploy {run_path(d.run_id, d.log_file, d.line_no)} judged by scan {closer.source_path}"
            elif closer is not None:
                closed_by = f"scan {closer.source_path}"
        installed, fixed, advisory = versions.get((f.last_seen_scan, f.vuln_id, f.pkg_name, f.pkg_path), (None, None, None))
        fixed_close = closed_in_week and f.last_close_reason == "fixed"
        rows.append({"finding_id": f.finding_id, "lineage": f.lineage, "vulnerability_id": f.vuln_id,
                     "pkg_name": f.pkg_name, "pkg_path": f.pkg_path, "installed_version": installed,
                     "fixed_version": fixed, "severity": f.severity, "state": state,
                     "cause": f.cause, "detected_at": iso_z(f.detected_at), "due_at": iso_z(f.due_at),
                     "closed_at": iso_z(f.last_close_time) if closed_in_week else None,
                     "close_reason": f.last_close_reason if closed_in_week else None,
                     "ttr_hours": round((f.last_close_time - f.detected_at).total_seconds() / 3600, 2)
                     if fixed_close else None, "closed_by": closed_by, "excepted_by": excepted_by,
                     "age_hours": round((ctx.T - f.detected_at).total_seconds() / 3600, 2),
                     "title": f.title, "last_seen_scan": f.last_seen_scan,
                     "source_file": src[0], "source_sha256": src[1],
                     "image": seen.image if seen is not None else None,
                     # shown as a link only when it is an http(s) address (scan text is untrusted)
                     "advisory_url": advisory if advisory and advisory.startswith(("https://", "http://")) else None,
                     "days_overdue": days_overdue(state, f.due_at, ctx.T) if f.is_open else None})
    rows.sort(key=lambda r: (not r["state"].startswith(OPEN_STATES), SEV_ORDER[r["severity"]],
                             r["detected_at"], r["finding_id"]))
    return rows


def coverage_population(kpis: dict, nightly_rows: list[dict] = ()) -> list[dict]:
    """coverage.csv: what the coverage KPIs did not count (uncovered builds, days without a nightly scan,
    cadence gaps), and per deployable image its nightly days ("days with a scan/image-days", the
    period pack's per-image continuity)."""
    rows = []
    for r in nightly_rows:
        rows.append({"kind": "nightly_days", "lineage": r["lineage"], "item": f"{r['days_with_scan']}/{r['lineage_days']}",
                     "image": None, "time": None, "detail": "days with a scan / image-days in the week", "evidence": None})
    for b in kpis["coverage"]["build_gate"]["uncovered"]:
        rows.append({"kind": "build_uncovered", "lineage": b["lineage"], "item": f"run {b['run_id']}", "image": b["image"],
                     "time": b["built_at"], "detail": b["reason"], "evidence": b["evidence"]})
    for g in kpis["coverage"]["nightly"]["gaps"]:
        rows.append({"kind": "nightly_gap", "lineage": g["lineage"], "item": g["day"], "image": None, "time": g["day"],
                     "detail": "no scan of this lineage on this UTC day", "evidence": None})
    for g in kpis["cadence"]["gaps"]:
        rows.append({"kind": "cadence_gap", "lineage": g["lineage"], "item": f"{g['from']} -> {g['to']}", "image": None,
                     "time": g["from"], "detail": f"{g['hours']} h without a scan" + (" (open at T)" if g["open_at_T"] else ""),
                     "evidence": None})
    return rows


def config_and_secrets_population(con, ctx: WeekContext) -> list[dict]:
    """Misconfigurations (failed checks) and secrets in the latest scan, before T, of each lineage's
    current image: shown in the report rather than calling the image clean."""
    wanted = {lin: img for lin in ctx.state.current_images if not ctx.retired(lin)
              for img in [ctx.state.current_image(lin)] if img}
    latest = {}
    for lin, img in wanted.items():
        s = ctx.index.latest(lin, img, ctx.T)
        if s is not None:
            latest[s.scan_id] = (lin, img)
    if not latest:
        return []
    ids = sorted(latest)
    rows = []
    for kind, sql in (
            ("misconfiguration", "SELECT scan_id, target, coalesce(check_id, avd_id), severity, title, "
                                 "coalesce(message, ''), start_line FROM scan_misconfigurations "
                                 "WHERE scan_id IN (SELECT unnest(?)) AND coalesce(status, 'FAIL') = 'FAIL'"),
            ("secret", "SELECT scan_id, target, rule_id, severity, title, coalesce(match, ''), start_line "
                       "FROM scan_secrets WHERE scan_id IN (SELECT unnest(?))")):
        for sid, target, cid, sev, title, detail, line in con.execute(sql, [ids]).fetchall():
            lineage, image = latest[sid]
            rows.append({"kind": kind, "lineage": lineage, "image": image, "severity": sev, "id": cid, "title": title,
                         "target": target, "line": line, "detail": detail, "scan_id": sid})
    rows.sort(key=lambda r: (SEV_ORDER.get(r["severity"], 5), r["lineage"], r["kind"], r["id"] or "", r["target"] or "",
                             r["line"] or 0, r["detail"]))
    return rows


def week_result(con, obs_T: Observations, state: LifecycleAtT, policy: dict, monday: date, catalog: InputCatalog,
                verified: dict, warehouse: dict, governance: Governance, tickets: TicketEvidence,
                index: ScanIndex | None = None) -> WeekResult:
    """The week's kpis.json, populations, inputs and data quality, from the observations before T and the
    lifecycle read at T (whichever provider read it)."""
    start, end = week_bounds(monday)
    ctx = WeekContext(obs_T, state, policy, start, end, index, governance, tickets)
    figures, entries = compute_week(ctx)
    ticket_figures, ticket_rows = week_tickets(ctx)
    deploys = deploy_evidence(con, ctx, verified)
    inputs, inputs_sha = catalog.week_inputs(end)
    kpis = dict(figures)
    if ticket_figures is not None:
        kpis["tickets"] = ticket_figures
    kpis["policy"] = {k: policy[k] for k in POLICY_KEYS}
    kpis["inputs_manifest_sha256"] = inputs_sha
    findings = findings_population(con, ctx)
    kpis["exploitation"] = exploitation_week(con, ctx, findings)     # also the findings' KEV and EPSS columns
    targets = Targets.from_policy(policy)
    requirements = judge_requirements(kpis, targets, findings, deploys, entries)
    kpis["controls"] = evaluate_controls(kpis, deploys, targets, findings, entries)
    link_controls(requirements, kpis["controls"])
    kpis["requirements"] = requirements
    populations = {"findings": findings, "exceptions": entries,
                   "coverage": coverage_population(kpis, nightly_by_lineage(ctx)), "deploys": deploys,
                   "config_and_secrets": config_and_secrets_population(con, ctx), "tickets": ticket_rows}
    dq = {"inputs": len(inputs), **warehouse,
          "fallback_ci": ctx.index.fallback_count("ci", end),
          "fallback_mtime": ctx.index.fallback_count("mtime", end),
          "scans_without_image": obs_T.scans_without_image}
    return WeekResult(kpis, populations, inputs, dq)


class WeeklyStage:
    """Reads the warehouse once per run (observations without their findings, the input catalog), then
    computes any number of weeks, each from the persisted lifecycle read at its T."""

    def __init__(self, source, policy: dict):
        self.source, self.policy = source, policy
        with cyclic_gc_paused(freeze=True):   # every scan's metadata, kept for the run (ifc_scan/gcpause.py)
            self.obs = load(source, with_findings=False)
            self.catalog = InputCatalog(source, self.obs)
            self.verified = verified_digests(source)
            self.warehouse = warehouse_quality(source)
            self.reader = StoreReader(source)
            self.index = ScanIndex(self.obs.scans)
            self.governance = Governance(source, self.obs.scans)
            self.tickets = TicketEvidence(source)

    def compute(self, monday: date) -> WeekResult:
        """Weeks in ascending order read each lifecycle event once (StoreReader)."""
        start, end = week_bounds(monday)
        return week_result(self.source, self.obs.as_of(end), self.reader.read(start, end), self.policy,
                           monday, self.catalog, self.verified, self.warehouse, self.governance, self.tickets,
                           self.index)

    def inputs_hash(self, monday: date) -> str:
        return self.catalog.inputs_hash(week_bounds(monday)[1])


def oracle_week(con, policy: dict, monday: date, full: Observations | None = None) -> WeekResult:
    """design/KPIS.md's as-of-T recomputation: the observations before T, a lifecycle built from them alone,
    the same KPI code. Slow (O(history) per week): for tests and `verify`, never for publishing."""
    full = full or load(con)
    start, end = week_bounds(monday)
    obs_T = full.as_of(end)
    state = state_from_lifecycle(build_lifecycle(obs_T, policy), start, end)
    return week_result(con, obs_T, state, policy, monday, InputCatalog(con, obs_T), verified_digests(con),
                       warehouse_quality(con), Governance(con, full.scans), TicketEvidence(con))


# ---- the weekly_kpis table --------------------------------------------------------------------------

def store_weeks(con, results: list[WeekResult], policy: dict) -> None:
    """Replace the stored rows of these weeks in one transaction."""
    psha = policy_hash(policy)
    con.execute("BEGIN TRANSACTION")
    try:
        for r in results:
            v = r.view
            con.execute("DELETE FROM weekly_kpis WHERE week = ?", (v.week,))
            con.execute(
                "INSERT INTO weekly_kpis VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (v.week, datetime.fromisoformat(r.kpis["period_start"][:-1]),
                 datetime.fromisoformat(r.kpis["period_end"][:-1]), r.kpis["inputs_manifest_sha256"], psha, v.verdict,
                 [f"{c['framework']} {c['id']}" for c in v.failing_controls], v.critical_in_prod,
                 v.critical_in_prod_excepted, v.build_gate["pct"], v.nightly["pct"], v.mttr_mean("CRITICAL"),
                 v.mttr_mean("HIGH"), v.open_overdue, v.open_backlog, v.new_findings, v.remediated, r.kpis_json,
                 populations_blob(r.populations), json.dumps(r.data_quality)))
            fault_point()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def populations_blob(populations: dict) -> bytes:
    """A week's populations as stored: JSON, zlib-compressed (about 8x: 6.2 MB -> 0.75 MB for a week of
    6,000 findings). DuckDB's checkpoint pins every large string of a table it rewrites at once, so the
    stored weeks' populations must fit under the memory cap (warehouse/db.py cap_memory)."""
    return zlib.compress(json.dumps(populations, ensure_ascii=False).encode("utf-8"), 1)


def load_week(con, week: str, with_inputs: bool = False) -> WeekResult | None:
    """A stored week. with_inputs: also its input list (the manifest's), read from input_catalog and
    checked against the stored inputs_manifest_sha256 (StaleWeek if it no longer matches); without it,
    `inputs` is None."""
    row = con.execute("SELECT kpis_json, populations_json_zlib, data_quality_json, period_end FROM weekly_kpis "
                      "WHERE week = ?", (week,)).fetchone()
    if row is None:
        return None
    kpis = json.loads(row[0])
    inputs = stored_week_inputs(con, week, row[3], kpis["inputs_manifest_sha256"]) if with_inputs else None
    return WeekResult(kpis, json.loads(zlib.decompress(row[1])), inputs, json.loads(row[2]))


def stored_fingerprints(con) -> dict[str, tuple[str, str]]:
    """week -> (inputs_manifest_sha256, policy hash) of the stored rows."""
    return {w: (i, p) for w, i, p in con.execute(
        "SELECT week, inputs_manifest_sha256, policy_sha256 FROM weekly_kpis").fetchall()}


STORE_EVERY = 4


def compute_and_store(con, policy: dict, mondays: list[date], source=None, force: bool = False,
                      progress=None) -> dict[str, str]:
    """Compute the weeks whose stored row is missing or stale (inputs or policy changed) and store them.
    Returns week -> "computed" | "fresh"."""
    require_current_lifecycle(source or con, policy)
    stage = WeeklyStage(source or con, policy)
    stage.catalog.store(con)
    stored = stored_fingerprints(con)
    psha = policy_hash(policy)
    todo, out = [], {}
    for m in sorted(set(mondays)):
        w = week_label(m)
        if not force and stored.get(w) == (stage.inputs_hash(m), psha):
            out[w] = "fresh"
        else:
            todo.append(m)
    results = []
    tick = Progress("weekly figures computed", len(todo), progress or (lambda msg: None))
    for m in todo:
        results.append(stage.compute(m))
        out[week_label(m)] = "computed"
        tick.advance(week_label(m))
        if len(results) == STORE_EVERY:     # a week's populations can be large: never hold a whole backfill
            store_weeks(con, results, policy)
            results = []
    store_weeks(con, results, policy)
    return out


def data_weeks(con, policy: dict, until: datetime | None = None) -> list[date]:
    """Every complete ISO week from the policy's week_start (or the first evidence) to the last evidence,
    with scans placed by their observed_at (the one definition, lifecycle/observations.py)."""
    span = evidence_span(con)
    if span is None:
        return []
    first, last = span
    start = date.fromisoformat(str(policy.get("week_start"))) if policy.get("week_start") else first.date()
    start = monday_of(max(start, monday_of(first.date())))
    # only weeks that have ended (which weeks to compute; no figure reads the clock)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    last_monday = min((until or last).date(), (now - timedelta(days=7)).date())
    weeks = []
    d = start
    while d <= last_monday:
        weeks.append(d)
        d += timedelta(days=7)
    return weeks
