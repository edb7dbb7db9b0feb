"""The audit-period evidence pack: every published week of a period in one bundle an auditor reads.

The figures come from period_figures.py (read from the published weeks, never recomputed); this module
verifies the weeks, writes the pack's pages, CSVs, sample and copies of the weeks and cited inputs,
signs it, zips it, and checks a pack (`verify --pack`). Written to reports/periods/<from>_<to>/.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from datetime import date, datetime, timezone
from pathlib import Path

from ifc_scan.faults import fault_point
from ifc_scan.ingest.model import SEVERITIES
from ifc_scan.report.attestation import ATTESTATION_FILE, check_pack_envelope, pack_statement, sign_statement
from ifc_scan.report.html import ENV, duration, fmt
from ifc_scan.report.oscal import period_oscal_files
from ifc_scan.report.period_figures import (DEFAULT_SAMPLE, PeriodPack, PublishedWeek, as_number,
                                            build_period, period_mondays)
from ifc_scan.report.signing import SIGNATURE_FILE
from ifc_scan.report.writer import csv_safe, sha256_bytes
from ifc_scan.timeutil import week_label


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
  sample.csv             the sample to test, one row per item: its week, its weekly report
                         (weeks/<week>/report.html), its input file inside the pack (inputs/...), the
                         line of that file that shows it and the file's sha256
  sample.json            the same sample with every field: seed {seed} (sample_evidence.json maps
                         each item to its input file's copy under inputs/, with its sha256)
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

PACK_FILES = ("manifest.json", SIGNATURE_FILE, ATTESTATION_FILE)
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
    """A published week's files as its manifest lists them, with the manifest, its signature and its
    attestation (so cosign or in-toto can check the week inside the pack)."""
    m = json.loads((w.folder / "manifest.json").read_bytes())
    names = sorted(m.get("outputs", {})) + [n for n in PACK_FILES if (w.folder / n).is_file()]
    return {f"weeks/{w.week}/{n}": (w.folder / n).read_bytes() for n in names}


def weeks_index(files: dict[str, bytes], published: list[PublishedWeek]) -> bytes:
    """The index of the pack's weeks: each weekly page links to ../index.html and, for the previous and
    next week, to that week's row there, so inside the pack every such link resolves to a week it holds."""
    from ifc_scan.report.writer import index_page
    return index_page([(json.loads(files[f"weeks/{w.week}/kpis.json"]), json.loads(files[f"weeks/{w.week}/manifest.json"]))
                       for w in sorted(published, key=lambda w: w.week, reverse=True)])


_TIMESTAMP = re.compile(r"\b(\d{4}-\d\d-\d\d)T(\d\d:\d\d)(:\d\d(?:\.\d+)?)?(?:Z|\+00:00)")


def human_times(text):
    """Every UTC timestamp in `text` as a reader counts it: '2026-03-12T00:00:00Z' -> '2026-03-12' (a date
    given as midnight), '2026-11-20T05:09:04.234148Z' -> '2026-11-20 05:09 UTC'. CSV and JSON keep them whole."""
    if not text:
        return text
    def one(m):
        midnight = m.group(2) == "00:00" and m.group(3) in (None, ":00")
        return m.group(1) if midnight else f"{m.group(1)} {m.group(2)} UTC"
    return _TIMESTAMP.sub(one, str(text))


def yesno(value) -> str:
    """A CSV boolean ('True', 'False', '') as 'yes', 'no', '–' (not known)."""
    return {"true": "yes", "false": "no"}.get(str(value).lower(), "–")


SAMPLE_COLUMNS = ("kind", "n", "week", "weekly_report", "item", "lineage_or_scope", "time", "input_file", "line",
                  "line_text", "input_sha256", "note")


def _sample_row(kind: str, item: dict) -> dict:
    """What a sampled item is, where it was seen (week) and which line of its input file says so."""
    if kind == "remediations":
        return {"week": item["week"], "item": f"{item['vulnerability_id']} in {item['pkg_name']} ({item['severity']}), "
                f"fixed after {duration(as_number(item.get('ttr_hours')))}", "lineage_or_scope": item["lineage"],
                "time": item.get("closed_at"), "input_sha256": item.get("source_sha256"),
                "note": "the scan report in which it was no longer found"}
    if kind == "exceptions":
        return {"week": item["last_week"], "item": f"{item['id']} excepted ({item['first_week']} to {item['last_week']})",
                "lineage_or_scope": item["scope"], "time": item.get("expiry"), "line": item.get("line"),
                "input_sha256": item.get("sha256"), "note": "time: the entry's expiry"}
    path, _, line = (item.get("evidence") or "").rpartition(":")
    return {"week": item["week"], "item": f"production deploy, run {item.get('run_id')}",
            "lineage_or_scope": item["lineage"], "time": item.get("time"), "line": line if path and line.isdigit() else "",
            "note": "the CI log line of the deploy"}


def sample_csv(pack: PeriodPack, cites: list[dict], inputs: dict[str, bytes]) -> bytes:
    """sample.csv: one row per sampled item with its week, its weekly report, its input file inside the pack
    (a path relative to this file) and the line of that file that shows it."""
    where = {(c["kind"], c["index"]): c for c in cites}
    rows = []
    for kind in ("remediations", "exceptions", "deploys"):
        for i, item in enumerate(pack.sample[kind]):
            row = {"kind": kind[:-1], "n": i + 1, **_sample_row(kind, item)}
            row["weekly_report"] = f"weeks/{row['week']}/report.html"
            c = where.get((kind, i))
            if c is None:
                row["note"] = "its input file is not in the pack (verification.txt says why)"
            else:
                row.update(input_file=c["file"], input_sha256=c["sha256"])
                lines = inputs.get(c["file"], b"").splitlines()
                n = int(row["line"]) if str(row.get("line") or "").isdigit() else 0
                row["line_text"] = lines[n - 1].decode("utf-8", "replace").strip()[:500] if 0 < n <= len(lines) else ""
            rows.append(row)
    return _csv(rows, SAMPLE_COLUMNS)


def render_pack_pages(pack: PeriodPack, cites: list[dict], stamp: str | None, generated_at: str,
                      inputs: dict[str, bytes]) -> dict[str, bytes]:
    """period.html, README.txt and sample.csv, from the pack, its citations and the cited input files
    (verify_pack renders them again from the pack's own files)."""
    from urllib.parse import quote

    from markupsafe import Markup, escape
    where = {(c["kind"], c["index"]): c["file"] for c in cites}

    def cite(kind, i, text):
        href = where.get((kind, i))
        return Markup(f'<a href="{escape(quote(href))}">{escape(text)}</a>') if href else escape(text)
    html = ENV.get_template("period.html.j2").render(
        p=pack, f=pack.figures, severities=SEVERITIES, fmt=fmt, duration=duration, generated_at=generated_at,
        stamp=stamp, cite=cite, human=human_times, yesno=yesno).encode("utf-8")
    readme = README.format(stamp=f"*** {stamp} ***\n\n" if stamp else "", start=pack.start, end=pack.end,
                           n=len(pack.weeks), published=len(pack.published), seed=pack.sample["seed"],
                           first=pack.weeks[0], last=pack.weeks[-1]).encode()
    return {"period.html": html, "README.txt": readme, "sample.csv": sample_csv(pack, cites, inputs)}


def pack_tables(pack: PeriodPack) -> dict[str, bytes]:
    """The files computed from the weekly files alone: CSVs, sample.json, figures.json, oscal/."""
    files = {f"{key}.csv": _csv(pack.populations[key], cols) for key, cols in POPULATION_COLUMNS.items()}
    files["weeks_x_controls.csv"] = _csv(pack.populations["weeks_x_controls"], ("control", *pack.weeks))
    files["sample.json"] = (json.dumps(pack.sample, indent=1, sort_keys=True, default=str) + "\n").encode()
    files["figures.json"] = (json.dumps(pack.figures, indent=1, sort_keys=True, default=str) + "\n").encode()
    files.update(period_oscal_files(pack))      # the weeks' control results as OSCAL (report/oscal.py)
    return files


def write_period(reports: Path, pack: PeriodPack, verification: list[str], stamp: str | None, signer,
                 landing: Path | None = None) -> Path:
    """Write reports/periods/<from>_<to>/ and its zip, signed; built beside the target and renamed into place."""
    name = f"{pack.start.isoformat()}_{pack.end.isoformat()}"
    files = pack_tables(pack)
    for w in pack.published:
        files.update(week_files(w))
    files["weeks/index.html"] = weeks_index(files, pack.published)
    inputs, cites, problems = cited_inputs(reports, pack, landing)
    files.update(inputs)
    files["sample_evidence.json"] = (json.dumps(cites, indent=1) + "\n").encode()
    files["verification.txt"] = "\n".join(([stamp, ""] if stamp else []) + verification + problems + [""]).encode()
    generated_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    files.update(render_pack_pages(pack, cites, stamp, generated_at, inputs))
    manifest = {"period": pack.figures["period"], "sample_seed": pack.sample["seed"], "sample_size": pack.sample["size"],
                "generated_at": generated_at, "evidence_grade": stamp is None, "stamp": stamp,
                "weeks": [{"week": w.week, "revision": w.revision, "manifest_sha256": w.manifest_sha256}
                          for w in pack.published],
                "weeks_left_out_unverified": pack.figures["period"]["weeks_left_out_unverified"],
                "verification": pack.figures["verification"],    # week -> verified by this pack (None: not run)
                "files": {n: sha256_bytes(d) for n, d in sorted(files.items())}, "signing_key": signer.describe()}
    files["manifest.json"] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    files[SIGNATURE_FILE] = signer.sign(files["manifest.json"])
    files[ATTESTATION_FILE] = sign_statement(pack_statement(manifest, files), signer)    # for in-toto / cosign
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
    progress = progress or (lambda msg: None)
    refuse_if_published(Path(signing_key), {"reports folder": reports, "landing zone": landing})
    signer = load_key(signing_key)
    chain_fp = chain_key_fingerprint(reports)
    if chain_fp and chain_fp != signer.fingerprint:
        raise KeyRefused(f"signing key {signing_key} ({signer.fingerprint}) is not the key that signed the weeks "
                         f"({chain_fp}): the pack is signed with the weeks' key")
    lines, failed, verification = [], {}, None
    if verify:
        log = read_log(reports, trusted)
        weeks = [week_label(m) for m in period_mondays(start, end)
                 if (reports / week_label(m) / "manifest.json").is_file()]
        verification, began = {}, time.monotonic()
        for n, week in enumerate(weeks):
            progress(f"period: verifying week {n + 1} of {len(weeks)} ({week}); "
                     f"{time_left(n, len(weeks), time.monotonic() - began)}")
            r = verify_week(reports, week, landing, progress, trusted, log)
            lines += r.lines()
            verification[week] = r.verified
            if not r.verified:
                failed[week] = "; ".join(r.problems) or "not verified"
        progress(f"period: {len(weeks)} week(s) verified in {elapsed_text(time.monotonic() - began)}, "
                 f"{len(failed)} failed; writing the pack")
        lines.append(f"{len(weeks)} week(s) checked, {len(failed)} failed")
    else:
        lines.append("not run (--no-verify)")
    stamp = pack_stamp(verify, failed, allow_unverified)
    pack = build_period(reports, start, end, sample_size, seed, left_out={} if allow_unverified else failed,
                        verification=verification)
    return write_period(reports, pack, lines, stamp, signer, landing), pack, failed, stamp


def elapsed_text(seconds: float) -> str:
    """'45 s', '3 min 20 s', '1 h 05 min'."""
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def time_left(done: int, total: int, elapsed: float) -> str:
    """The time left after `done` of `total` equal steps took `elapsed` seconds, at their mean pace."""
    if done == 0:
        return "time left: estimating after the first week"
    return f"about {elapsed_text(elapsed / done * (total - done))} left"


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
        pack = build_period(weeks_root, start, end, manifest["sample_size"], manifest["sample_seed"], left_out,
                            manifest.get("verification"))
        cites = json.loads(files["sample_evidence.json"])
    except (ValueError, KeyError, OSError) as exc:
        return [f"the period cannot be computed again from weeks/: {exc}"]
    again = {**pack_tables(pack), **render_pack_pages(pack, cites, manifest.get("stamp"), manifest["generated_at"],
                                                        files)}
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
        bad = check_pack_envelope(files, manifest)
        v.add("attestation", not bad, "in-toto statement of the pack's files, signed by the pack's key", bad)
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
