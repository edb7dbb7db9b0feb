"""The KPIs of one ISO week, exactly as design/KPIS.md defines them. One function per KPI key;
each is the only definition of its figure. Where KPIS.md is silent, the conservative reading is
taken and written in docs/kpi-decisions.md (referenced by the D-numbers in comments below).

Everything is as of T = period end and uses only events with time < T.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np

from ifc_scan.kpis.approvals import approval_summary
from ifc_scan.kpis.tickets import reconcile
from ifc_scan.lifecycle.exception_match import ExceptionIndex
from ifc_scan.lifecycle.observations import Observations, ScanIndex, is_production_attempt
from ifc_scan.lifecycle.state import CloseAtT, FindingAtT, LifecycleAtT
from ifc_scan.timeutil import iso_z, week_label

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN")
AGE_BUCKETS = (("0-24h", 0, 24), ("1-7d", 24, 168), ("7-30d", 168, 720), ("30-90d", 720, 2160), (">90d", 2160, None))


def hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600.0


def r2(x):
    return None if x is None else round(float(x), 2)


def pct(num: int, den: int):
    return None if den == 0 else round(100.0 * num / den, 2)


class WeekContext:
    """What one week's KPIs read: the observations before T and the lifecycle read at T."""

    def __init__(self, obs: Observations, state: LifecycleAtT, policy: dict, start: datetime, end: datetime,
                 index: ScanIndex | None = None, governance=None, tickets=None):
        """`obs`: the observations before T. `index`: a ScanIndex of these or of all scans (its queries are
        bounded by T); built from obs when not given. `governance`: the exception approval evidence
        (kpis/approvals.py Governance); without it the week has no `exception_approvals`."""
        self.obs, self.state, self.policy, self.S, self.T = obs, state, policy, start, end
        self.governance = governance
        self.tickets = tickets       # kpis/tickets.py TicketEvidence; without it the week has no `tickets`
        self.exc = ExceptionIndex(obs)
        self.index = index or ScanIndex(obs.scans)
        self._open = state.open()

    def retired(self, lineage: str) -> bool:
        at = self.obs.retired.get(lineage)
        return at is not None and at < self.T

    def excepted_at_T(self, f: FindingAtT) -> bool:
        return bool(self.exc.matching(f.lineage, self.T, f.vuln_id, f.pkg_path, f.target, f.purl))

    def open_findings(self) -> list[FindingAtT]:
        return self._open


def per_severity(factory):
    return {s: factory(s) for s in SEVERITIES}


# ---- KPIs ------------------------------------------------------------------------------------

def new_findings(ctx: WeekContext) -> dict:
    out = per_severity(lambda s: {"total": 0, "introduced": 0, "disclosed": 0, "onboarded": 0})
    by_cause = {"introduced": 0, "disclosed": 0, "onboarded": 0}
    for f in ctx.state.findings:
        if ctx.S <= f.detected_at < ctx.T:
            out[f.severity]["total"] += 1
            out[f.severity][f.cause] += 1
            by_cause[f.cause] += 1
    out["total"] = sum(out[s]["total"] for s in SEVERITIES)
    out["by_cause"] = by_cause
    return out


def remediated(ctx: WeekContext) -> dict:
    out = per_severity(lambda s: 0)
    totals = {"withdrawn": 0, "retired": 0}
    for c in ctx.state.closes:
        if c.reason == "fixed":
            out[c.severity] += 1
        else:
            totals[c.reason] += 1
    out.update(total=sum(out[s] for s in SEVERITIES), withdrawn=totals["withdrawn"], retired=totals["retired"],
               regressions=ctx.state.regressions)
    return out


def remediation_hours(c: CloseAtT) -> float | None:
    """The time to remediate one close of the week (KPIS.md `mttr_hours`): closed_at - detected_at of a
    `fixed` close; None for a withdrawn or retired close, which is no remediation. The one definition:
    `mttr_hours` and the KEV figures (kpis/exploitation.py) both use it."""
    return hours(c.time - c.detected_at) if c.reason == "fixed" else None


def ttr_stats(durations: list[float]) -> dict:
    """{n, mean, median, p90, max} of times to remediate (median: mean of the two middle values; p90: linear
    interpolation, numpy's default); statistics over nothing are null."""
    xs = sorted(durations)
    if not xs:
        return {"n": 0, "mean": None, "median": None, "p90": None, "max": None}
    arr = np.array(xs, dtype=float)
    return {"n": len(xs), "mean": r2(arr.mean()), "median": r2(np.median(arr)),
            "p90": r2(np.quantile(arr, 0.9)), "max": r2(arr.max())}


def mttr_hours(ctx: WeekContext) -> dict:
    durations = defaultdict(list)
    for c in ctx.state.closes:
        h = remediation_hours(c)
        if h is not None:
            durations[c.severity].append(h)
    return per_severity(lambda sev: ttr_stats(durations[sev]))


def open_sla_state(f: FindingAtT, excepted: bool, T: datetime) -> str:
    """An open finding at T: `excepted` (an exception in force at T matches it; the clock still runs),
    else `overdue` when T > due_at (T == due is within), else `open` (within its SLA, or no SLA)."""
    if excepted:
        return "excepted"
    return "overdue" if f.due_at is not None and T > f.due_at else "open"


def days_overdue(state: str, due_at: datetime | None, T: datetime) -> int | None:
    """Whole days an overdue finding is past its due time at T (None unless its state is overdue)."""
    return (T - due_at).days if state == "overdue" and due_at is not None else None


def sla(ctx: WeekContext) -> dict:
    out = per_severity(lambda s: {"closed_within": 0, "closed_late": 0, "open_within": 0, "open_overdue": 0, "excepted": 0})
    for c in ctx.state.closes:
        # KPIS.md: the SLA close columns count remediations only; a withdrawn or retired close is
        # neither within nor late. The close carries the due time in force when it closed.
        if c.reason != "fixed" or c.due_at is None:
            continue
        out[c.severity]["closed_within" if c.time <= c.due_at else "closed_late"] += 1
    column = {"excepted": "excepted", "overdue": "open_overdue", "open": "open_within"}
    for f in ctx.open_findings():
        out[f.severity][column[open_sla_state(f, ctx.excepted_at_T(f), ctx.T)]] += 1
    for k in ("closed_within", "closed_late", "open_within", "open_overdue"):
        out["UNKNOWN"][k] = None
    return out


def open_backlog(ctx: WeekContext) -> dict:
    out = per_severity(lambda s: {"total": 0, **{b: 0 for b, _, _ in AGE_BUCKETS}})
    for f in ctx.open_findings():
        age = hours(ctx.T - f.detected_at)
        for name, lo, hi in AGE_BUCKETS:
            if age >= lo and (hi is None or age < hi):
                out[f.severity][name] += 1
        out[f.severity]["total"] += 1
    out["total"] = sum(out[s]["total"] for s in SEVERITIES)
    return out


def critical_in_prod(ctx: WeekContext) -> dict:
    count = excepted = 0
    for f in ctx.open_findings():
        if ctx.retired(f.lineage) or f.severity != "CRITICAL":
            continue
        if ctx.excepted_at_T(f):
            excepted += 1
        else:
            count += 1
    return {"count": count, "excepted": excepted}


def _builds_in_week(ctx: WeekContext) -> list[dict]:
    """A build is one (run, lineage, image); its time is the first writing-image/export line for it."""
    builds: dict[tuple, dict] = {}
    for b in ctx.obs.builds:
        if b["lineage"] not in ctx.obs.deployable or b["time"] is None:
            continue
        key = (b["run_id"], b["lineage"], b["image"] or f"unknown:{b['digest']}")
        if key not in builds or b["time"] < builds[key]["time"]:
            builds[key] = {**b, "image": b["image"]}
    return [b for b in builds.values() if ctx.S <= b["time"] < ctx.T]


def build_gate_coverage(ctx: WeekContext) -> dict:
    first_prod_deploy = {}
    for d in ctx.obs.deploys:
        if is_production_attempt(d) and d.time < ctx.T and d.image:
            first_prod_deploy.setdefault(d.image, d.time)
    first_push: dict = {}        # (run, image) -> its first push before T
    for p in ctx.obs.pushes:
        if p["time"] is not None and p["time"] < ctx.T:
            key = (p["run_id"], p["image"])
            first_push[key] = min(first_push.get(key, p["time"]), p["time"])
    builds = sorted(_builds_in_week(ctx), key=lambda b: (b["time"], b["run_id"], b["lineage"]))
    covered, uncovered = 0, []
    for b in builds:
        img = b["image"]
        if img is None:
            uncovered.append(_uncovered(b, "image identity unknown (no ImageID in the build log)"))
            continue
        first_scan = ctx.index.first_of_image(img, ctx.T)
        push = first_push.get((b["run_id"], img))
        if push is not None:
            ok, why = first_scan is not None and first_scan < push, "no scan of this image completed before its push"
        elif img in first_prod_deploy:
            dep = first_prod_deploy[img]
            ok = first_scan is not None and first_scan < dep
            why = "no scan of this image before its first production deploy"
        else:
            ok, why = ctx.index.in_run(b["run_id"], img, ctx.T), "no scan of this image in its run"
        if ok:
            covered += 1
        else:
            uncovered.append(_uncovered(b, why))
    return {"builds": len(builds), "covered": covered, "pct": pct(covered, len(builds)), "uncovered": uncovered}


def run_path(run_id, log_file: str | None, line_no) -> str:
    """A CI log line as a landing-zone path with its run: ci/github-actions/<run>/logs/...:line."""
    return f"ci/github-actions/{run_id}/{log_file}:{line_no}"


def _uncovered(b: dict, reason: str) -> dict:
    return {"run_id": b["run_id"], "lineage": b["lineage"], "image": b["image"], "built_at": iso_z(b["time"]),
            "reason": reason, "evidence": run_path(b["run_id"], b["log_file"], b["line_no"])}


def first_seen_at(ctx: WeekContext) -> dict[str, datetime]:
    """Each deployable lineage seen before T (its first scan or build), by name, with when it was first seen."""
    first_build: dict[str, datetime] = {}
    for b in ctx.obs.builds:
        if b["time"] is not None and b["time"] < ctx.T:
            first_build.setdefault(b["lineage"], b["time"])     # builds are in time order
    out = {}
    for lineage in sorted(ctx.obs.deployable):
        seen = [t for t in (ctx.index.first_time(lineage, ctx.T), first_build.get(lineage)) if t is not None]
        if seen:
            out[lineage] = min(seen)
    return out


def nightly_by_lineage(ctx: WeekContext) -> list[dict]:
    """Per deployable lineage: its image-days in the week (from the day it was first seen, until it
    retired), the days among them with a scan, and the days without (the `coverage.nightly` KPI sums these)."""
    out = []
    for lineage, first_seen in first_seen_at(ctx).items():
        scan_days = {t.date() for t in ctx.index.times(lineage, ctx.T) if t >= ctx.S}
        retired_at = ctx.obs.retired.get(lineage)
        row = {"lineage": lineage, "lineage_days": 0, "days_with_scan": 0, "gaps": []}
        for i in range(7):
            day = ctx.S + timedelta(days=i)
            if day.date() < first_seen.date() or (retired_at is not None and day >= retired_at):
                continue
            row["lineage_days"] += 1
            if day.date() in scan_days:
                row["days_with_scan"] += 1
            else:
                row["gaps"].append({"lineage": lineage, "day": day.date().isoformat()})
        out.append(row)
    return out


def nightly_coverage(ctx: WeekContext, rows: list[dict] | None = None) -> dict:
    rows = nightly_by_lineage(ctx) if rows is None else rows
    lineage_days = sum(r["lineage_days"] for r in rows)
    days_with_scan = sum(r["days_with_scan"] for r in rows)
    return {"pct": pct(days_with_scan, lineage_days), "days_with_scan": days_with_scan, "lineage_days": lineage_days,
            "gaps": [g for r in rows for g in r["gaps"]]}


def coverage(ctx: WeekContext) -> dict:
    return {"build_gate": build_gate_coverage(ctx), "nightly": nightly_coverage(ctx)}


def exception_entries_at_T(ctx: WeekContext) -> list[dict]:
    """Each entry line in force at T with the flags the `exceptions` KPI counts (also exceptions.csv)."""
    T, policy = ctx.T, ctx.policy
    earliest_listing: dict[tuple, datetime] = {}
    for e in ctx.obs.exceptions:
        if e.snapshot_date <= T and e.vuln_id:
            k = (e.scope, e.vuln_id)
            earliest_listing[k] = min(earliest_listing.get(k, e.snapshot_date), e.snapshot_date)
    critical_ids: dict[str, set] = defaultdict(set)   # vuln id -> lineages where it is CRITICAL at T
    for f in ctx.state.findings:
        if f.severity == "CRITICAL":
            critical_ids[f.vuln_id].add(f.lineage)
    open_by_id: dict[str, list[FindingAtT]] = defaultdict(list)
    for f in ctx.open_findings():
        open_by_id[f.vuln_id].append(f)
    out = []
    for e in ctx.exc.listed_at(T):
        critical = e.vuln_id is not None and any(
            ctx.exc.scope_applies(e.scope, lin) for lin in critical_ids.get(e.vuln_id, ()))
        matched = any(ctx.exc.scope_applies(e.scope, f.lineage) and
                      ctx.exc.entry_matches(e, f.vuln_id, f.pkg_path, f.target, f.purl) for f in open_by_id.get(e.vuln_id, ()))
        out.append({
            "scope": e.scope, "snapshot_date": e.snapshot_date.date().isoformat(), "file": e.file, "line": e.line_no,
            "id": e.vuln_id, "expiry": iso_z(e.expiry), "declared_expiry": iso_z(e.declared_expiry), "reason": e.reason,
            "valid": e.valid, "invalid_reason": e.invalid_reason,
            **exception_flags(e, T, policy, critical, earliest_listing.get((e.scope, e.vuln_id)), matched),
            "sha256": e.sha256,
            **(ctx.governance.judge(e, T, lambda lin, s=e.scope: ctx.exc.scope_applies(s, lin))
               if ctx.governance is not None else {})})
    return out


EXCEPTION_FLAGS = ("active", "expiring_14d", "expired_listed", "no_expiry", "no_reason", "critical_over_90d", "unmatched")


def exception_flags(e, T: datetime, policy: dict, critical: bool, first_listed: datetime | None,
                    matched: bool) -> dict:
    """The policy's rules for one exception entry at T (one definition: the weekly KPIs and
    `ifc-scan gate` / `exceptions lint`). `critical`: the entry's vulnerability is CRITICAL where it
    applies; `first_listed`: when the entry first appeared (the 90-day limit runs from then)."""
    active = e.valid and (e.expiry is None or e.expiry > T)
    soon = T + timedelta(days=policy["expiring_soon_days"])
    over_limit = active and critical and (e.expiry is None or (
        first_listed is not None and (e.expiry - first_listed) > timedelta(days=policy["max_exception_days_critical"])))
    return {"active": active,
            "expiring_14d": active and e.expiry is not None and T < e.expiry <= soon,
            "expired_listed": e.valid and e.expiry is not None and e.expiry <= T,
            "no_expiry": active and e.expiry is None, "no_reason": active and not e.reason,
            "critical_over_90d": bool(over_limit), "unmatched": active and not matched}


def exceptions(ctx: WeekContext, entries: list[dict] | None = None) -> dict:
    entries = exception_entries_at_T(ctx) if entries is None else entries
    out = {k: sum(1 for e in entries if e[k]) for k in EXCEPTION_FLAGS}
    out["invalid"] = sum(1 for e in entries if not e["valid"])
    return out


def stale_images(ctx: WeekContext) -> list[dict]:
    limit = ctx.T - timedelta(days=ctx.policy["stale_image_days"])
    first_build = {}
    for b in ctx.obs.builds:
        if b["image"] and b["time"] is not None and b["time"] < ctx.T:
            first_build.setdefault(b["image"], b["time"])
    out = []
    for lineage in sorted(ctx.state.current_images):
        if ctx.retired(lineage):
            continue
        img = ctx.state.current_image(lineage)
        created = ctx.index.image_created(img, ctx.T)
        if img in first_build:
            built, source = first_build[img], "ci_build"
        elif created is not None:
            built, source = created, "image_config_created"
        else:
            built, source = None, "unknown"   # D7: an image of unknown age is listed, not assumed fresh
        if built is None or built < limit:
            out.append({"lineage": lineage, "digest": img, "built_at": iso_z(built), "build_time_source": source})
    return out


def cadence(ctx: WeekContext) -> dict:
    gap_h = ctx.policy["scan_gap_hours"]
    gaps = []
    for lineage in sorted(ctx.obs.deployable):   # D8: the nightly cadence is a policy for deployable images
        retired_at = ctx.obs.retired.get(lineage)
        end = min(ctx.T, retired_at) if retired_at is not None else ctx.T
        ts = ctx.index.times(lineage, end)
        if not ts:
            continue
        # only the pairs that reach into the week: from the last scan at or before S on
        ts = ts[max(0, bisect.bisect_right(ts, ctx.S) - 1):]
        for a, b, is_open in [(ts[i], ts[i + 1], False) for i in range(len(ts) - 1)] + [(ts[-1], end, end == ctx.T)]:
            if hours(b - a) > gap_h and a < ctx.T and b > ctx.S:
                gaps.append({"lineage": lineage, "from": iso_z(a), "to": iso_z(b), "hours": r2(hours(b - a)),
                             "open_at_T": is_open})
    since = ctx.T - timedelta(hours=gap_h)
    recent = {lin for lin in {f.lineage for f in ctx.open_findings()} if ctx.index.any_between(lin, since, ctx.T)}
    stale_evidence = sum(1 for f in ctx.open_findings() if not ctx.retired(f.lineage) and f.lineage not in recent)
    return {"lineages_with_gaps": len({g["lineage"] for g in gaps}), "gaps": gaps, "stale_evidence": stale_evidence}


def freshness(ctx: WeekContext) -> dict:
    """D23: how current the week's evidence is at T. Per deployable lineage in service at T (seen before T,
    not retired): the newest scan of the image it runs at T and that scan's age; older than the policy's
    `scan_gap_hours` (or no scan at all) makes the image `stale`: its findings are not known at T. The
    week has `no_new_evidence` when no scan and no CI build, push or deploy event falls in [S, T)."""
    window = ctx.policy["scan_gap_hours"]
    images = []
    for lineage in first_seen_at(ctx):
        if ctx.retired(lineage):
            continue
        img = ctx.state.current_image(lineage)
        scan = ctx.index.latest(lineage, img, ctx.T) if img else None
        age = r2(hours(ctx.T - scan.observed_at)) if scan is not None else None
        images.append({"lineage": lineage, "image": img, "last_scan_at": iso_z(scan.observed_at) if scan else None,
                       "age_hours": age, "stale": age is None or age > window})
    # the observations before T are time-ordered lists: the week's share and the newest, by bisection
    seen = [_since(ctx.obs.scans, ctx.S, lambda x: x.observed_at), _since(ctx.obs.builds, ctx.S, lambda x: x["time"]),
            _since(ctx.obs.pushes, ctx.S, lambda x: x["time"]), _since(ctx.obs.deploys, ctx.S, lambda x: x.time)]
    scans_in_week, ci_in_week = seen[0][0], sum(n for n, _ in seen[1:])
    last = max((t for _, t in seen if t is not None), default=None)
    return {"window_hours": window, "images": images, "stale": sum(1 for i in images if i["stale"]),
            "scans_in_week": scans_in_week, "ci_events_in_week": ci_in_week, "last_evidence_at": iso_z(last),
            "no_new_evidence": scans_in_week + ci_in_week == 0}


def _since(items: list, start: datetime, key) -> tuple[int, datetime | None]:
    """(how many of these time-ordered observations, all before T, are at or after `start`; the newest one's time)."""
    if not items:
        return 0, None
    return len(items) - bisect.bisect_left(items, start, key=key), key(items[-1])


def compute_week(ctx: WeekContext) -> dict:
    """The KPI keys of kpis.json for the week [ctx.S, ctx.T), and the exception entries behind them."""
    start, end = ctx.S, ctx.T
    entries = exception_entries_at_T(ctx)
    return {
        "week": week_label(start.date()), "period_start": iso_z(start), "period_end": iso_z(end), "as_of": iso_z(end),
        "new_findings": new_findings(ctx), "remediated": remediated(ctx), "mttr_hours": mttr_hours(ctx),
        "sla": sla(ctx), "open_backlog": open_backlog(ctx), "critical_in_prod": critical_in_prod(ctx),
        "coverage": coverage(ctx), "exceptions": exceptions(ctx, entries),
        **({"exception_approvals": approval_summary(entries, ctx.governance.has_evidence)}
           if ctx.governance is not None else {}),
        "stale_images": stale_images(ctx), "cadence": cadence(ctx), "freshness": freshness(ctx),
    }, entries


def week_tickets(ctx: WeekContext) -> tuple[dict | None, list[dict]]:
    """kpis.json `tickets` and tickets.csv (kpis/tickets.py); (None, []) without ticket evidence loaded."""
    return reconcile(ctx, ctx.tickets) if ctx.tickets is not None else (None, [])
