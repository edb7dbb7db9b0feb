"""The pure pipeline steps the CLI and the Dagster assets share: lifecycle, weekly KPIs, kpis.json.

No Dagster here. Every figure of week W is computed from the observations before T only
(Observations.as_of), so a past week recomputed later, or from its manifest's inputs alone, gives the
same kpis.json byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timedelta, timezone

import pandas as pd

from ifc_scan.controls.evaluate import evaluate_controls
from ifc_scan.faults import fault_point
from ifc_scan.kpis.weekly import compute_week
from ifc_scan.lifecycle.observations import Observations, load
from ifc_scan.lifecycle.timeline import EVENT_COLUMNS, FINDING_COLUMNS, MOMENT_COLUMNS, build_lifecycle, lifecycle_rows
from ifc_scan.timeutil import iso_z

LIFECYCLE_DDL = """
CREATE TABLE IF NOT EXISTS findings (finding_id VARCHAR PRIMARY KEY, lineage VARCHAR, vulnerability_id VARCHAR,
  pkg_name VARCHAR, pkg_path VARCHAR, detected_at TIMESTAMP, cause VARCHAR, purl VARCHAR, target VARCHAR, title VARCHAR);
CREATE TABLE IF NOT EXISTS finding_events (finding_id VARCHAR, seq INTEGER, time TIMESTAMP, kind VARCHAR,
  reason VARCHAR, severity VARCHAR, due_at TIMESTAMP, image_id VARCHAR, scan_id VARCHAR);
CREATE TABLE IF NOT EXISTS timeline_moments (lineage VARCHAR, seq INTEGER, time TIMESTAMP, image_id VARCHAR,
  scan_id VARCHAR, via_deploy BOOLEAN);
CREATE TABLE IF NOT EXISTS weekly_kpis (week VARCHAR, period_start TIMESTAMP, critical_in_prod INTEGER,
  critical_in_prod_excepted INTEGER, build_gate_pct DOUBLE, nightly_pct DOUBLE, mttr_critical_mean DOUBLE,
  mttr_high_mean DOUBLE, open_backlog INTEGER, new_findings INTEGER, remediated INTEGER, kpis_json VARCHAR);
"""


def _insert(con, table: str, cols: list[str], rows: list[tuple]) -> None:
    if rows:
        df = pd.DataFrame(rows, columns=cols, dtype=object)  # noqa: F841 (read by DuckDB)
        con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM df")


def derive_lifecycle(con, policy: dict):
    """Recompute the lifecycle from all observations and replace the derived tables. Returns counts."""
    con.execute(LIFECYCLE_DDL)
    obs = load(con)
    lc = build_lifecycle(obs, policy)
    findings, events, moments = lifecycle_rows(lc)
    con.execute("BEGIN TRANSACTION")
    try:
        for t in ("findings", "finding_events", "timeline_moments"):
            con.execute(f"DELETE FROM {t}")
        _insert(con, "findings", FINDING_COLUMNS, findings)
        _insert(con, "finding_events", EVENT_COLUMNS, events)
        _insert(con, "timeline_moments", MOMENT_COLUMNS, moments)
        fault_point()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return {"findings": len(findings), "finding_events": len(events), "timeline_moments": len(moments),
            "lineages": len(lc.moments), "scans_without_image": obs.scans_without_image}


class InputCatalog:
    """The ingested files and CI run creation times, read once for all weeks of a computation."""

    def __init__(self, con):
        self.run_created = dict(con.execute("SELECT CAST(run_id AS VARCHAR), created_at FROM ci_runs").fetchall())
        self.files = con.execute("SELECT path, sha256, size, kind FROM source_files WHERE status='ingested' "
                                 "ORDER BY path, sha256").fetchall()

    def week_inputs(self, obs: Observations, end: datetime) -> list[dict]:
        """The input files week W rests on: everything ingested whose evidence is dated before T
        (scans by observed_at, CI files by their run's creation, snapshots by their date), plus the inventory."""
        scan_time = {}
        for s in obs.scans:
            scan_time[s.source_path] = min(scan_time.get(s.source_path, s.observed_at), s.observed_at)
        out = []
        for path, sha, size, kind in self.files:
            parts = path.split("/")
            if kind in ("scan", "ci-artifact"):
                t = scan_time.get(path)   # None: a report with no image lineage is evidence for no KPI
            elif kind == "ci-run":
                t = self.run_created.get(parts[2])
            elif kind == "exception":
                t = datetime.fromisoformat(parts[2]) if len(parts) > 2 and len(parts[2]) == 10 else None
                t = t - timedelta(microseconds=1) if t else None   # a snapshot dated T is in force at T
            else:
                t = datetime.min
            if t is not None and t < end:
                out.append({"path": path, "sha256": sha, "size": size, "kind": kind})
        return out


def manifest_hash(inputs: list[dict]) -> str:
    canon = json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canon).hexdigest()


def deploy_evidence(ctx, verified: dict) -> list[dict]:
    """Production deploys in W with what the change-control controls need (deploys.csv).
    `verified`: run id -> digests a successful cosign verify step named in that run."""
    out = []
    scans_by_image = {}
    for s in ctx.scans:
        scans_by_image.setdefault(s.image, []).append(s)
    for d in ctx.obs.deploys:
        if (d.environment or "").lower() != "production" or not (ctx.S <= d.time < ctx.T):
            continue
        prior = [s for s in scans_by_image.get(d.image, []) if s.observed_at < d.time] if d.image else []
        pre = prior[-1] if prior else None
        crit = False
        if pre is not None:
            for (vid, _pkg, ppath), row in pre.findings.items():
                if row["severity"] == "CRITICAL" and not row["suppressed"] and not ctx.exc.matching(
                        d.lineage, pre.observed_at, vid, ppath, row["target"], row["purl"]):
                    crit = True
                    break
        out.append({"time": iso_z(d.time), "lineage": d.lineage, "digest": d.digest, "image": d.image,
                    "image_known": d.image is not None, "run_id": d.run_id, "scanned_before": pre is not None,
                    "pre_deploy_scan": pre.scan_id if pre else None,
                    "verified_before": d.digest in verified.get(d.run_id, set()),
                    "critical_unexcepted_before": crit, "outcome": d.outcome, "evidence": f"{d.log_file}:{d.line_no}"})
    return out


def _verify_events(con) -> dict:
    out = {}
    for run_id, digest in con.execute("SELECT run_id, digest FROM ci_events WHERE kind='verify' AND digest IS NOT NULL "
                                      "AND coalesce(outcome,'success')='success'").fetchall():
        out.setdefault(run_id, set()).add(digest)
    return out


def canonical_json(doc) -> str:
    """kpis.json bytes: key order is the contract's order, so no sorting."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


class WeekResult:
    def __init__(self, kpis: dict, populations: dict, inputs: list[dict]):
        self.kpis, self.populations, self.inputs = kpis, populations, inputs

    @property
    def kpis_json(self) -> str:
        return canonical_json(self.kpis)


POLICY_KEYS = ("version", "source", "sla_hours", "blocking_severity", "max_exception_days_critical",
               "stale_image_days", "scan_gap_hours", "expiring_soon_days")


def _kpi_figures(full: Observations, policy: dict, monday: date):
    """Observations as of T -> lifecycle -> the week's figures (and the context behind them)."""
    end = datetime(monday.year, monday.month, monday.day) + timedelta(days=7)
    obs = full.as_of(end)
    lc = build_lifecycle(obs, policy)
    return obs, lc, compute_week(obs, lc, policy, monday)


def compute_weeks(con, policy: dict, mondays: list[date]) -> list[WeekResult]:
    """KPIs, controls and populations for each week, each from its own as-of-T observations."""
    full = load(con)
    verified = _verify_events(con)
    catalog = InputCatalog(con)
    results = []
    for monday in mondays:
        obs, lc, raw = _kpi_figures(full, policy, monday)
        ctx = raw.pop("_context")
        entries = raw.pop("_exception_entries")
        deploys = deploy_evidence(ctx, verified)
        inputs = catalog.week_inputs(obs, ctx.T)
        kpis = dict(raw)
        kpis["policy"] = {k: policy[k] for k in POLICY_KEYS}
        kpis["inputs_manifest_sha256"] = manifest_hash(inputs)
        # ISO 27001 9.1 evidence: an independent recomputation (fresh as-of observations and lifecycle,
        # no shared state) must give the same figures; `ifc-scan verify` repeats it from the files alone.
        _, _, again = _kpi_figures(full, policy, monday)
        again.pop("_context"), again.pop("_exception_entries")
        reproducible = canonical_json(again) == canonical_json(raw)
        kpis["controls"] = evaluate_controls(kpis, deploys, reproducible)
        populations = {"findings": findings_population(ctx), "exceptions": entries,
                       "coverage": coverage_population(kpis, ctx), "deploys": deploys,
                       "config_and_secrets": config_and_secrets_population(con, ctx),
                       "lifecycle": lc, "obs": obs}
        results.append(WeekResult(kpis, populations, inputs))
    return results


def config_and_secrets_population(con, ctx) -> list[dict]:
    """Misconfigurations (failed checks) and secrets in the latest scan, before T, of each lineage's
    current image: shown in the report rather than calling the image clean."""
    latest = {}
    for lineage, history in ctx.lc.current_images.items():
        current = [img for since, img in history if since < ctx.T]
        if not current or ctx.retired(lineage):
            continue
        scans = [s for s in ctx.scans if s.lineage == lineage and s.image == current[-1]]
        if scans:
            latest[max(scans, key=lambda s: (s.observed_at, s.scan_id)).scan_id] = (lineage, current[-1])
    if not latest:
        return []
    ids = list(latest)
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
    order = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3, "UNKNOWN": 4}
    rows.sort(key=lambda r: (order.get(r["severity"], 5), r["lineage"], r["kind"], r["id"] or "", r["target"] or ""))
    return rows


def findings_population(ctx) -> list[dict]:
    """Every finding open at T or detected/closed in W (findings.csv), with its evidence."""
    rows = []
    scan_src = {s.scan_id: (s.source_path, s.source_sha256) for s in ctx.scans}
    for v in ctx.views:
        f = v.f
        is_open = v.is_open(ctx.T)
        closes = [e for e in v.before(ctx.T) if e.kind == "close" and e.time >= ctx.S]
        if not (is_open or closes or ctx.S <= f.detected_at < ctx.T):
            continue
        last = v.last_before(ctx.T)
        presence = [e for e in v.before(ctx.T) if e.kind in ("detect", "present", "reopen")]
        src = scan_src.get(presence[-1].scan_id, ("", "")) if presence else ("", "")
        due = v.due_at(ctx.T)
        excepted = is_open and ctx.excepted_at_T(v)
        sev = v.severity_at(ctx.T)
        if is_open:
            state = "excepted" if excepted else ("overdue" if (due is not None and ctx.T > due) else "open")
        else:
            state = f"closed ({last.reason})"
        rows.append({"finding_id": f.fid, "lineage": f.lineage, "vulnerability_id": f.vuln_id, "pkg_name": f.pkg_name,
                     "pkg_path": f.pkg_path, "severity": sev, "state": state, "cause": f.cause,
                     "detected_at": iso_z(f.detected_at), "due_at": iso_z(due),
                     "closed_at": iso_z(closes[-1].time) if closes and not is_open else None,
                     "close_reason": closes[-1].reason if closes and not is_open else None,
                     "age_hours": round((ctx.T - f.detected_at).total_seconds() / 3600, 2),
                     "title": f.title, "last_seen_scan": presence[-1].scan_id if presence else None,
                     "source_file": src[0], "source_sha256": src[1]})
    order = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3, "UNKNOWN": 4}
    rows.sort(key=lambda r: (not r["state"].startswith(("overdue", "open", "excepted")), order[r["severity"]],
                             r["detected_at"], r["finding_id"]))
    return rows


def coverage_population(kpis: dict, ctx) -> list[dict]:
    rows = []
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


def write_weekly_kpis(con, results: list[WeekResult]) -> None:
    con.execute(LIFECYCLE_DDL)
    con.execute("BEGIN TRANSACTION")
    try:
        for r in results:
            k = r.kpis
            con.execute("DELETE FROM weekly_kpis WHERE week = ?", (k["week"],))
            con.execute("INSERT INTO weekly_kpis VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", (
                k["week"], datetime.fromisoformat(k["period_start"][:-1]), k["critical_in_prod"]["count"],
                k["critical_in_prod"]["excepted"], k["coverage"]["build_gate"]["pct"], k["coverage"]["nightly"]["pct"],
                k["mttr_hours"]["CRITICAL"]["mean"], k["mttr_hours"]["HIGH"]["mean"], k["open_backlog"]["total"],
                k["new_findings"]["total"], k["remediated"]["total"], r.kpis_json))
            fault_point()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def data_weeks(con, policy: dict, until: datetime | None = None) -> list[date]:
    """Every complete ISO week from the policy's week_start (or the first evidence) to the last evidence."""
    first, last = con.execute("SELECT min(t), max(t) FROM (SELECT coalesce(created_at, file_mtime) t FROM scans "
                              "UNION ALL SELECT time FROM ci_events)").fetchone()
    if first is None:
        return []
    start = date.fromisoformat(str(policy.get("week_start"))) if policy.get("week_start") else first.date()
    start = max(start, first.date() - timedelta(days=first.weekday()))
    start -= timedelta(days=start.weekday())
    # only weeks that have ended and hold evidence (which weeks to compute; no figure reads the clock)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    last_monday = min((until or last).date(), (now - timedelta(days=7)).date())
    weeks = []
    d = start
    while d <= last_monday:
        weeks.append(d)
        d += timedelta(days=7)
    return weeks
