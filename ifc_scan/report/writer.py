"""Writing a week's report folder: report.html, kpis.json, the population CSVs and manifest.json.

The folder is built in a temporary directory and renamed into place, so a half-written report is
never visible. Same inputs and figures -> the folder is left untouched. Changed -> a new revision;
the previous one is moved to `reports/revisions/<week>/r<N>/` and named in the new manifest.
Each step of publishing is one rename, so a process killed at any point loses nothing: at worst the
week's folder is briefly absent, and the next run continues the revision numbering.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ifc_scan import __version__
from ifc_scan.controls.evaluate import CATALOG
from ifc_scan.faults import fault_point
from ifc_scan.kpis.stage import POPULATION_COLUMNS
from ifc_scan.report.attestation import ATTESTATION_FILE, envelope
from ifc_scan.report.html import render_index, render_report, renderer_digest
from ifc_scan.report.oscal import oscal_files
from ifc_scan.report.publications import LOG_FILE
from ifc_scan.report.signing import SIGNATURE_FILE
from ifc_scan.timeutil import parse_week, week_label

CSV_FILES = {
    "findings.csv": "findings",
    "exceptions.csv": "exceptions",
    "coverage.csv": "coverage",
    "deploys.csv": "deploys",
    "config_and_secrets.csv": "config_and_secrets",
    "tickets.csv": "tickets",
}


def csv_safe(value) -> str:
    """Neutralise spreadsheet formulas (CSV injection): a cell whose first character other than white
    space is = + - @ (or that starts with tab/CR) gets a leading apostrophe, which spreadsheets show as text."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        value = json.dumps(value, sort_keys=True)
    s = str(value)
    if s and (s[0] in ("\t", "\r") or s.lstrip(" \t\r\n\f\v")[:1] in ("=", "+", "-", "@")):
        s = "'" + s
    return s


def to_csv(rows: list[dict], columns=None) -> bytes:
    """The rows under their header; an empty population is its header alone."""
    buf = io.StringIO()
    cols = list(columns) if columns else (list(rows[0].keys()) if rows else [])
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([csv_safe(r.get(c)) for c in cols])
    return buf.getvalue().encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def latest_revision(reports: Path, week: str) -> dict | None:
    """The revision the next one supersedes: the published folder, or (after a run killed between its
    two renames) the newest archived one."""
    candidates = [reports / week / "manifest.json"]
    archive = reports / "revisions" / week
    if archive.is_dir():
        candidates += sorted(archive.glob("r*/manifest.json"), key=lambda p: int(p.parent.name[1:]), reverse=True)
    for m in candidates:
        if m.is_file():
            data = m.read_bytes()
            rev = json.loads(data).get("revision", 1)
            return {"revision": rev, "manifest_sha256": sha256_bytes(data),
                    "path": f"revisions/{week}/r{rev}"}   # where it lives once superseded (reports/...)
    return None


def clean_stale_temp(reports: Path, week: str) -> None:
    """Temporary folders of a writer that died (they only ever hold new, unpublished files).
    Safe: publications are serialised by the warehouse lock held around them."""
    for stale in reports.glob(f".tmp-{week}-*"):
        shutil.rmtree(stale, ignore_errors=True)


class ChainBroken(ValueError):
    pass


def previous_published(reports: Path, week: str) -> dict | None:
    """The nearest earlier week with a published report: {"week", "manifest_sha256", "revision"}."""
    earlier = sorted((p.name for p in reports.iterdir() if p.is_dir() and p.name[:2] == "20" and p.name < week),
                     reverse=True)
    for w in earlier:
        m = reports / w / "manifest.json"
        if m.is_file():
            data = m.read_bytes()
            return {"week": w, "manifest_sha256": sha256_bytes(data), "revision": json.loads(data).get("revision", 1)}
    return None


def find_manifest(reports: Path, week: str, sha: str) -> bytes | None:
    """The manifest of `week` with this sha256: the published one or a superseded revision."""
    candidates = [reports / week / "manifest.json"] + sorted((reports / "revisions" / week).glob("r*/manifest.json"))
    for p in candidates:
        if p.is_file():
            data = p.read_bytes()
            if sha256_bytes(data) == sha:
                return data
    return None


def chain_inputs(reports: Path, manifest: dict, memo: dict | None = None) -> list[dict]:
    """A week's full input list: its manifest's additions and removals applied to the previous week's
    full list, recursively along the chain of manifests (each named by its sha256). Raises ChainBroken
    when a manifest of the chain is missing or altered."""
    memo = {} if memo is None else memo
    pending, m = [], manifest
    base: list[dict] = []
    while True:
        if "inputs" in m:                       # a manifest that lists every input (first week, or older release)
            base = m["inputs"]
            break
        prev = m.get("previous_week")
        if prev is None:
            pending.append(m)
            break
        if prev["manifest_sha256"] in memo:
            pending.append(m)
            base = memo[prev["manifest_sha256"]]
            break
        pending.append(m)
        data = find_manifest(reports, prev["week"], prev["manifest_sha256"])
        if data is None:
            raise ChainBroken(f"the manifest of {prev['week']} named by {m['week']} (sha256 "
                              f"{prev['manifest_sha256'][:12]}…) is missing or was modified")
        m = json.loads(data)
        m["_sha256"] = prev["manifest_sha256"]
    for m in reversed(pending):
        removed = {(e["path"], e["sha256"]) for e in m.get("inputs_removed", [])}
        base = sorted([e for e in base if (e["path"], e["sha256"]) not in removed] + m.get("inputs_added", []),
                      key=lambda e: (e["path"], e["sha256"]))
        if "_sha256" in m:
            memo[m["_sha256"]] = base
    return base


def verify_command(week: str, signer=None) -> str:
    """The command each report and manifest print. It names no path of the machine that published it: run
    in the reports folder (the one holding <week>/ and index.html), with the public key file named as the
    producer distributes it; the landing zone is the one the manifest records unless --landing is given."""
    key = f" --key {signer.path.with_suffix('.pub.pem').name}" if signer else ""
    return f"ifc-scan verify --reports . --week {week}{key}"


def _unchanged(final: Path, kpis_bytes: bytes) -> dict | None:
    """The week's published folder when its kpis.json already holds these figures: nothing to write."""
    if not ((final / "kpis.json").is_file() and (final / "kpis.json").read_bytes() == kpis_bytes):
        return None
    try:
        current = json.loads((final / "manifest.json").read_text()).get("revision", 1)
    except (OSError, ValueError):
        current = None
    return {"path": str(final), "status": "unchanged", "week": final.name, "revision": current}


def _inputs_since_previous(reports: Path, week: str, inputs: list[dict], memo: dict | None):
    """The nearest earlier published week, its manifest (None if none) and the inputs added and removed
    since its full input list: a manifest records only this difference (the chain)."""
    previous = previous_published(reports, week)
    prev_manifest = None
    prev_inputs: list[dict] = []
    if previous is not None:
        prev_manifest = json.loads(find_manifest(reports, previous["week"], previous["manifest_sha256"]))
        prev_manifest["_sha256"] = previous["manifest_sha256"]
        prev_inputs = chain_inputs(reports, prev_manifest, memo)
    before = {(e["path"], e["sha256"]) for e in prev_inputs}
    now = {(e["path"], e["sha256"]) for e in inputs}
    added = [e for e in inputs if (e["path"], e["sha256"]) not in before]
    removed = [e for e in prev_inputs if (e["path"], e["sha256"]) not in now]
    return previous, prev_manifest, added, removed


def _render_meta(week: str, revision: int, generated_at: str, previous: dict | None, *, landing: str,
                 run_id: str | None, signer) -> dict:
    """What report.html shows besides the figures (recorded in the manifest so verify can render it again)."""
    return {"generated_at": generated_at, "revision": revision, "earlier_revisions": revision - 1,
            "project_version": __version__, "catalog_version": CATALOG["version"], "run_id": run_id,
            "landing": landing, "signing_fingerprint": signer.fingerprint if signer else None,
            "signing_public_key": signer.public_key_b64 if signer else None,
            # the weeks before and after, as rows of the index: a week's page never changes once published, so
            # it links to where the next week will be listed, and a pack that holds some weeks and its own
            # index.html (writer.index_html of its weeks/ folder) keeps every link inside it
            "nav": {"index": "../index.html", "previous": previous["week"] if previous else None,
                    "next": week_label(parse_week(week) + timedelta(days=7))},
            "verify_command": verify_command(week, signer)}


def _manifest(result, files: dict, trend: list[dict], data_quality: dict, meta: dict, *, supersedes: dict | None,
              previous: dict | None, prev_manifest: dict | None, added: list, removed: list, landing: str,
              run_id: str | None, signer, log) -> dict:
    """manifest.json of the new revision: provenance, the input chain link and every output's sha256."""
    k = result.kpis
    manifest = {
        "week": k["week"], "as_of": k["as_of"], "revision": meta["revision"], "supersedes": supersedes,
        "generated_at": meta["generated_at"], "project_version": __version__, "git_commit": git_commit(),
        "policy_version": k["policy"]["version"], "policy_source": k["policy"]["source"],
        "catalog_version": CATALOG["version"], "dagster_run_id": run_id, "landing_zone": str(Path(landing).resolve()),
        "inputs_manifest_sha256": k["inputs_manifest_sha256"], "inputs_count": len(result.inputs),
        "previous_week": previous,
        "previous_week_manifest_sha256": previous["manifest_sha256"] if previous else None,
        # the full input list is the chain: the previous week's list, less these, plus these
        "inputs_removed": removed, "inputs_added": added,
        "outputs": {name: sha256_bytes(data) for name, data in sorted(files.items())},
        # what report.html was rendered from besides the recomputable figures: verify renders it again
        "render": {"trend": trend, "data_quality": data_quality, "meta": meta, "renderer": renderer_digest()},
        "reproduce": meta["verify_command"],
    }
    if log is not None:      # verify then requires the log: deleting it cannot hide a rollback
        manifest["publication_log"] = LOG_FILE
    if signer is not None:
        manifest["signing_key"] = signer.describe()
        manifest["attestation"] = ATTESTATION_FILE      # the manifest again as a signed in-toto statement
        before_fp = (prev_manifest.get("signing_key") or {}).get("fingerprint") if previous is not None else None
        if before_fp and before_fp != signer.fingerprint:
            manifest["key_rotated_from"] = before_fp     # key rotation, recorded in the signed chain
    return manifest


def _write_to_temp(reports: Path, week: str, files: dict[str, bytes]) -> Path:
    """Every file of the new revision, synced to disk in a temporary folder beside the published ones."""
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{week}-", dir=reports))
    os.chmod(tmp, 0o755)
    try:
        for name, data in files.items():
            (tmp / name).parent.mkdir(exist_ok=True)       # oscal/
            with open(tmp / name, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)   # nothing published or moved yet
        raise
    return tmp


def _publish(reports: Path, week: str, tmp: Path, supersedes: dict | None) -> Path:
    """Publish by renames only: old folder -> revisions/<week>/r<N>, then the new folder into place."""
    final = reports / week
    if final.is_dir():
        archive = reports / "revisions" / week
        archive.mkdir(parents=True, exist_ok=True)
        os.rename(final, archive / f"r{supersedes['revision']}")
        fault_point()
    os.rename(tmp, final)
    fault_point()
    return final


def write_week(reports: str | Path, result, trend: list[dict], data_quality: dict, *, landing: str, run_id: str | None,
               memo: dict | None = None, signer=None, log=None) -> dict:
    """Write (or leave untouched) reports/<week>/. Returns {"path", "status": unchanged|written|revised, ...}.
    `log` (report/publications.py PublicationLog): the week is recorded there before it is renamed into place."""
    reports = Path(reports)
    reports.mkdir(parents=True, exist_ok=True)
    k = result.kpis
    week = k["week"]
    kpis_bytes = result.kpis_json.encode("utf-8")
    unchanged = _unchanged(reports / week, kpis_bytes)
    if unchanged is not None:
        return unchanged

    clean_stale_temp(reports, week)
    files: dict[str, bytes] = {"kpis.json": kpis_bytes}
    for name, key in CSV_FILES.items():
        files[name] = to_csv(result.populations.get(key, []), POPULATION_COLUMNS[key])
    supersedes = latest_revision(reports, week)
    revision = supersedes["revision"] + 1 if supersedes else 1
    generated_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    previous, prev_manifest, added, removed = _inputs_since_previous(reports, week, result.inputs, memo)
    meta = _render_meta(week, revision, generated_at, previous, landing=landing, run_id=run_id, signer=signer)
    files["report.html"] = render_report(k, result.populations, trend, data_quality, meta).encode("utf-8")
    files.update(oscal_files(k, result.populations, result.inputs, revision=revision, generated_at=generated_at))
    manifest = _manifest(result, files, trend, data_quality, meta, supersedes=supersedes, previous=previous,
                         prev_manifest=prev_manifest, added=added, removed=removed, landing=landing, run_id=run_id,
                         signer=signer, log=log)
    files["manifest.json"] = (json.dumps(manifest, indent=1) + "\n").encode("utf-8")
    if signer is not None:
        files[SIGNATURE_FILE] = signer.sign(files["manifest.json"])
        files[ATTESTATION_FILE] = envelope(manifest, files, signer)

    tmp = _write_to_temp(reports, week, files)
    fault_point()
    if log is not None:     # recorded first: a crash before the renames leaves a record the next run supersedes
        log.record_week(week, revision, files["manifest.json"])
    final = _publish(reports, week, tmp, supersedes)
    if memo is not None:        # the next week of a range continues the chain from here
        memo[sha256_bytes(files["manifest.json"])] = list(result.inputs)
    return {"path": str(final), "status": "revised" if supersedes else "written", "week": week, "revision": revision}


def index_html(reports: str | Path) -> bytes:
    """index.html: every published week, newest first, with its verdict and each target's cell coloured by
    the same judgement as the report's cards (ifc_scan/kpis/targets.py)."""
    reports = Path(reports)
    weeks = []
    for d in sorted((p for p in reports.iterdir() if p.is_dir() and p.name[:2] == "20" and (p / "kpis.json").is_file()),
                    reverse=True):
        m = json.loads((d / "manifest.json").read_text()) if (d / "manifest.json").is_file() else {}
        weeks.append((json.loads((d / "kpis.json").read_text()), m))
    return index_page(weeks)


def index_page(weeks: list[tuple[dict, dict]]) -> bytes:
    """The index of these weeks ((kpis.json, manifest.json) pairs, newest first): also the page a folder
    holding only some weeks (an audit pack's weeks/) needs, since each week's page links to `../index.html`."""
    from ifc_scan.kpis.targets import Targets, judge_targets
    from ifc_scan.kpis.view import WeekKpis
    rows = []
    for k, m in weeks:
        v = WeekKpis(k)
        judged = {t.key: t for t in judge_targets(v, Targets.from_policy(k["policy"]))} if "targets" in k["policy"] else {}
        rows.append({"week": k["week"], "period_start": k["period_start"], "verdict": v.verdict,
                     "evidence": v.evidence_line() if v.no_new_evidence else None,
                     "failing": [f"{c['framework']} {c['id']}" for c in v.failing_controls], "revision": m.get("revision", 1),
                     # (value, status, key): a stale or no-data figure is never coloured as met
                     "cells": [(judged[key].value if key in judged else None,
                                judged[key].status if key in judged else "no data", key)
                               for key in ("zero_critical_in_production", "build_gate_coverage", "nightly_coverage",
                                           "mttr_critical", "mttr_high", "no_open_overdue")],
                     "requirements": v.requirements_met() if v.requirements else None,
                     "controls": v.controls_passing(), "unmet": [r["label"] for r in v.unmet_requirements],
                     "new": v.new_findings, "resolved": v.resolved, "backlog": v.open_backlog})
    return render_index(rows).encode("utf-8")


def write_index(reports: str | Path, log=None) -> Path:
    """Write index.html (index_html), recorded in the publication log first when one is given."""
    reports = Path(reports)
    path = reports / "index.html"
    html = index_html(reports)
    if log is not None:
        log.record_index(html)
    tmp = path.with_suffix(".html.tmp")
    tmp.write_bytes(html)
    os.replace(tmp, path)
    return path
