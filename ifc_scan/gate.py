"""The policy where it is enforced: the CI gate and exception-file hygiene.

`judge` decides whether one Trivy report blocks a build, with the code the weekly KPIs use: the
same exception matching (ifc_scan/lifecycle/exception_match.py, Trivy's semantics: an entry is in
force while its expiry is after the instant), the same entry rules (kpis/weekly.py
`exception_flags`), the same severities. `lint` and `prune` apply those entry rules to exception
files at a developer's desk or in CI.

Where the weekly stage knows history that a lone file cannot show, the file's reading is the
conservative one: the 90-day limit for CRITICAL runs from the instant judged (a file has no record
of when an entry was first listed; the weekly report uses the first snapshot that listed it).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from ifc_scan.ingest.exceptions import (GO_SPACE, Entry, FileRejected, as_bytes, decode, first_yaml_document,
                                        read_exception_file, yaml_lines)
from ifc_scan.ingest.model import SEVERITIES, Rejected
from ifc_scan.ingest.runner import TABLE_COLUMNS
from ifc_scan.ingest.scan_files import read_scan_file
from ifc_scan.intel.aliases import row_cves
from ifc_scan.intel.files import IntelRejected, KevEntry, newest_landing_kev, read_kev_file
from ifc_scan.kpis.weekly import exception_flags
from ifc_scan.lifecycle.exception_match import ExceptionIndex
from ifc_scan.lifecycle.observations import ExceptionEntry, Observations
from ifc_scan.timeutil import iso_z

GATE_SCOPE = "_global"                      # the files given apply to the report judged
IN_FORCE_SINCE = datetime(1970, 1, 1)       # the files given are the current ones
VULN_COLUMNS = TABLE_COLUMNS["scan_vulnerabilities"][1:]      # a ParsedScan row, without scan_id


class UnusableInput(Exception):
    """The report or an exception file cannot be judged at all (exit 2)."""


def blocking_severities(policy: dict) -> tuple[str, ...]:
    """The policy's blocking severity and every severity above it (CRITICAL > HIGH > MEDIUM > LOW)."""
    ranked = SEVERITIES[:-1]                 # UNKNOWN never blocks: it has no rank
    level = str(policy.get("blocking_severity") or "CRITICAL").upper()
    if level not in ranked:
        raise UnusableInput(f"policy blocking_severity {level!r} is not one of {', '.join(ranked)}")
    return ranked[:ranked.index(level) + 1]


@dataclass
class LoadedExceptions:
    entries: list[ExceptionEntry] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)    # (file, why Trivy refuses it whole)
    notes: list[dict] = field(default_factory=list)                  # file-level readings a person would miss
    deceptions: list[dict] = field(default_factory=list)             # entries Trivy reads unlike a person

    def index(self) -> ExceptionIndex:
        obs = Observations(scans=[], deploys=[], builds=[], pushes=[], aliases={}, exceptions=self.entries,
                           snapshots={GATE_SCOPE: [IN_FORCE_SINCE]} if self.entries else {}, deployable={},
                           scope_lineage={}, retired={})
        return ExceptionIndex(obs)


def load_exception_files(paths: list[str | Path]) -> LoadedExceptions:
    """Each file read as bytes by the one reader (ifc_scan/ingest/exceptions.py, Trivy's reading)."""
    out = LoadedExceptions()
    for p in paths:
        path = Path(p)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UnusableInput(f"{path}: cannot be read ({exc})") from None
        try:
            _fmt, entries, notes = read_exception_file(path.name, data)
        except FileRejected as exc:
            out.refused.append((str(path), str(exc)))
            continue
        out.entries += [as_exception_entry(e, str(path)) for e in entries]
        out.notes += [{"file": str(path), "line": line, "message": msg} for line, msg in notes.problems]
        out.deceptions += [{"file": str(path), "line": e.line_no, "id": e.vuln_id, "message": d}
                           for e in entries for d in e.deception]
    return out


def as_exception_entry(e: Entry, file: str) -> ExceptionEntry:
    return ExceptionEntry(GATE_SCOPE, IN_FORCE_SINCE, file, e.line_no, e.section, e.vuln_id, e.expiry,
                          e.declared_expiry, e.reason, e.paths, e.purls, e.valid, e.invalid_reason, None)


def where(e: ExceptionEntry) -> str:
    return f"{e.file}:{e.line_no}" if e.line_no else e.file


@dataclass
class KevListed:
    """The KEV entry a finding matched (through its CVE ids, intel/aliases.py), as the output names it."""
    cve_id: str
    date_added: str
    due_date: str | None
    known_ransomware_campaign_use: str | None
    vendor_project: str | None
    product: str | None


@dataclass
class KevInUse:
    """The catalog the gate judged with: --kev FILE, else the landing zone's newest readable one dated on or before
    --at (intel/files.py: newest_landing_kev)."""
    path: str
    catalog_version: str | None
    date_released: str
    entries: int
    by_cve: dict = field(default_factory=dict, repr=False)    # CVE id -> KevEntry (not in the output)


def load_kev(path: str | Path | None, landing: str | Path | None, at: datetime) -> KevInUse:
    """Raises UnusableInput (exit 2) when no catalog is found or the one named is bad."""
    if path is None:
        # the same rule as the weekly figures (intel/files.py): a catalog dated D is known from D 00:00
        newest = newest_landing_kev(landing, at.date(), at) if landing else None
        if newest is None:
            raise UnusableInput(f"--block-kev: no KEV catalog dated on or before {at.date()} (that reads) under "
                                f"{Path(landing or '.') / 'enrichment'}; give --kev FILE or run "
                                "`ifc-scan collect intel`")
        path, catalog = newest.path, newest.dated.catalog
    else:
        try:
            catalog = read_kev_file(path, None)      # a file judged alone: no path date to hold it to
        except (OSError, IntelRejected) as exc:
            raise UnusableInput(f"KEV catalog {path}: {exc}") from None
    # entries added after the instant judged are not counted (the as-of rule: a catalog cannot list them yet)
    by_cve = {e.cve_id: e for e in catalog.entries if e.date_added <= at.date()}
    return KevInUse(str(path), catalog.catalog_version, iso_z(catalog.date_released), len(catalog.entries), by_cve)


def kev_listing(cves: tuple[str, ...], kev: KevInUse | None) -> KevListed | None:
    """The first of a finding's CVE ids the catalog lists (the same aliases rule as the weekly figures)."""
    for cve in cves if kev is not None else ():
        e: KevEntry | None = kev.by_cve.get(cve)
        if e is not None:
            return KevListed(e.cve_id, e.date_added.isoformat(), e.due_date.isoformat() if e.due_date else None,
                             e.known_ransomware_campaign_use, e.vendor_project, e.product)
    return None


@dataclass
class GateFinding:
    vulnerability_id: str
    severity: str
    pkg_name: str | None
    installed_version: str | None
    fixed_version: str | None
    target: str | None
    pkg_path: str | None
    excepted_by: list[str] = field(default_factory=list)   # file:line of the entries in force that match
    kev: KevListed | None = None                            # the KEV entry it matched (with --block-kev)


@dataclass
class GateResult:
    report: str
    artifact: str | None
    at: str
    blocking_severities: list[str]
    blocking: list[GateFinding]            # blocking severity, not suppressed, no exception in force
    excepted: list[GateFinding]            # blocking severity, covered by an exception in force
    suppressed_in_report: int              # rows Trivy itself marked suppressed
    exception_problems: list[dict]         # entries the policy forbids (expired, over the CRITICAL limit, ...)
    refused_files: list[dict]
    kev_catalog: KevInUse | None = None    # with --block-kev: KEV-listed findings block whatever their severity

    @property
    def passed(self) -> bool:
        return not self.blocking

    def as_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        if d["kev_catalog"] is not None:
            del d["kev_catalog"]["by_cve"]
        return d


def vulnerability_rows(scans) -> list[tuple]:
    """(lineage, row as a dict) of every vulnerability row of a report's scans."""
    return [(s.lineage or s.artifact_name or "unknown", dict(zip(VULN_COLUMNS, r))) for s in scans
            for r in s.vulnerabilities]


def _legacy_shape_problem(path: Path) -> str | None:
    """Ingest takes `null` and a bare list as Trivy's pre-0.20 output; a gate must not pass a build on `[]`
    or on another tool's list: judged, a report has results with a Target."""
    with path.open("rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"null"):
        return "the file is JSON null, not a scan report"
    if head.startswith(b"["):
        try:
            doc = json.loads(path.read_bytes().decode("utf-8-sig"))
        except (ValueError, RecursionError):
            return None                     # the reader names what is wrong
        if not doc or not all(isinstance(r, dict) and "Target" in r for r in doc):
            return "a JSON list that is not Trivy's list of results (each with a Target): not a scan report"
    return None


def read_report(path: str | Path):
    path = Path(path)
    try:
        problem = _legacy_shape_problem(path)
        scans = read_scan_file(path, path.stat().st_size)
    except (OSError, Rejected) as exc:
        raise UnusableInput(f"{path}: {exc}") from None
    if problem:
        raise UnusableInput(f"{path}: {problem}")
    if not scans:
        raise UnusableInput(f"{path}: no scan in the file")
    return scans


_SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}


def _rank(f: GateFinding) -> tuple:
    """KEV-listed first, then by severity, id and package."""
    return f.kev is None, _SEVERITY_ORDER[f.severity], f.vulnerability_id, f.pkg_name or ""


def judge(report: str | Path, ignorefiles: list[str | Path], policy: dict, at: datetime,
          kev: KevInUse | None = None) -> GateResult:
    """Raises UnusableInput (exit 2) for a report that is not a scan report and for an exception file
    Trivy refuses: Trivy fails the scan step then, so no judgement of the findings stands. With `kev`
    (--block-kev), a finding the catalog lists blocks whatever its severity, unless an exception in force
    covers it, as for any blocking finding."""
    scans = read_report(report)
    loaded = load_exception_files(ignorefiles)
    if loaded.refused:
        raise UnusableInput("; ".join(f"{f}: Trivy refuses this exception file ({why})" for f, why in loaded.refused))
    exc = loaded.index()
    blocking_set = blocking_severities(policy)
    blocking, excepted, suppressed = [], [], 0
    rows = vulnerability_rows(scans)
    critical_ids = {v["vulnerability_id"] for _, v in rows if v["severity"] == "CRITICAL"}
    seen = set()
    for lineage, v in rows:
        if v["suppressed"]:
            suppressed += 1
            continue
        key = (lineage, v["vulnerability_id"], v["pkg_name"], v["pkg_path"], v["target"])
        listed = kev_listing(row_cves(v["vulnerability_id"], v["cve_aliases"]), kev)
        if (v["severity"] not in blocking_set and listed is None) or key in seen:
            continue
        seen.add(key)
        matches = exc.matching(lineage, at, v["vulnerability_id"], v["pkg_path"], v["target"], v["purl"])
        f = GateFinding(v["vulnerability_id"], v["severity"], v["pkg_name"], v["installed_version"],
                        v["fixed_version"], v["target"], v["pkg_path"] or None, [where(e) for e in matches], listed)
        (excepted if matches else blocking).append(f)
    problems = reading_problems(loaded) + [p for p in lint_entries(loaded.entries, policy, at, critical_ids)
                                           if p["rule"] != "unknown_severity"]
    blocking.sort(key=_rank)
    excepted.sort(key=_rank)
    return GateResult(str(report), scans[0].artifact_name, iso_z(at), list(blocking_set), blocking, excepted,
                      suppressed, problems, [{"file": f, "reason": r} for f, r in loaded.refused], kev)


# --- exception hygiene ------------------------------------------------------------------------------

RULE_TEXT = {
    "invalid": "Trivy would not apply this entry: {detail}",
    "no_expiry": "no expiry date (the policy requires one)",
    "no_reason": "no reason (the policy requires one)",
    "expired_listed": "expired on {expiry} and still listed (the policy removes expired exceptions)",
    "critical_over_90d": "CRITICAL exception for more than {days} days (until {expiry})",
    "unknown_severity": "expires more than {days} days ahead ({expiry}): over the limit if {id} is CRITICAL "
                        "(severity unknown: give --report)",
    "duplicate": "duplicate of the entry at line {detail}",
}


def _problem(e: ExceptionEntry, rule: str, **kw) -> dict:
    text = RULE_TEXT[rule].format(id=e.vuln_id, expiry=iso_z(e.expiry) or "never", **kw)
    return {"file": e.file, "line": e.line_no, "id": e.vuln_id, "rule": rule, "message": text}


def lint_entries(entries: list[ExceptionEntry], policy: dict, at: datetime, critical_ids: set | None) -> list[dict]:
    """The policy's rules for each entry (exception_flags), plus what only a file can show: entries
    Trivy would drop, duplicates. critical_ids=None: severities unknown (no report given)."""
    days = policy["max_exception_days_critical"]
    out, first_seen = [], {}
    for e in entries:
        if not e.valid:
            out.append(_problem(e, "invalid", detail=e.invalid_reason))
            continue
        key = (e.file, e.section, e.vuln_id, tuple(sorted(e.paths)), tuple(sorted(e.purls)))
        if key in first_seen:
            out.append(_problem(e, "duplicate", detail=first_seen[key]))
        first_seen.setdefault(key, e.line_no)
        critical = critical_ids is not None and e.vuln_id in critical_ids
        flags = exception_flags(e, at, policy, critical, at, matched=True)
        for rule in ("expired_listed", "no_expiry", "no_reason", "critical_over_90d"):
            if flags[rule]:
                out.append(_problem(e, rule, days=days))
        if critical_ids is None:
            long = exception_flags(e, at, policy, True, at, matched=True)["critical_over_90d"] and e.expiry is not None
            if long:
                out.append(_problem(e, "unknown_severity", days=days))
    return out


def reading_problems(loaded: LoadedExceptions) -> list[dict]:
    """Lines Trivy reads unlike a person (a hidden separator or character, a second exp:, a line past the
    scanner's limit, an expiry from a merge key): errors at file:line, so a reviewer sees the trick."""
    return ([{**n, "id": None, "rule": "misleading", "message": n["message"]} for n in loaded.notes]
            + [{**d, "rule": "misleading"} for d in loaded.deceptions])


def lint(paths: list[str | Path], policy: dict, at: datetime, report: str | Path | None = None) -> dict:
    loaded = load_exception_files(paths)
    critical_ids = None
    if report is not None:
        critical_ids = {v["vulnerability_id"] for _, v in vulnerability_rows(read_report(report))
                        if v["severity"] == "CRITICAL"}
    problems = reading_problems(loaded) + lint_entries(loaded.entries, policy, at, critical_ids)
    for f, why in loaded.refused:
        problems.insert(0, {"file": f, "line": None, "id": None, "rule": "refused", "message": f"Trivy refuses the file: {why}"})
    violations = [p for p in problems if p["rule"] != "unknown_severity"]
    return {"at": iso_z(at), "files": [str(p) for p in paths], "entries": len(loaded.entries),
            "problems": problems, "violations": len(violations)}


# --- prune -----------------------------------------------------------------------------------------

def _comment_block_start(lines: list[str], first: int) -> int:
    """0-based index of the first line of the comment block directly above line `first` (no blank line)."""
    i = first
    while i > 0 and lines[i - 1].strip(GO_SPACE).startswith("#"):
        i -= 1
    return i


def _plain_lines(data: bytes) -> list[str]:
    """The file as Go's scanner splits it (LF only), each line with its LF, decoded byte for byte."""
    return decode(data).split("\n") if data else []


def _plain_spans(lines: list[str], e: Entry) -> range:
    first = e.line_no - 1
    return range(_comment_block_start(lines, first), first + 1)


def _yaml_spans(text: str, lines: list[str]) -> dict[int, range]:
    """1-based line of each list item -> the 0-based lines it takes (with its '-' line and comments)."""
    spans = {}
    root = first_yaml_document(as_bytes(text))
    if not isinstance(root, yaml.MappingNode):
        return spans
    for _k, seq in root.value:
        if not isinstance(seq, yaml.SequenceNode):
            continue
        for item in seq.value:
            first = item.start_mark.line
            if first > 0 and lines[first - 1].strip() == "-":      # '-' alone on the line above its mapping
                first -= 1
            spans[item.start_mark.line + 1] = range(_comment_block_start(lines, first), _last_line(item) + 1)
    return spans


def _last_line(node) -> int:
    """0-based last line holding the node's own text (a collection's end mark already sits on the next item)."""
    if isinstance(node, yaml.ScalarNode):
        return node.end_mark.line if node.end_mark.column > 0 else node.end_mark.line - 1
    children = node.value if isinstance(node, yaml.SequenceNode) else [x for kv in node.value for x in kv]
    return max([node.start_mark.line] + [_last_line(c) for c in children])


def _reading(entries: list[Entry]) -> list[tuple]:
    """What Trivy applies from a file, order aside: the comparison that proves a prune kept the meaning."""
    return sorted((e.section, e.vuln_id or "", e.expiry or datetime.min, tuple(e.paths), tuple(e.purls), e.valid)
                  for e in entries)


def write_atomically(target: Path, data: bytes, mode_from: Path | None = None) -> None:
    """A temporary file in the same folder, flushed and synced, then renamed over the target: a failed
    write leaves the old file whole. The mode of `mode_from` (the file pruned) is kept."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if mode_from is not None and mode_from.exists():
            os.chmod(tmp, stat.S_IMODE(mode_from.stat().st_mode))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def prune(path: str | Path, at: datetime, output: str | Path | None = None) -> list[dict]:
    """Write the file without its expired entries, keeping every other line (comments, order, blank
    lines). An entry's own comment block (the lines directly above it) goes with it. The result is read
    again before it replaces anything: Trivy must read exactly the entries it read before, less the
    expired ones; where whole lines cannot do that (an expired entry shares a line or a flow collection
    with a kept one, an anchor another entry uses) nothing is written (UnusableInput, exit 2). Returns
    the entries removed."""
    path = Path(path)
    data = path.read_bytes()
    try:
        fmt, entries, _notes = read_exception_file(path.name, data)
    except FileRejected as exc:
        raise UnusableInput(f"{path}: Trivy refuses the file ({exc}); fix it before pruning") from None
    if fmt == "openvex":
        raise UnusableInput(f"{path}: OpenVEX statements carry no expiry: nothing to prune")
    expired = [e for e in entries if e.valid and e.expiry is not None and e.expiry <= at and e.line_no]
    if fmt == "trivyignore-yaml":
        text = decode(data)
        lines = yaml_lines(text)
        spans = _yaml_spans(text, lines)
        joiner = ""
    else:
        lines = _plain_lines(data)
        spans = {e.line_no: _plain_spans(lines, e) for e in expired}
        joiner = "\n"
    drop = {i for e in expired for i in spans.get(e.line_no, range(e.line_no - 1, e.line_no))}
    kept = as_bytes(joiner.join(line for i, line in enumerate(lines) if i not in drop))
    expected = _reading([e for e in entries if e not in expired])
    try:
        after = _reading(read_exception_file(path.name, kept)[1])
    except FileRejected as exc:
        raise UnusableInput(f"{path}: removing the expired entries' lines would make Trivy refuse the file "
                            f"({exc}); remove them by hand. The file is unchanged") from None
    if after != expected:
        raise UnusableInput(f"{path}: an expired entry shares a line, a flow list or an anchor with an entry in "
                            f"force, so removing whole lines would change what Trivy applies; remove it by hand. "
                            f"The file is unchanged")
    if expired:
        write_atomically(Path(output or path), kept, mode_from=path)
    elif output is not None:
        write_atomically(Path(output), data, mode_from=path)
    return [{"line": e.line_no, "id": e.vuln_id, "expiry": iso_z(e.expiry)} for e in expired]


def summary_lines(r: GateResult) -> list[str]:
    head = "PASSED" if r.passed else "BLOCKED"
    out = [f"{head}: {r.report} ({r.artifact or 'unknown artifact'}) at {r.at}, blocking severities "
           f"{', '.join(r.blocking_severities)}{' and KEV-listed' if r.kev_catalog else ''}: {len(r.blocking)} "
           f"blocking, {len(r.excepted)} covered by an exception, {r.suppressed_in_report} suppressed in the report"]
    if r.kev_catalog:
        k = r.kev_catalog
        out.append(clean_cell(f"  KEV catalog {k.path} (version {k.catalog_version or '?'}, released "
                              f"{k.date_released}, {k.entries} entries)"))
    for f in r.blocking:
        fix = f"fixed in {f.fixed_version}" if f.fixed_version else "no fix released"
        out.append(clean_cell(f"  {f.severity:8} {f.vulnerability_id:20} {f.pkg_name or '?'} "
                              f"{f.installed_version or '?'} ({fix}){' in ' + f.target if f.target else ''}"))
        if f.kev:
            out.append(clean_cell(f"    in CISA KEV: {f.kev.cve_id} added {f.kev.date_added}, due "
                                  f"{f.kev.due_date or '?'}, known ransomware use: "
                                  f"{f.kev.known_ransomware_campaign_use or '?'}"))
    for f in r.excepted:
        kev = f" (in CISA KEV: {f.kev.cve_id}, due {f.kev.due_date or '?'})" if f.kev else ""
        out.append(clean_cell(f"  excepted {f.vulnerability_id} {f.pkg_name or '?'}{kev} by {', '.join(f.excepted_by)}"))
    for p in r.exception_problems:
        out.append(clean_cell(f"  policy: {p['file']}:{p['line']}: {p['id']}: {p['message']}"))
    for f in r.refused_files:
        out.append(clean_cell(f"  refused: {f['file']}: {f['reason']}"))
    return out


def clean_cell(text: str | None) -> str:
    """Untrusted report text on one terminal line."""
    return re.sub(r"[\x00-\x1f\x7f]", " ", text or "")
