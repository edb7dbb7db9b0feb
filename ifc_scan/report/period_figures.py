"""The audit-period figures: every published week of a period read back and summed, never recomputed.

It reads only what the weekly stage published (reports/<week>/kpis.json, the CSVs, manifest.json): a
period figure is a count or a distribution over the weekly ones, each defined below and in the pack's
README. The pack's files (pages, CSVs, zip, signature, `verify --pack`) are in period.py.

Period figures (new definitions, over the published ISO weeks whose Thursday falls in the period):
- control and target strips: each week's status as its report states it (no data: no published week),
  except the controls whose rule is `reproducible` (ISO/IEC 27001 9.1): the pack judges those from its
  own verification of the week (docs/kpi-decisions.md D25);
- weeks that failed: each failing condition of a week once, with its value against its target, read from
  the week's kpis.json (controls[].failed and the figures the condition is about), and the controls it
  makes fail;
- SLA over the period: the sums of the weeks' `sla.<severity>.closed_within` / `closed_late` (each fix
  counted in the one week it closed); open overdue at the period's end: the last week's figure;
- time to remediate over the period: every fix of findings.csv closed in the period's weeks
  (close_reason fixed, its ttr_hours), with n, mean, median, p90 (numpy's linear quantile, as D11),
  max and a histogram;
- nightly continuity: the sums of the weeks' nightly `lineage_days` and `days_with_scan`, every gap day
  of coverage.csv, and per deployable image the sums of its weekly `nightly_days` rows (days with a
  scan / image-days);
- exceptions in force: each (scope, file, vulnerability) listed in any week, with the first and last
  week that listed it, each renewal (its expiry changed), when it was first listed past its expiry,
  and each flag it ever had;
- production deploys: every deploys.csv row of the period.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from ifc_scan.controls.evaluate import CATALOG
from ifc_scan.ingest.model import SEVERITIES
from ifc_scan.kpis.targets import Targets, judge_targets
from ifc_scan.kpis.view import WeekKpis
from ifc_scan.kpis.weekly import EXCEPTION_FLAGS
from ifc_scan.report.html import duration, fmt
from ifc_scan.report.writer import sha256_bytes
from ifc_scan.timeutil import parse_week, week_label

TTR_BINS = ((24, "under 1 d"), (168, "1-7 d"), (720, "7-30 d"), (2160, "30-90 d"), (None, "over 90 d"))
DEFAULT_SAMPLE = 10
# the controls the pack judges from its own verification (D25): the catalog's rows with this rule
REPRODUCIBLE = {(c["framework"], c["id"]) for c in CATALOG["controls"] if c["rule"] == "reproducible"}
REPRODUCED_CONDITION = "every output recomputed from the week's inputs by the pack's verification"


def period_bounds(start: str, end: str) -> tuple[date, date]:
    """'2026-01' (a month), '2026-W05' (a week) or '2026-01-05' (a day) -> (first day, last day)."""
    def one(text: str, last: bool) -> date:
        if len(text) == 7 and text[4] == "-" and text[5:].isdigit():
            y, m = int(text[:4]), int(text[5:])
            first = date(y, m, 1)
            if not last:
                return first
            nxt = date(y + (m == 12), m % 12 + 1, 1)
            return nxt - timedelta(days=1)
        if "W" in text:
            monday = parse_week(text)
            return monday + timedelta(days=6) if last else monday
        return date.fromisoformat(text)
    a, b = one(start, False), one(end, True)
    if b < a:
        raise ValueError(f"the period ends ({b}) before it starts ({a})")
    return a, b


def period_mondays(first: date, last: date) -> list[date]:
    """The ISO weeks of the period: those whose Thursday falls in it (ISO 8601's rule for giving a week
    to a year, applied to any range), so a week is in exactly one of two adjacent periods."""
    thursday = first + timedelta(days=(3 - first.weekday()) % 7)
    out = []
    while thursday <= last:
        out.append(thursday - timedelta(days=3))
        thursday += timedelta(days=7)
    return out


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@dataclass
class PublishedWeek:
    week: str
    folder: Path
    kpis: dict
    findings: list[dict]
    exceptions: list[dict]
    coverage: list[dict]
    deploys: list[dict]
    manifest_sha256: str
    revision: int | None


def load_published(reports: Path, monday: date) -> PublishedWeek | None:
    folder = reports / week_label(monday)
    if not (folder / "kpis.json").is_file():
        return None
    manifest = folder / "manifest.json"
    m = json.loads(manifest.read_text()) if manifest.is_file() else {}
    return PublishedWeek(week_label(monday), folder, json.loads((folder / "kpis.json").read_text()),
                         _read_csv(folder / "findings.csv"), _read_csv(folder / "exceptions.csv"),
                         _read_csv(folder / "coverage.csv"), _read_csv(folder / "deploys.csv"),
                         sha256_bytes(manifest.read_bytes()) if manifest.is_file() else "",
                         m.get("revision"))


def as_number(text) -> float | None:
    """A CSV cell as a number (None when empty or not one)."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _data_quality(last: PublishedWeek) -> dict:
    """The last week's data-quality line (whole-warehouse counts at the period's end), from its manifest."""
    m = last.folder / "manifest.json"
    dq = (json.loads(m.read_text()).get("render") or {}).get("data_quality") or {} if m.is_file() else {}
    return {"as_of_week": last.week, "rejected_files": len(dq.get("rejected") or []),
            "unparsed_log_lines": dq.get("unparsed_lines"), "ci_masked_events": dq.get("ci_masked_events"),
            "ci_failed_events": dq.get("ci_failed_events"), "scans_without_image": dq.get("scans_without_image")}


def ttr_distribution(hours: list[float]) -> dict:
    if not hours:
        return {"n": 0, "mean": None, "median": None, "p90": None, "max": None,
                "histogram": {label: 0 for _, label in TTR_BINS}}
    arr = np.array(hours, dtype=float)
    hist = {label: 0 for _, label in TTR_BINS}
    for h in hours:
        hist[next(label for top, label in TTR_BINS if top is None or h < top)] += 1
    return {"n": len(hours), "mean": round(float(arr.mean()), 2), "median": round(float(np.median(arr)), 2),
            "p90": round(float(np.quantile(arr, 0.9)), 2), "max": round(float(arr.max()), 2), "histogram": hist}


@dataclass
class PeriodPack:
    start: date
    end: date
    weeks: list[str]
    published: list[PublishedWeek]
    missing: list[str]
    figures: dict = field(default_factory=dict)
    populations: dict = field(default_factory=dict)
    sample: dict = field(default_factory=dict)


def _control_key(c: dict) -> str:
    return f"{c['framework']} {c['id']}"


def week_controls(w: PublishedWeek, verified: bool | None) -> list[dict]:
    """The week's controls as its kpis.json states them, except that a `reproducible` control (ISO/IEC
    27001 9.1) is judged from the pack's verification of the week (D25): pass when it verified, fail when
    it did not, as published (no data) when the pack did not verify."""
    if verified is None:
        return w.kpis["controls"]
    return [dict(c, status="pass" if verified else "fail", failed=[] if verified else [REPRODUCED_CONDITION],
                 no_data=[], judged_by="the pack's verification")
            if (c["framework"], c["id"]) in REPRODUCIBLE else c for c in w.kpis["controls"]]


def _strips(published: list[PublishedWeek], weeks: list[str], verification: dict[str, bool] | None) -> tuple:
    """Each control's and each target's status, week by week: (control rows, target rows)."""
    controls: dict = {}
    for w in published:
        for c in week_controls(w, None if verification is None else verification.get(w.week)):
            controls.setdefault(_control_key(c), {})[w.week] = c["status"]
    shown = {w.week for w in published}
    for week, ok in (verification or {}).items():       # a week left out still has the pack's 9.1 judgement
        if not ok and week in weeks and week not in shown:
            for framework, cid in REPRODUCIBLE:
                controls.setdefault(f"{framework} {cid}", {})[week] = "fail"
    strip_rows = []
    for key, byweek in sorted(controls.items()):
        cells = [(wk, byweek.get(wk, "no data")) for wk in weeks]
        strip_rows.append({"control": key, "cells": cells,
                           "failed_weeks": [wk for wk, s in cells if s == "fail"],
                           "verdict": "fail" if any(s == "fail" for _, s in cells) else
                           ("no data" if all(s in ("no data", "no-data") for _, s in cells) else "pass")})
    targets: dict = {}
    for w in published:
        for t in judge_targets(WeekKpis(w.kpis), Targets.from_policy(w.kpis["policy"]), w.findings):
            targets.setdefault(t.key, {"label": t.label, "weeks": {}})["weeks"][w.week] = t.passed
    target_rows = []
    for key, t in targets.items():
        cells = [(wk, ("no data" if wk not in t["weeks"] or t["weeks"][wk] is None else
                       ("pass" if t["weeks"][wk] else "fail"))) for wk in weeks]
        target_rows.append({"target": t["label"], "key": key, "cells": cells,
                            "met_weeks": sum(1 for _, s in cells if s == "pass"),
                            "judged_weeks": sum(1 for _, s in cells if s != "no data")})
    return strip_rows, target_rows


def _pct(part, whole, what: str) -> str:
    return f"{fmt(round(100 * part / whole, 2), ' %')} ({fmt(part)} of {fmt(whole)} {what})" if whole else "n/a"


def _hours(h) -> str:
    """Hours exactly, so a value and its target never read the same ('48.4 h (2 d)' against '48 h (2 d)')."""
    return "n/a" if h is None else fmt(round(h, 1), " h") + (f" ({duration(h)})" if h >= 24 else "")


def _zero(n, what: str) -> tuple:
    return f"{fmt(n)} {what}", "0"


def condition_fact(condition: str, w: PublishedWeek, items: list[dict]) -> tuple[str, str]:
    """(value, target) of a control's condition in week `w`, from the figures of its kpis.json the
    condition is about (controls/evaluate.py names the conditions); `items`: the offenders it lists."""
    k, view = w.kpis, WeekKpis(w.kpis)
    coverage = f">= {Targets.from_policy(k['policy']).coverage_pct:g} %"
    bg, ng = view.build_gate, view.nightly
    appr, tix = k.get("exception_approvals") or {}, k.get("tickets") or {}
    facts = {
        "build-gate coverage": lambda: (_pct(bg["covered"], bg["builds"], "builds"), coverage),
        "nightly coverage": lambda: (_pct(ng["days_with_scan"], ng["lineage_days"], "image-days scanned"), coverage),
        "no CRITICAL finding overdue": lambda: _zero(k["sla"]["CRITICAL"]["open_overdue"], "CRITICAL overdue"),
        "no open finding overdue": lambda: _zero(view.open_overdue, "overdue"),
        "exceptions valid": lambda: (f"{fmt(k['exceptions']['invalid'])} invalid, "
                                     f"{fmt(k['exceptions']['expired_listed'])} expired still listed", "0 and 0"),
        "exceptions in force approved": lambda: _zero(appr.get("chain_incomplete"), "with the chain incomplete"),
        "no CRITICAL exception without CTO": lambda: _zero(appr.get("critical_without_cto"), "without CTO sign-off"),
        "HIGH/CRITICAL findings ticketed": lambda: (fmt(sum(e["late"] + e["missing"] for e in tix["escalation"].values()))
                                                    + " late or missing", "0"),
        "no ticket closed while": lambda: _zero(tix.get("closed_without_fix"), "closed, finding open"),
        "every production deploy": lambda: (f"{fmt(len(items))} of {fmt(len(w.deploys))} deploys fail it", "0"),
        "no production deploy": lambda: (f"{fmt(len(items))} of {fmt(len(w.deploys))} deploys fail it", "0"),
        "MTTR within the SLA": lambda: ("; ".join(f"{i['severity']} mean {_hours(i['mean_h'])}" for i in items),
                                        "; ".join(f"{i['severity']} <= {_hours(i['sla_h'])}" for i in items)),
        "no scan gap over the tolerance": lambda: (
            f"{fmt(k['cadence']['lineages_with_gaps'])} image(s), longest gap "
            f"{_hours(max((g['hours'] for g in k['cadence']['gaps']), default=None))}",
            f"no gap over {_hours(k['policy']['scan_gap_hours'])}"),
        REPRODUCED_CONDITION: lambda: ("not verified (verification.txt says why)", "verified"),
    }
    fact = next((f for prefix, f in facts.items() if condition.startswith(prefix)), None)
    # a condition this module does not know (a newer catalog) still shows how many items it names
    return fact() if fact else (f"{fmt(len(items))} item(s)", "not stated")


def failing_conditions(w: PublishedWeek, verified: bool | None) -> list[dict]:
    """Each condition that failed in week `w`, once, with its value against its target and the controls
    it makes fail (one missed nightly scan is one condition failing in seven controls)."""
    by_condition: dict[str, dict] = {}
    for c in week_controls(w, verified):
        for name in c.get("failed") or []:
            row = by_condition.setdefault(name, {"condition": name, "controls": [], "items": []})
            row["controls"].append(_control_key(c))
            row["items"] += [i for i in c.get("items") or [] if i.get("condition") == name and i not in row["items"]]
    out = []
    for name, row in by_condition.items():
        value, target = condition_fact(name, w, row["items"])
        out.append({"condition": name, "value": value, "target": target, "controls": row["controls"],
                    "items": len(row["items"])})
    return out


def conditions_in_period(failing_weeks: list[dict]) -> list[dict]:
    """Each condition that failed in some week, once: the weeks it failed and the controls it made fail."""
    out: dict[str, dict] = {}
    for w in failing_weeks:
        for c in w["conditions"]:
            row = out.setdefault(c["condition"], {"condition": c["condition"], "weeks": [], "controls": []})
            row["weeks"].append(w["week"])
            row["controls"] += [k for k in c["controls"] if k not in row["controls"]]
    return sorted(out.values(), key=lambda r: (-len(r["weeks"]), r["condition"]))


def _sla_and_ttr(published: list[PublishedWeek]) -> tuple:
    """(SLA sums, open overdue at the end, fixes, time to remediate per severity)."""
    sla = {s: {"closed_within": 0, "closed_late": 0} for s in SEVERITIES}
    for w in published:
        for s in SEVERITIES:
            for k in ("closed_within", "closed_late"):
                sla[s][k] += w.kpis["sla"][s].get(k) or 0
    open_overdue_end = {s: published[-1].kpis["sla"][s].get("open_overdue") for s in SEVERITIES}
    fixes = [dict(f, week=w.week) for w in published for f in w.findings
             if f.get("close_reason") == "fixed" and as_number(f.get("ttr_hours")) is not None]
    ttr = {s: ttr_distribution([as_number(f["ttr_hours"]) for f in fixes if f["severity"] == s]) for s in SEVERITIES}
    return sla, open_overdue_end, fixes, ttr


def _continuity(published: list[PublishedWeek]) -> tuple[dict, dict]:
    """(the nightly figure, populations: gaps, per-image rows, builds not scanned)."""
    lineage_days = sum(w.kpis["coverage"]["nightly"]["lineage_days"] for w in published)
    days_scanned = sum(w.kpis["coverage"]["nightly"]["days_with_scan"] for w in published)
    gaps = [dict(g, week=w.week) for w in published for g in w.coverage if g.get("kind") == "nightly_gap"]
    # each deployable image's continuity: the weeks' "days with a scan/image-days" rows summed (weeks published
    # before these rows existed have none: the image table then covers fewer weeks than the totals, and says so)
    per_image: dict[str, list[int]] = {}
    weeks_with_rows = 0
    for w in published:
        rows = [g for g in w.coverage if g.get("kind") == "nightly_days"]
        weeks_with_rows += bool(rows)
        for g in rows:
            scanned, days = (int(x) for x in g["item"].split("/"))
            acc = per_image.setdefault(g["lineage"], [0, 0])
            acc[0] += scanned
            acc[1] += days
    lineage_rows = [{"lineage": lin, "days_with_scan": a, "lineage_days": b,
                     "pct": round(100 * a / b, 2) if b else None, "gap_days": b - a}
                    for lin, (a, b) in sorted(per_image.items())]
    nightly = {"lineage_days": lineage_days, "days_with_scan": days_scanned,
               "pct": round(100 * days_scanned / lineage_days, 2) if lineage_days else None, "gap_days": len(gaps),
               "gap_days_by_image": dict(sorted(Counter(g["lineage"] for g in gaps).items())),
               "by_image": lineage_rows, "weeks_with_image_rows": weeks_with_rows}
    uncovered = [dict(g, week=w.week) for w in published for g in w.coverage if g.get("kind") == "build_uncovered"]
    return nightly, {"nightly_gaps": gaps, "lineage_days": lineage_rows, "uncovered_builds": uncovered}


def _exceptions_in_force(published: list[PublishedWeek]) -> list[dict]:
    """An exception is a (scope, file, vulnerability) across the weekly snapshots; its life is what the weeks
    show: listed, renewed (another expiry), expired while listed, no longer listed."""
    exc: dict = {}
    for w in published:
        for e in w.exceptions:
            key = (e["scope"], e["file"], e["id"])
            row = exc.setdefault(key, {"scope": e["scope"], "file": e["file"], "id": e["id"], "first_week": w.week,
                                       "last_week": w.week, "flags": set(), "events": [], "expiry": e["expiry"],
                                       "reason": e["reason"], "snapshot_date": e["snapshot_date"], "line": e["line"],
                                       "sha256": e["sha256"]})
            if e["expiry"] != row["expiry"]:
                row["events"].append(f"renewed in {w.week}: expiry {row['expiry'] or 'none'} -> {e['expiry'] or 'none'}")
            if e.get("expired_listed") == "True" and "expired_listed" not in row["flags"]:
                row["events"].append(f"listed past its expiry from {w.week}")
            row.update(last_week=w.week, expiry=e["expiry"], reason=e["reason"], snapshot_date=e["snapshot_date"],
                       line=e["line"], sha256=e["sha256"])
            if e.get("active") == "True":     # the chain as the last week it was in force judged it
                row.update(approvers=e.get("approvers") or "", missing_roles=e.get("missing_roles") or "",
                           approval_pull_request=e.get("approval_pull_request") or "",
                           chain_complete=e.get("chain_complete") or "not judged (week published before 1.1)")
                if e.get("chain_complete") == "False":
                    row["incomplete_weeks"] = row.get("incomplete_weeks", 0) + 1
            row["flags"].update(f for f in EXCEPTION_FLAGS if e.get(f) == "True")
    exceptions = []
    for row in exc.values():
        life = [f"listed from {row['first_week']}", *row.pop("events")]
        if row["last_week"] != published[-1].week:
            life.append(f"no longer listed after {row['last_week']}")
        exceptions.append({**row, "flags": " ".join(sorted(row["flags"])), "life": "; ".join(life)})
    exceptions.sort(key=lambda e: (e["scope"], e["id"] or "", e["file"]))
    return exceptions


def _load_weeks(reports: Path, start: date, end: date, left_out: dict[str, str]) -> PeriodPack:
    mondays = period_mondays(start, end)
    if not mondays:
        raise ValueError(f"no week starts between {start} and {end}")
    published, missing = [], []
    for m in mondays:
        if week_label(m) in left_out:
            continue
        w = load_published(reports, m)
        (published.append(w) if w is not None else missing.append(week_label(m)))
    if not published:
        raise ValueError(f"no published week between {start} and {end} in {reports}"
                         + (f" verifies ({', '.join(sorted(left_out))} failed verification)" if left_out else
                            ": publish the weeks first"))
    return PeriodPack(start, end, [week_label(m) for m in mondays], published, missing)


def _draw_sample(pack: PeriodPack, sample_size: int, seed: int | None) -> dict:
    seed = seed if seed is not None else int.from_bytes(hashlib.sha256(
        f"{pack.start}{pack.end}{[w.manifest_sha256 for w in pack.published]}".encode()).digest()[:4], "big")
    rng = random.Random(seed)
    pop = pack.populations
    return {"seed": seed, "size": sample_size,
            "remediations": rng.sample(pop["remediations"], min(sample_size, len(pop["remediations"]))),
            "exceptions": rng.sample(pop["exceptions"], min(sample_size, len(pop["exceptions"]))),
            "deploys": rng.sample(pop["deploys"], min(sample_size, len(pop["deploys"])))}


def build_period(reports: Path, start: date, end: date, sample_size: int = DEFAULT_SAMPLE, seed: int | None = None,
                 left_out: dict[str, str] | None = None, verification: dict[str, bool] | None = None) -> PeriodPack:
    """`left_out`: weeks that failed verification (week -> why); no figure of the pack rests on them.
    `verification`: week -> verified by the pack (None: the pack did not verify), for ISO/IEC 27001 9.1."""
    left_out = left_out or {}
    pack = _load_weeks(reports, start, end, left_out)
    published = pack.published
    strip_rows, target_rows = _strips(published, pack.weeks, verification)
    failing_weeks = [{"week": w.week, "conditions": conds} for w in published
                     if (conds := failing_conditions(w, None if verification is None else verification.get(w.week)))]
    sla, open_overdue_end, fixes, ttr = _sla_and_ttr(published)
    nightly, continuity = _continuity(published)
    exceptions = _exceptions_in_force(published)
    deploys = [dict(d, week=w.week) for w in published for d in w.deploys]
    pack.figures = {
        "period": {"from": start.isoformat(), "to": end.isoformat(), "weeks": len(pack.weeks),
                   "weeks_published": len(published), "weeks_missing": pack.missing,
                   "weeks_left_out_unverified": sorted(left_out)},
        "verdict": "NOT COMPLIANT" if failing_weeks else (
            "COMPLIANT" if not pack.missing and not left_out else "INCOMPLETE"),
        "controls": strip_rows, "targets": target_rows, "failing_weeks": failing_weeks,
        "failing_conditions": conditions_in_period(failing_weeks),
        "sla": sla, "open_overdue_at_end": open_overdue_end, "time_to_remediate": ttr, "nightly": nightly,
        "build_gate": {"builds": sum(w.kpis["coverage"]["build_gate"]["builds"] for w in published),
                       "covered": sum(w.kpis["coverage"]["build_gate"]["covered"] for w in published)},
        "exceptions_in_force": len(exceptions),
        "exceptions_with_incomplete_chain": sum(1 for e in exceptions if e.get("incomplete_weeks")),
        "production_deploys": len(deploys),
        "data_quality": _data_quality(published[-1]),
        "verification": verification,
    }
    pack.populations = {"remediations": fixes, "exceptions": exceptions, "deploys": deploys, **continuity,
                        "weeks_x_controls": [{"control": r["control"], **dict(r["cells"])} for r in strip_rows]}
    pack.sample = _draw_sample(pack, sample_size, seed)
    return pack
