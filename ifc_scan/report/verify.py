"""`ifc-scan verify`: check a published week without trusting its manifest.

For a week folder: every output file against the manifest; the manifest chain (the previous week's
manifest by sha256, in reports/ or reports/revisions/), from which the full input list is rebuilt and
compared with the hash kpis.json carries; the revision history (the superseded revision is where the
manifest says, no newer revision was rolled back); every input file in the landing zone (never outside
it); and finally kpis.json and every CSV recomputed from those input files alone by the as-of-T oracle
(ifc_scan/kpis/stage.py `oracle_week`) in a fresh warehouse, and report.html rendered again from them
plus what the manifest records of its other inputs (earlier weeks' trend points, data-quality notes,
the header), byte for byte.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from ifc_scan.kpis.stage import manifest_hash
from ifc_scan.report.attestation import check_envelope
from ifc_scan.report.oscal import oscal_files
from ifc_scan.report.publications import LOG_FILE, LogState, published_manifests
from ifc_scan.report.signing import SIGNATURE_FILE, check
from ifc_scan.report.writer import CSV_FILES, ChainBroken, chain_inputs, find_manifest, index_html, sha256_bytes, to_csv


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class WeekVerification:
    week: str
    revision: int | None = None
    checks: list[Check] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return not self.problems and all(c.ok for c in self.checks)

    def add(self, name: str, ok: bool, detail: str, problems: list[str] = ()) -> None:
        self.checks.append(Check(name, ok, detail))
        self.problems.extend(problems)

    def as_dict(self) -> dict:
        return {"week": self.week, "revision": self.revision, "verified": self.verified,
                "checks": [c.__dict__ for c in self.checks], "problems": self.problems}

    def lines(self) -> list[str]:
        out = [f"{self.week}{f' r{self.revision}' if self.revision is not None else ''}: "
               f"{'VERIFIED' if self.verified else 'NOT VERIFIED'}"]
        out += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name:<11} {c.detail}" for c in self.checks]
        return out


def _inside(landing: Path, rel: str) -> Path | None:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not rel:
        return None
    return landing / Path(*p.parts)


def _key_continuity(reports: Path, manifest: dict, trusted: list[bytes]) -> str | None:
    """The chain says which key may sign: the previous week's. Another key fails unless this manifest
    records the rotation from it, and a recorded rotation counts only with --key naming the new key (a
    rotation record is written by whoever holds the new key, so it proves nothing by itself)."""
    prev = manifest.get("previous_week")
    data = find_manifest(reports, prev["week"], prev["manifest_sha256"]) if prev else None
    prev_fp = (json.loads(data).get("signing_key") or {}).get("fingerprint") if data else None
    if prev_fp is None:
        return None
    fp = (manifest.get("signing_key") or {}).get("fingerprint")
    if fp is None:
        return f"not signed, but the chain's previous week {prev['week']} is signed by {prev_fp}"
    if fp != prev_fp and manifest.get("key_rotated_from") != prev_fp:
        return (f"signed by {fp}, but the chain's key (previous week {prev['week']}) is {prev_fp} and no rotation "
                "from it is recorded")
    if fp != prev_fp and not trusted:
        return (f"signed by {fp} after a key rotation from {prev_fp} (previous week {prev['week']}): a rotation is "
                "accepted only with --key naming the new public key")
    return None


def _publication_check(week: str, raw: bytes, manifest: dict, log: LogState | None) -> tuple[bool, str, list[str]]:
    """The published manifest against the publication log's latest record of the week."""
    if log is None:
        if manifest.get("publication_log"):
            return False, f"{LOG_FILE} is missing", [f"the week was recorded in {LOG_FILE}, which is missing "
                                                     "(deleted to hide a rollback or a deleted week?)"]
        return True, "no publication log (published by an earlier release): rollback cannot be checked", []
    problems = [f"publication log: {p}" for p in log.problems]
    sha, latest = sha256_bytes(raw), log.weeks.get(week)
    if latest is None:
        problems.append(f"{week} is not in {LOG_FILE}: never published by ifc-scan, or the log was cut")
    elif latest["manifest_sha256"] != sha:
        old = log.history.get(week, {}).get(sha, "missing")
        problems.append(f"rolled back: {LOG_FILE} records r{latest.get('revision')} (manifest sha256 "
                        f"{latest['manifest_sha256'][:12]}…) as the latest of {week}, but the published folder holds "
                        + (f"r{old}, an earlier revision" if old != "missing" else "a manifest the log never recorded")
                        + " (or a publication was interrupted: run report for the week again)")
    detail = (f"the latest of {week} in {LOG_FILE} ({len(log.lines)} records)" if not problems
              else f"{len(problems)} problem(s) against {LOG_FILE}")
    return not problems, detail, problems


def verify_publication(reports: Path, log: LogState | None, weeks: list[str], whole: bool) -> WeekVerification:
    """The set of published weeks (those of `weeks`' range) and, with `whole`, index.html against the log."""
    v = WeekVerification("publication log")
    if log is None:
        named = [w for w, d in published_manifests(reports).items() if b'"publication_log"' in d]
        v.add("log", not named, f"{LOG_FILE} is missing" + (f" although {', '.join(named[:3])} name it" if named else
                                                             " (weeks published by an earlier release)"),
              [f"{LOG_FILE} is missing although the published weeks were recorded in it"] if named else [])
        return v
    v.add("log", not log.problems, f"{len(log.lines)} records, hash chain and signatures "
          + ("intact" if not log.problems else "broken"), [f"publication log: {p}" for p in log.problems])
    lo, hi = (weeks[0], weeks[-1]) if weeks and not whole else ("", "9999")
    published = set(published_manifests(reports))
    gone = sorted(w for w in log.weeks if lo <= w <= hi and w not in published)
    v.add("weeks", not gone, f"{len(published)} published week(s); {len(gone)} recorded in the log but missing",
          [f"{w} r{log.weeks[w].get('revision')} is recorded in {LOG_FILE} but its folder is gone (deleted)"
           for w in gone])
    if whole:
        index = reports / "index.html"
        current = index.read_bytes() if index.is_file() else None
        problems = []
        if current is None:
            problems.append("index.html is missing")
        else:
            if log.index_sha256 and sha256_bytes(current) != log.index_sha256:
                problems.append(f"index.html is not the one recorded in {LOG_FILE} (edited or replaced)")
            if current != index_html(reports):
                problems.append("index.html differs from the index rendered again from the published weeks")
        v.add("index", not problems, "index.html " + ("matches the log and the published weeks" if not problems
                                                      else "does not match"), problems)
    return v


def _revision_check(reports: Path, week: str, manifest: dict) -> tuple[str, bool, str, list[str]]:
    """The superseded revision is where the manifest says, and no newer revision sits in the archive."""
    revision = manifest.get("revision")
    archive = reports / "revisions" / week
    archived = sorted(int(p.name[1:]) for p in archive.glob("r*") if p.name[1:].isdigit()) if archive.is_dir() else []
    rev_problems = []
    sup = manifest.get("supersedes")
    if sup:
        found = find_manifest(reports, week, sup["manifest_sha256"])
        if found is None or not (reports / sup["path"] / "manifest.json").is_file():
            rev_problems.append(f"the superseded revision r{sup['revision']} ({sup['path']}) is missing or was modified")
    if archived and revision is not None and max(archived) >= revision:
        rev_problems.append(f"revision r{revision} is published but revisions/{week}/r{max(archived)} exists: "
                            "a newer revision was rolled back or the folders were swapped")
    return ("revision", not rev_problems,
            f"r{revision}" + (f", supersedes r{sup['revision']} (kept in {sup['path']})" if sup else ", no earlier revision"),
            rev_problems)


def _inputs_check(inputs: list[dict], landing: Path) -> tuple[str, bool, str, list[str]]:
    """Every input of the week inside the landing zone, present, with its recorded sha256."""
    missing, changed, outside = [], [], []
    for item in inputs:
        src = _inside(landing, item["path"])
        if src is None:
            outside.append(item["path"])
        elif not src.is_file():
            missing.append(item["path"])
        elif sha256_bytes(src.read_bytes()) != item["sha256"]:
            changed.append(item["path"])
    ok_inputs = len(inputs) - len(missing) - len(changed) - len(outside)
    problems = ([f"input {p} is outside the landing zone: refused" for p in outside] +
                [f"input {p} is missing from {landing}" for p in missing[:20]] +
                [f"input {p} changed since the report (sha256 differs)" for p in changed[:20]])
    if len(missing) > 20:
        problems.append(f"... and {len(missing) - 20} more missing inputs: is {landing} the landing zone the report "
                        "used? (pass --landing DIR)")
    return "inputs", not problems, f"{ok_inputs:,}/{len(inputs):,} present and unchanged in {landing}", problems


def verify_week(reports: Path, week: str, landing: Path | None = None, progress=None,
                trusted: list[bytes] | None = None, log: LogState | None = None) -> WeekVerification:
    progress = progress or (lambda msg: None)
    v = WeekVerification(week)
    folder = reports / week
    try:
        raw = (folder / "manifest.json").read_bytes()
        manifest = json.loads(raw)
        kpis = json.loads((folder / "kpis.json").read_bytes())
    except (OSError, ValueError) as exc:
        v.add("manifest", False, f"cannot read {folder}/manifest.json or kpis.json: {exc}",
              [f"cannot read the week's manifest or kpis.json: {exc}"])
        return v
    v.revision = manifest.get("revision")
    if manifest.get("week") != week or kpis.get("week") != week:
        v.add("manifest", False, f"the folder {week} holds the manifest of {manifest.get('week')} and the kpis.json of "
              f"{kpis.get('week')}", [f"the folder {week} holds another week's files (swapped or copied)"])

    # 0. the manifest's signature (Ed25519), against the pinned keys when given
    sig_path = folder / SIGNATURE_FILE
    ok, detail = check(raw, sig_path.read_bytes() if sig_path.is_file() else None, trusted or [])
    broken = _key_continuity(reports, manifest, trusted or []) if ok else None
    if broken:
        ok, detail = False, broken
    v.add("signature", ok, detail + (f"; key rotated from {manifest['key_rotated_from']}"
                                     if manifest.get("key_rotated_from") else ""),
          [] if ok else [f"signature: {detail}"])

    # 1. outputs against the manifest
    bad = []
    for name, digest in sorted(manifest.get("outputs", {}).items()):
        p = folder / name
        if not p.is_file():
            bad.append(f"output {name} is missing")
        elif sha256_bytes(p.read_bytes()) != digest:
            bad.append(f"output {name} was modified (sha256 differs from the manifest)")
    n = len(manifest.get("outputs", {}))
    v.add("outputs", not bad, f"{n - len(bad)}/{n} files match the manifest", bad)
    if "attestation" in manifest:       # the manifest again as a DSSE-signed in-toto statement
        bad = check_envelope(folder, manifest)
        v.add("attestation", not bad, bad[0] if bad else "DSSE envelope signed by the manifest's key; every subject's "
              "sha256 matches its file", bad)

    # 2. the chain: previous week's manifest by hash, full input list rebuilt and hashed
    inputs: list[dict] = []
    try:
        inputs = chain_inputs(reports, manifest)
        digest = manifest_hash(inputs)
        prev = manifest.get("previous_week")
        where = f"previous week {prev['week']} r{prev.get('revision', '?')} found" if prev else "first week of the chain"
        if digest != kpis.get("inputs_manifest_sha256") or digest != manifest.get("inputs_manifest_sha256"):
            v.add("chain", False, f"{where}; the rebuilt input list does not hash to kpis.json's inputs_manifest_sha256",
                  ["manifest chain broken: the input list rebuilt from the chain differs from the one the figures used"])
        else:
            v.add("chain", True, f"{where}; {len(inputs):,} inputs rebuilt; hash equals kpis.json's")
    except ChainBroken as exc:
        v.add("chain", False, str(exc), [f"manifest chain broken: {exc}"])

    # 3. revisions: the superseded one is where the manifest says; nothing newer was rolled back
    v.add(*_revision_check(reports, week, manifest))
    v.add("published", *_publication_check(week, raw, manifest, log))

    # 4. inputs in the landing zone
    if landing is None:
        recorded = Path(manifest.get("landing_zone", ""))
        landing = recorded if recorded.is_absolute() else (reports.parent / recorded)
    v.add(*_inputs_check(inputs, landing))
    if v.problems:
        return v

    # 5. recompute from the inputs alone
    progress(f"verify {week}: recomputing from {len(inputs):,} input files")
    v.add(*_recompute(folder, manifest, kpis, inputs, landing))
    return v


def _recompute(folder: Path, manifest: dict, kpis: dict, inputs: list[dict], landing: Path) -> tuple:
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.kpis.stage import POPULATION_COLUMNS, canonical_json, oracle_week
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.policy import load_policy
    from ifc_scan.timeutil import parse_week
    from ifc_scan.warehouse.db import connect
    src = manifest.get("policy_source", "")
    policy = load_policy(None if src.startswith("package default") else src)
    with tempfile.TemporaryDirectory(prefix="ifc-verify-") as tmp:
        sub = Path(tmp) / "landing"
        for item in inputs:
            dst = sub / item["path"]
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(landing / item["path"], dst)
        wh = Path(tmp) / "verify.duckdb"
        ingest(sub, wh, progress=lambda m: None)
        with connect(wh) as con:
            derive_lifecycle(con, policy)
            r = oracle_week(con, policy, parse_week(manifest["week"]))
    from ifc_scan.kpis.view import WeekKpis
    from ifc_scan.report.html import render_report, renderer_digest
    from ifc_scan.report.run import trend_point
    problems = []
    if canonical_json(r.kpis).encode() != (folder / "kpis.json").read_bytes():
        diff = [k for k in sorted(set(kpis) | set(r.kpis)) if kpis.get(k) != r.kpis.get(k)]
        problems.append(f"recomputed kpis.json differs in: {', '.join(diff) or 'formatting'}")
    for name, key in CSV_FILES.items():
        if (folder / name).is_file() and to_csv(r.populations.get(key, []), POPULATION_COLUMNS[key]) != (folder / name).read_bytes():
            problems.append(f"recomputed {name} differs from the published one")
    render = manifest.get("render")
    if render is None:
        problems.append("the manifest records no render inputs (an older release): report.html cannot be re-rendered")
    elif render.get("renderer") not in (None, renderer_digest()):
        # never skipped: a re-signed manifest naming another renderer would otherwise hide an edited page
        problems.append(f"report.html was rendered by another release of ifc_scan (renderer {render['renderer'][:12]}..., "
                        f"this one {renderer_digest()[:12]}...): verify it with that release (ifc_scan "
                        f"{render.get('meta', {}).get('project_version', '?')}, commit {manifest.get('git_commit') or '?'})")
    else:
        trend = render["trend"]
        if not trend or trend[-1] != json.loads(json.dumps(trend_point(WeekKpis(r.kpis)))):
            problems.append("the trend recorded for report.html does not end with this week's recomputed figures")
        html = render_report(r.kpis, r.populations, trend, render["data_quality"], render["meta"]).encode("utf-8")
        if html != (folder / "report.html").read_bytes():
            problems.append("report.html re-rendered from the recomputed figures differs from the published one")
    oscal = oscal_files(r.kpis, r.populations, inputs, revision=manifest["revision"], generated_at=manifest["generated_at"])
    problems += [f"{name} re-rendered from the recomputed figures differs from the published one"
                 for name, data in oscal.items() if name in manifest.get("outputs", {}) and (folder / name).read_bytes() != data]
    n = 2 + len(CSV_FILES) + sum(name in manifest.get("outputs", {}) for name in oscal)
    return ("recomputed", not problems, f"{n - len(problems)}/{n} outputs (kpis.json, the CSVs, report.html, the OSCAL files) "
            "byte-identical when recomputed from the inputs alone", problems)


def verify_week_tables(reports: Path, week: str, cfg) -> WeekVerification:
    """The week's figures recomputed from the Iceberg snapshots recorded beside it (reports/tables/<week>.json,
    written by `ifc-scan report --from-tables`): every table loaded at its recorded snapshot into a fresh
    warehouse, the week computed by the as-of-T oracle, kpis.json compared byte for byte. Later commits to
    the tables change nothing here: a snapshot is immutable."""
    from ifc_scan.kpis.stage import canonical_json, oracle_week
    from ifc_scan.policy import load_policy
    from ifc_scan.timeutil import parse_week
    from ifc_scan.warehouse.db import connect
    from ifc_scan.warehouse.iceberg import load_tables, read_week_record
    v = WeekVerification(week)
    folder = reports / week
    try:
        record = read_week_record(reports, week)
        published = (folder / "kpis.json").read_bytes()
        src = json.loads((folder / "manifest.json").read_text()).get("policy_source", "")
    except (OSError, ValueError) as exc:
        v.add("tables", False, str(exc), [str(exc)])
        return v
    if sha256_bytes(published) != record["kpis_sha256"]:
        v.add("tables", False, "kpis.json is not the one the snapshot record names",
              [f"kpis.json sha256 differs from reports/tables/{week}.json's kpis_sha256 (republished or edited)"])
        return v
    policy = load_policy(None if src.startswith("package default") else src)
    cfg = replace(cfg, namespace=record["namespace"])      # the tables the week read, whatever is configured now
    with tempfile.TemporaryDirectory(prefix="ifc-verify-tables-") as tmp:
        with connect(Path(tmp) / "tables.duckdb") as con:
            loaded = load_tables(con, cfg, record["snapshots"])
            recomputed = canonical_json(oracle_week(con, policy, parse_week(week)).kpis).encode()
    changed = [t.table for t in loaded if t.rows != record.get("rows", {}).get(t.table, t.rows)]
    ok = recomputed == published and not changed
    problems = ([] if recomputed == published else ["kpis.json recomputed from the recorded snapshots differs"]) + \
        [f"table {t} reloaded at its recorded snapshot has another row count than recorded" for t in changed]
    v.add("tables", ok, f"{len(loaded)} tables reloaded at their recorded Iceberg snapshots; kpis.json "
          + ("byte-identical when recomputed" if ok else "differs"), problems)
    return v
