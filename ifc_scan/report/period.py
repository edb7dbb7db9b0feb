"""The audit-period evidence pack: every published week of a period in one bundle an auditor reads.

It reads only what the weekly stage published (reports/<week>/kpis.json, the CSVs, manifest.json) and
never recomputes a weekly figure: a period figure is a count or a distribution over the weekly ones,
each defined below and in the pack's README. Written to reports/periods/<from>_<to>/ and zipped.

Period figures (new definitions, over the published ISO weeks whose Thursday falls in the period):
- control and target strips: each week's status as its report states it (no data: no published week);
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
import io
import json
import random
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from ifc_scan.ingest.model import SEVERITIES
from ifc_scan.kpis.targets import Targets, judge_targets
from ifc_scan.kpis.view import WeekKpis
from ifc_scan.kpis.weekly import EXCEPTION_FLAGS
from ifc_scan.report.html import ENV, duration, fmt
from ifc_scan.report.writer import csv_safe, sha256_bytes
from ifc_scan.timeutil import parse_week, week_label

TTR_BINS = ((24, "under 1 d"), (168, "1-7 d"), (720, "7-30 d"), (2160, "30-90 d"), (None, "over 90 d"))
DEFAULT_SAMPLE = 10


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


def _num(text):
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


def build_period(reports: Path, start: date, end: date, sample_size: int = DEFAULT_SAMPLE, seed: int | None = None
                 ) -> PeriodPack:
    mondays = period_mondays(start, end)
    if not mondays:
        raise ValueError(f"no week starts between {start} and {end}")
    published, missing = [], []
    for m in mondays:
        w = load_published(reports, m)
        (published.append(w) if w is not None else missing.append(week_label(m)))
    if not published:
        raise ValueError(f"no published week between {start} and {end} in {reports}: publish the weeks first")
    pack = PeriodPack(start, end, [week_label(m) for m in mondays], published, missing)

    # strips: each control's and each target's status, week by week, as the weekly report states it
    controls: dict = {}
    for w in published:
        for c in w.kpis["controls"]:
            key = f"{c['framework']} {c['id']}"
            controls.setdefault(key, {"framework": c["framework"], "id": c["id"], "weeks": {}})["weeks"][w.week] = c
    targets: dict = {}
    for w in published:
        for t in judge_targets(WeekKpis(w.kpis), Targets.from_policy(w.kpis["policy"]), w.findings):
            targets.setdefault(t.key, {"label": t.label, "weeks": {}})["weeks"][w.week] = t.passed
    strip_rows = []
    for key, c in sorted(controls.items()):
        cells = [(wk, (c["weeks"].get(wk) or {}).get("status", "no data")) for wk in pack.weeks]
        strip_rows.append({"control": key, "cells": cells,
                           "failed_weeks": [wk for wk, s in cells if s == "fail"],
                           "verdict": "fail" if any(s == "fail" for _, s in cells) else
                           ("no data" if all(s in ("no data", "no-data") for _, s in cells) else "pass")})
    target_rows = []
    for key, t in targets.items():
        cells = [(wk, ("no data" if wk not in t["weeks"] or t["weeks"][wk] is None else
                       ("pass" if t["weeks"][wk] else "fail"))) for wk in pack.weeks]
        target_rows.append({"target": t["label"], "key": key, "cells": cells,
                            "met_weeks": sum(1 for _, s in cells if s == "pass"),
                            "judged_weeks": sum(1 for _, s in cells if s != "no data")})
    failing_weeks = [{"week": w.week, "failing": [f"{c['framework']} {c['id']}: {'; '.join(c.get('failed') or [])}"
                                                  for c in w.kpis["controls"] if c["status"] == "fail"]}
                     for w in published if any(c["status"] == "fail" for c in w.kpis["controls"])]

    # SLA and time to remediate over the period
    sla = {s: {"closed_within": 0, "closed_late": 0} for s in SEVERITIES}
    for w in published:
        for s in SEVERITIES:
            for k in ("closed_within", "closed_late"):
                sla[s][k] += w.kpis["sla"][s].get(k) or 0
    last = published[-1]
    open_overdue_end = {s: last.kpis["sla"][s].get("open_overdue") for s in SEVERITIES}
    fixes = [dict(f, week=w.week) for w in published for f in w.findings
             if f.get("close_reason") == "fixed" and _num(f.get("ttr_hours")) is not None]
    ttr = {s: ttr_distribution([_num(f["ttr_hours"]) for f in fixes if f["severity"] == s]) for s in SEVERITIES}

    # nightly continuity
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
    uncovered_builds = [dict(g, week=w.week) for w in published for g in w.coverage if g.get("kind") == "build_uncovered"]

    # exceptions in force during the period: an exception is a (scope, file, vulnerability) across the
    # weekly snapshots; its life is what the weeks show: listed, renewed (another expiry), expired while
    # listed, no longer listed
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

    deploys = [dict(d, week=w.week) for w in published for d in w.deploys]

    pack.figures = {
        "period": {"from": start.isoformat(), "to": end.isoformat(), "weeks": len(pack.weeks),
                   "weeks_published": len(published), "weeks_missing": missing},
        "verdict": "NOT COMPLIANT" if failing_weeks else ("COMPLIANT" if not missing else "INCOMPLETE"),
        "controls": strip_rows, "targets": target_rows, "failing_weeks": failing_weeks,
        "sla": sla, "open_overdue_at_end": open_overdue_end, "time_to_remediate": ttr,
        "nightly": {"lineage_days": lineage_days, "days_with_scan": days_scanned,
                    "pct": round(100 * days_scanned / lineage_days, 2) if lineage_days else None, "gap_days": len(gaps),
                    "gap_days_by_image": dict(sorted(Counter(g["lineage"] for g in gaps).items())),
                    "by_image": lineage_rows, "weeks_with_image_rows": weeks_with_rows},
        "build_gate": {"builds": sum(w.kpis["coverage"]["build_gate"]["builds"] for w in published),
                       "covered": sum(w.kpis["coverage"]["build_gate"]["covered"] for w in published)},
        "exceptions_in_force": len(exceptions),
        "exceptions_with_incomplete_chain": sum(1 for e in exceptions if e.get("incomplete_weeks")),
        "production_deploys": len(deploys),
        "data_quality": _data_quality(published[-1]),
    }
    pack.populations = {"remediations": fixes, "exceptions": exceptions, "deploys": deploys, "nightly_gaps": gaps,
                        "lineage_days": lineage_rows,
                        "uncovered_builds": uncovered_builds,
                        "weeks_x_controls": [{"control": r["control"], **dict(r["cells"])} for r in strip_rows]}
    seed = seed if seed is not None else int.from_bytes(hashlib.sha256(
        f"{start}{end}{[w.manifest_sha256 for w in published]}".encode()).digest()[:4], "big")
    rng = random.Random(seed)
    pack.sample = {"seed": seed, "size": sample_size,
                   "remediations": rng.sample(fixes, min(sample_size, len(fixes))),
                   "exceptions": rng.sample(exceptions, min(sample_size, len(exceptions))),
                   "deploys": rng.sample(deploys, min(sample_size, len(deploys)))}
    return pack


POPULATION_COLUMNS = {
    "remediations": ("week", "finding_id", "lineage", "vulnerability_id", "pkg_name", "severity", "detected_at",
                     "closed_at", "ttr_hours", "closed_by", "source_file", "source_sha256"),
    "exceptions": ("scope", "snapshot_date", "file", "line", "id", "expiry", "reason", "first_week", "last_week",
                   "flags", "life", "chain_complete", "approvers", "missing_roles", "approval_pull_request",
                   "incomplete_weeks", "sha256"),
    "deploys": ("week", "time", "lineage", "digest", "image", "run_id", "scanned_before", "verified_before",
                "critical_unexcepted_before", "outcome", "counts_as_deploy", "evidence"),
    "nightly_gaps": ("week", "lineage", "item", "detail", "evidence"),
    "lineage_days": ("lineage", "days_with_scan", "lineage_days", "pct", "gap_days"),
    "uncovered_builds": ("week", "lineage", "item", "image", "time", "detail", "evidence"),
}


def _csv(rows: list[dict], columns) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([csv_safe(r.get(c)) for c in columns])
    return buf.getvalue().encode("utf-8")


README = """Audit-period evidence pack: {start} to {end} ({n} weeks, {published} published)
===================================================================================

What this is
  The container-image scanning evidence of every week of the period, from the weekly reports that
  ifc_scan published (reports/<week>/). Nothing here is a new measurement of a week: each period
  figure is a sum or a distribution over the weekly figures, defined in period.html ("How the period
  figures are made") and listed below.

Files
  period.html            the period on one page: verdict, a week-by-week strip per control and per
                         policy target, the weeks that failed and why (with links to their reports),
                         SLA and time to remediate over the period, scanning continuity, exceptions in
                         force and production deploys; prints on A4 landscape
  *.csv                  the populations behind the page: weeks x controls, remediations, exceptions,
                         deploys, nightly gaps, builds not scanned
  sample.json            a reproducible random sample for testing: seed {seed}; each item names its
                         week (open reports/<week>/report.html), its input file and sha256 or log line
  verification.txt       `ifc-scan verify` of every week of the period: signatures, chains of input
                         files, and every output recomputed from the inputs alone
  manifest.json          each weekly manifest this pack rests on (sha256), and the sha256 of every file here

How to check it
  1. Re-run the verification: ifc-scan verify --reports <reports folder> --from {first} --to {last}
     (and --key <public key file> to require the team's signing key).
  2. Check each file of this pack against manifest.json (sha256sum), and each weekly manifest against
     reports/<week>/manifest.json.
  3. Re-draw the sample: Python's random.Random({seed}).sample over the rows of the CSV, in file order,
     as period.py does (remediations, then exceptions, then deploys).
"""


def write_period(reports: Path, pack: PeriodPack, landing: Path | None = None, verify: bool = True) -> Path:
    from ifc_scan.report.verify import verify_week
    name = f"{pack.start.isoformat()}_{pack.end.isoformat()}"
    out = reports / "periods" / name
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    for key, cols in POPULATION_COLUMNS.items():
        files[f"{key}.csv"] = _csv(pack.populations[key], cols)
    strip_cols = ("control", *pack.weeks)
    files["weeks_x_controls.csv"] = _csv(pack.populations["weeks_x_controls"], strip_cols)
    files["sample.json"] = (json.dumps(pack.sample, indent=1, sort_keys=True, default=str) + "\n").encode()
    files["figures.json"] = (json.dumps(pack.figures, indent=1, sort_keys=True, default=str) + "\n").encode()
    from ifc_scan.report.publications import read_log
    lines = []
    if verify:
        log = read_log(reports)
        for w in pack.published:
            lines += verify_week(reports, w.week, landing, log=log).lines()
        lines.append(f"{len(pack.published)} week(s) checked")
    else:
        lines.append("not run (--no-verify)")
    files["verification.txt"] = ("\n".join(lines) + "\n").encode()
    files["period.html"] = ENV.get_template("period.html.j2").render(
        p=pack, f=pack.figures, severities=SEVERITIES, fmt=fmt, duration=duration,
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")).encode("utf-8")
    files["README.txt"] = README.format(start=pack.start, end=pack.end, n=len(pack.weeks), published=len(pack.published),
                                        seed=pack.sample["seed"], first=pack.weeks[0], last=pack.weeks[-1]).encode()
    manifest = {"period": pack.figures["period"], "sample_seed": pack.sample["seed"],
                "weeks": [{"week": w.week, "revision": w.revision, "manifest_sha256": w.manifest_sha256}
                          for w in pack.published],
                "files": {n: sha256_bytes(d) for n, d in sorted(files.items())}}
    files["manifest.json"] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    for n, data in files.items():
        (out / n).write_bytes(data)
    with zipfile.ZipFile(out.with_suffix(".zip"), "w", zipfile.ZIP_DEFLATED) as zf:
        for n in sorted(files):
            zf.writestr(f"{name}/{n}", files[n])
    return out
