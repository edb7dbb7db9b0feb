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
import os
import random
import shutil
import tempfile
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
from ifc_scan.faults import fault_point
from ifc_scan.report.html import ENV, duration, fmt
from ifc_scan.report.signing import SIGNATURE_FILE
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


def build_period(reports: Path, start: date, end: date, sample_size: int = DEFAULT_SAMPLE, seed: int | None = None,
                 left_out: dict[str, str] | None = None) -> PeriodPack:
    """`left_out`: weeks that failed verification (week -> why); no figure of the pack rests on them."""
    left_out = left_out or {}
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
                   "weeks_published": len(published), "weeks_missing": missing,
                   "weeks_left_out_unverified": sorted(left_out)},
        "verdict": "NOT COMPLIANT" if failing_weeks else ("COMPLIANT" if not missing and not left_out else "INCOMPLETE"),
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


README = """{stamp}Audit-period evidence pack: {start} to {end} ({n} weeks, {published} published)
===================================================================================

What this is
  The container-image scanning evidence of every week of the period, from the weekly reports that
  ifc_scan published. Nothing here is a new measurement of a week: each period figure is a sum or a
  distribution over the weekly figures, defined in period.html ("How the period figures are made").
  Every link of its pages and every sampled item resolves inside the pack: it holds the weekly reports
  it rests on and the input files its sample cites.

Files
  period.html            the period on one page: verdict, a week-by-week strip per control and per
                         policy target, the weeks that failed and why (with links to their reports),
                         SLA and time to remediate over the period, scanning continuity, exceptions in
                         force and production deploys; prints on A4 landscape
  *.csv                  the populations behind the page: weeks x controls, remediations, exceptions,
                         deploys, nightly gaps, builds not scanned
  sample.json            a reproducible random sample for testing: seed {seed}; each item names its
                         week (weeks/<week>/report.html) and its input file (sample_evidence.json
                         maps each item to its copy under inputs/, with its sha256)
  weeks/<week>/          each weekly report the pack rests on, byte for byte as published and signed
  inputs/                the input files the sample cites, byte for byte from the landing zone
  verification.txt       `ifc-scan verify` of every week of the period: signatures, chains of input
                         files, the publication log, and every output recomputed from the inputs alone
  manifest.json          the pack's status, each weekly manifest it rests on (sha256), and the sha256
                         of every file here; manifest.sig.json: its Ed25519 signature (the weeks' key)

How to check it
  1. ifc-scan verify --pack <this folder or its zip> --key <public key file>: the signature, every
     file's sha256, each weekly manifest's signature, each cited input, and the period figures, CSVs,
     sample and period.html computed again from the weekly files in weeks/ alone.
  2. Re-run the weeks' verification from the reports folder and landing zone:
     ifc-scan verify --reports <reports folder> --from {first} --to {last} --key <public key file>
  3. Re-draw the sample: Python's random.Random({seed}).sample over the rows of the CSV, in file order,
     as period.py does (remediations, then exceptions, then deploys).
"""

PACK_FILES = ("manifest.json", SIGNATURE_FILE)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)      # fixed member times: the same pack zips to the same bytes
MAX_PACK_BYTES = 4 << 30              # a zip to verify may unpack to at most this (and 100,000 members)


def pack_stamp(verified: bool, failed: dict[str, str], allow_unverified: bool) -> str | None:
    """The line at the top of every page of a pack that is not evidence-grade (None when it is)."""
    if not verified:
        return "UNVERIFIED PACK (--no-verify): the weeks were not verified; not audit evidence"
    if failed and allow_unverified:
        return (f"UNVERIFIED PACK (--allow-unverified): built from {len(failed)} week(s) that failed verification "
                f"({', '.join(sorted(failed))}); not audit evidence")
    if failed:
        return (f"NOT VERIFIED: {len(failed)} week(s) failed verification and are left out of every figure "
                f"({', '.join(sorted(failed))}); see verification.txt")
    return None


def _evidence_path(kind: str, item: dict, sha_by_path: dict, path_by_sha: dict) -> tuple[str | None, str | None]:
    """The landing-zone file (path, sha256) a sampled item cites."""
    if kind == "remediations":
        return item.get("source_file"), item.get("source_sha256")
    if kind == "exceptions":
        return path_by_sha.get(item.get("sha256")), item.get("sha256")
    path, _, line = (item.get("evidence") or "").rpartition(":")
    path = path if line.isdigit() else item.get("evidence")
    return path, sha_by_path.get(path)


def cited_inputs(reports: Path, pack: PeriodPack, landing: Path | None) -> tuple[dict[str, bytes], list[dict], list[str]]:
    """The input files the sample cites, copied from the landing zone after checking their sha256 against
    the weeks' input lists: ({"inputs/<path>": bytes}, the citations, problems)."""
    from ifc_scan.report.verify import _inside
    from ifc_scan.report.writer import ChainBroken, chain_inputs
    sha_by_path, path_by_sha, memo = {}, {}, {}
    for w in pack.published:
        m = json.loads((w.folder / "manifest.json").read_bytes())
        m["_sha256"] = w.manifest_sha256
        try:
            for e in chain_inputs(reports, m, memo):
                sha_by_path[e["path"]], path_by_sha[e["sha256"]] = e["sha256"], e["path"]
        except ChainBroken:
            continue      # verification.txt says why; its items cite nothing that can be checked
        landing = landing or Path(m.get("landing_zone", ""))
    files, cites, problems = {}, [], []
    for kind in ("remediations", "exceptions", "deploys"):
        for i, item in enumerate(pack.sample[kind]):
            path, sha = _evidence_path(kind, item, sha_by_path, path_by_sha)
            src = _inside(landing, path) if path and landing else None
            data = src.read_bytes() if src is not None and src.is_file() else None
            if data is None or sha is None or sha256_bytes(data) != sha:
                problems.append(f"sample {kind} #{i + 1}: its input {path or '?'} is not in the landing zone "
                                "with the sha256 the weeks recorded: not included")
                continue
            files[f"inputs/{path}"] = data
            cites.append({"kind": kind, "index": i, "path": path, "sha256": sha, "file": f"inputs/{path}"})
    return files, cites, problems


def week_files(w: PublishedWeek) -> dict[str, bytes]:
    """A published week's files as its manifest lists them, with the manifest and its signature."""
    m = json.loads((w.folder / "manifest.json").read_bytes())
    names = sorted(m.get("outputs", {})) + [n for n in PACK_FILES if (w.folder / n).is_file()]
    return {f"weeks/{w.week}/{n}": (w.folder / n).read_bytes() for n in names}


def render_pack_pages(pack: PeriodPack, cites: list[dict], stamp: str | None, generated_at: str) -> dict[str, bytes]:
    """period.html and README.txt, from the pack and its citations (verify_pack renders them again)."""
    from urllib.parse import quote

    from markupsafe import Markup, escape
    where = {(c["kind"], c["index"]): c["file"] for c in cites}

    def cite(kind, i, text):
        href = where.get((kind, i))
        return Markup(f'<a href="{escape(quote(href))}">{escape(text)}</a>') if href else escape(text)
    html = ENV.get_template("period.html.j2").render(
        p=pack, f=pack.figures, severities=SEVERITIES, fmt=fmt, duration=duration, generated_at=generated_at,
        stamp=stamp, cite=cite).encode("utf-8")
    readme = README.format(stamp=f"*** {stamp} ***\n\n" if stamp else "", start=pack.start, end=pack.end,
                           n=len(pack.weeks), published=len(pack.published), seed=pack.sample["seed"],
                           first=pack.weeks[0], last=pack.weeks[-1]).encode()
    return {"period.html": html, "README.txt": readme}


def pack_tables(pack: PeriodPack) -> dict[str, bytes]:
    """The files computed from the weekly files alone: CSVs, sample.json, figures.json."""
    files = {f"{key}.csv": _csv(pack.populations[key], cols) for key, cols in POPULATION_COLUMNS.items()}
    files["weeks_x_controls.csv"] = _csv(pack.populations["weeks_x_controls"], ("control", *pack.weeks))
    files["sample.json"] = (json.dumps(pack.sample, indent=1, sort_keys=True, default=str) + "\n").encode()
    files["figures.json"] = (json.dumps(pack.figures, indent=1, sort_keys=True, default=str) + "\n").encode()
    return files


def write_period(reports: Path, pack: PeriodPack, verification: list[str], stamp: str | None, signer,
                 landing: Path | None = None) -> Path:
    """Write reports/periods/<from>_<to>/ and its zip, signed; built beside the target and renamed into place."""
    name = f"{pack.start.isoformat()}_{pack.end.isoformat()}"
    files = pack_tables(pack)
    for w in pack.published:
        files.update(week_files(w))
    inputs, cites, problems = cited_inputs(reports, pack, landing)
    files.update(inputs)
    files["sample_evidence.json"] = (json.dumps(cites, indent=1) + "\n").encode()
    files["verification.txt"] = "\n".join(([stamp, ""] if stamp else []) + verification + problems + [""]).encode()
    generated_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    files.update(render_pack_pages(pack, cites, stamp, generated_at))
    manifest = {"period": pack.figures["period"], "sample_seed": pack.sample["seed"], "sample_size": pack.sample["size"],
                "generated_at": generated_at, "evidence_grade": stamp is None, "stamp": stamp,
                "weeks": [{"week": w.week, "revision": w.revision, "manifest_sha256": w.manifest_sha256}
                          for w in pack.published],
                "weeks_left_out_unverified": pack.figures["period"]["weeks_left_out_unverified"],
                "files": {n: sha256_bytes(d) for n, d in sorted(files.items())}, "signing_key": signer.describe()}
    files["manifest.json"] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    files[SIGNATURE_FILE] = signer.sign(files["manifest.json"])
    return _publish_pack(reports / "periods", name, files)


def _publish_pack(periods: Path, name: str, files: dict[str, bytes]) -> Path:
    """The folder and the zip written in a temporary folder beside them, then each renamed into place: a run
    that fails or is killed leaves the old pack (or none), never a half-written one."""
    periods.mkdir(parents=True, exist_ok=True)
    for stale in periods.glob(f".tmp-{name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=periods))
    try:
        for n, data in files.items():
            (tmp / name / n).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name / n).write_bytes(data)
        with zipfile.ZipFile(tmp / f"{name}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for n in sorted(files):
                zf.writestr(zipfile.ZipInfo(f"{name}/{n}", ZIP_TIME), files[n], zipfile.ZIP_DEFLATED)
        fault_point()
        final = periods / name
        if final.exists():
            os.rename(final, tmp / "previous")
            fault_point()
        os.rename(tmp / name, final)
        fault_point()
        os.replace(tmp / f"{name}.zip", final.with_suffix(".zip"))
        fault_point()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def publish_period(reports: Path, start: date, end: date, *, signing_key: str, landing: Path | None = None,
                   trusted: list[bytes] | None = None, verify: bool = True, allow_unverified: bool = False,
                   sample_size: int = DEFAULT_SAMPLE, seed: int | None = None, progress=None) -> tuple:
    """Verify the period's weeks, build the pack from those that verify (or, asked for, from all of them,
    stamped) and write it signed. Returns (folder, pack, failed weeks {week: why}, stamp)."""
    from ifc_scan.report.publications import read_log
    from ifc_scan.report.signing import KeyRefused, chain_key_fingerprint, load_key, refuse_if_published
    from ifc_scan.report.verify import verify_week
    refuse_if_published(Path(signing_key), {"reports folder": reports, "landing zone": landing})
    signer = load_key(signing_key)
    chain_fp = chain_key_fingerprint(reports)
    if chain_fp and chain_fp != signer.fingerprint:
        raise KeyRefused(f"signing key {signing_key} ({signer.fingerprint}) is not the key that signed the weeks "
                         f"({chain_fp}): the pack is signed with the weeks' key")
    lines, failed = [], {}
    if verify:
        log = read_log(reports, trusted)
        weeks = [week_label(m) for m in period_mondays(start, end)
                 if (reports / week_label(m) / "manifest.json").is_file()]
        for week in weeks:
            r = verify_week(reports, week, landing, progress, trusted, log)
            lines += r.lines()
            if not r.verified:
                failed[week] = "; ".join(r.problems) or "not verified"
        lines.append(f"{len(weeks)} week(s) checked, {len(failed)} failed")
    else:
        lines.append("not run (--no-verify)")
    stamp = pack_stamp(verify, failed, allow_unverified)
    pack = build_period(reports, start, end, sample_size, seed, left_out={} if allow_unverified else failed)
    return write_period(reports, pack, lines, stamp, signer, landing), pack, failed, stamp


def _pack_files(path: Path, dest: Path) -> tuple[dict[str, bytes], Path]:
    """A pack's files ({relative path: bytes}) and the folder holding its weeks/. A zip is read member by
    member (no extraction by the library): names must stay inside one top folder, sizes are bounded."""
    if path.is_dir():
        files = {}
        for p in sorted(path.rglob("*")):
            if p.is_symlink():
                raise ValueError(f"{p} is a symbolic link: refused")
            if p.is_file():
                files[p.relative_to(path).as_posix()] = p.read_bytes()
        return files, path
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > 100_000 or sum(i.file_size for i in infos) > MAX_PACK_BYTES:
            raise ValueError(f"{path} unpacks to more than {MAX_PACK_BYTES >> 30} GB or 100,000 files: refused")
        tops = {i.filename.split("/", 1)[0] for i in infos}
        bad = [i.filename for i in infos if i.filename.startswith("/") or ".." in i.filename.split("/")
               or "\\" in i.filename or "/" not in i.filename]
        if bad or len(tops) != 1:
            raise ValueError(f"{path}: member {(bad or sorted(tops))[0]!r} is outside the pack's one folder: refused")
        files = {i.filename.split("/", 1)[1]: zf.read(i) for i in infos}
    for name, data in files.items():
        if name.startswith("weeks/"):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            (dest / name).write_bytes(data)
    return files, dest


def _pack_signature(files: dict, manifest: dict, trusted: list[bytes]) -> tuple[bool, str]:
    """The pack's signature, by a pinned key or else by the key of the newest week it rests on."""
    from ifc_scan.report.signing import check
    ok, detail = check(files["manifest.json"], files.get(SIGNATURE_FILE), trusted)
    last = manifest.get("weeks", [])[-1:] or [{}]
    week_manifest = files.get(f"weeks/{last[0].get('week')}/manifest.json")
    week_fp = (json.loads(week_manifest).get("signing_key") or {}).get("fingerprint") if week_manifest else None
    fp = (manifest.get("signing_key") or {}).get("fingerprint")
    if ok and not trusted and week_fp != fp:
        return False, f"the pack is signed by {fp}, but the weeks it rests on by {week_fp}"
    return ok, detail


def _pack_weeks(files: dict, manifest: dict, trusted: list[bytes]) -> list[str]:
    """Each weekly manifest the pack names: present with its sha256, signed, its outputs unchanged."""
    from ifc_scan.report.signing import check
    problems = []
    for entry in manifest.get("weeks", []):
        base = f"weeks/{entry['week']}/"
        raw = files.get(base + "manifest.json")
        if raw is None or sha256_bytes(raw) != entry["manifest_sha256"]:
            problems.append(f"{base}manifest.json is missing or is not the weekly manifest the pack names")
            continue
        ok, detail = check(raw, files.get(base + SIGNATURE_FILE), trusted)
        if not ok:
            problems.append(f"{entry['week']}: {detail}")
        for name, sha in json.loads(raw).get("outputs", {}).items():
            if base + name not in files or sha256_bytes(files[base + name]) != sha:
                problems.append(f"{base}{name} is missing or differs from its weekly manifest")
    return problems


def _pack_recomputed(files: dict, manifest: dict, weeks_root: Path) -> list[str]:
    """The figures, CSVs, sample and pages computed again from the weekly files in weeks/ alone."""
    start, end = (date.fromisoformat(manifest["period"][k]) for k in ("from", "to"))
    left_out = {w: "" for w in manifest.get("weeks_left_out_unverified", [])}
    try:
        pack = build_period(weeks_root, start, end, manifest["sample_size"], manifest["sample_seed"], left_out)
        cites = json.loads(files["sample_evidence.json"])
    except (ValueError, KeyError, OSError) as exc:
        return [f"the period cannot be computed again from weeks/: {exc}"]
    again = {**pack_tables(pack), **render_pack_pages(pack, cites, manifest.get("stamp"), manifest["generated_at"])}
    return [f"{name} computed again from weeks/ differs from the pack's" for name, data in again.items()
            if files.get(name) != data]


def verify_pack(path: Path, trusted: list[bytes] | None = None):
    """`ifc-scan verify --pack`: an audit-period pack (folder or zip) checked from its own files."""
    from ifc_scan.report.verify import WeekVerification
    trusted = trusted or []
    v = WeekVerification(f"pack {path.name}")
    with tempfile.TemporaryDirectory(prefix="ifc-pack-") as tmp:
        try:
            files, root = _pack_files(path, Path(tmp))
            manifest = json.loads(files["manifest.json"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            v.add("files", False, f"cannot read the pack: {exc}", [f"cannot read the pack {path}: {exc}"])
            return v
        ok, detail = _pack_signature(files, manifest, trusted)
        v.add("signature", ok, detail, [] if ok else [f"signature: {detail}"])
        listed = manifest.get("files", {})
        bad = [f"{n} is missing or was modified" for n, sha in sorted(listed.items())
               if n not in files or sha256_bytes(files[n]) != sha]
        bad += [f"{n} is not listed in the pack's manifest" for n in sorted(set(files) - set(listed) - set(PACK_FILES))]
        v.add("files", not bad, f"{len(listed) - len(bad)}/{len(listed)} files match the manifest", bad)
        bad = _pack_weeks(files, manifest, trusted)
        v.add("weeks", not bad, f"{len(manifest.get('weeks', []))} weekly manifests, signed and unchanged", bad)
        cites = json.loads(files.get("sample_evidence.json", b"[]"))
        bad = [f"cited input {c['file']} is missing or its sha256 is not {c['sha256'][:12]}…" for c in cites
               if c["file"] not in files or sha256_bytes(files[c["file"]]) != c["sha256"]]
        v.add("evidence", not bad, f"{len(cites) - len(bad)}/{len(cites)} sampled items' input files inside the pack", bad)
        bad = _pack_recomputed(files, manifest, root / "weeks")
        v.add("recomputed", not bad, "figures, CSVs, sample, period.html and README computed again from weeks/", bad)
        stamp = manifest.get("stamp")
        v.add("status", manifest.get("evidence_grade") is True, stamp or "built from weeks that all verified",
              [f"the pack is not audit evidence: {stamp}"] if stamp or manifest.get("evidence_grade") is not True else [])
    return v
