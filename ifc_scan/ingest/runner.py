"""Ingest a landing zone into the warehouse: new files only, in atomic batches.

A file is identified by (path, sha256). Re-running changes nothing; a scan file whose content was
already loaded under another name is recorded as a duplicate and not counted twice. Every batch is
one transaction, so a crash leaves the warehouse as it was before that batch, and the files of the
failed batch are simply new again on the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import sys
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from ifc_scan.faults import fault_point
from ifc_scan.ingest import approvals as approvals_reader
from ifc_scan.ingest import exceptions as exc_reader
from ifc_scan.ingest import tickets as ticket_reader
from ifc_scan.ingest.approvals import LineVersion
from ifc_scan.ingest.gha_events import CiEvent
from ifc_scan.ingest.github_actions import CI_READER_VERSION, load_patterns, read_run_folders
from ifc_scan.ingest.inventory import parse_inventory
from ifc_scan.ingest.model import ParsedScan, Rejected
from ifc_scan.ingest.readers import ReaderPool, reader_processes, worth_processes
from ifc_scan.ingest.scan_files import read_landing_scans, sha256_file, undecodable_name
from ifc_scan.timeutil import EARLIEST_PLAUSIBLE, BadTimestamp, parse_date, utc_from_epoch
from ifc_scan.warehouse.db import connect

DEFAULT_MAX_FILE_BYTES = int(float(os.environ.get("IFC_SCAN_MAX_FILE_MB", "512")) * 1024 * 1024)
# flush (commit) after this many input bytes: bounds memory. Tests set it small to get many commit points.
BATCH_BYTES = int(float(os.environ.get("IFC_SCAN_BATCH_MB", "96")) * 1024 * 1024)
FUTURE_SLACK_DAYS = 2                  # a CreatedAt more than this after ingest time is impossible

UNREADABLE = "unreadable"     # source_files status of a read that failed for the machine's reasons: retried

TABLE_COLUMNS = {
    "scans": ["scan_id", "source_sha256", "source_path", "report_index", "format", "schema_version", "trivy_version",
              "artifact_name", "artifact_type", "lineage", "image_id", "repo_digests", "repo_tags", "created_at",
              "file_mtime", "ci_run_id", "image_created", "os_family", "os_name", "lists_suppressed",
              "n_vulnerabilities", "n_misconfigurations", "n_secrets", "n_licenses"],
    "scan_vulnerabilities": ["scan_id", "target", "class", "pkg_type", "vulnerability_id", "pkg_name", "pkg_path",
                             "pkg_id", "purl", "installed_version", "fixed_version", "status", "severity",
                             "severity_source", "title", "primary_url", "cvss_score", "published_date", "suppressed",
                             "suppression_status", "suppression_statement", "suppression_source"],
    "scan_misconfigurations": ["scan_id", "target", "class", "config_type", "check_id", "avd_id", "title", "message",
                               "resolution", "severity", "status", "primary_url", "start_line", "end_line", "suppressed"],
    "scan_secrets": ["scan_id", "target", "rule_id", "category", "severity", "title", "start_line", "end_line", "match",
                     "suppressed"],
    "scan_licenses": ["scan_id", "target", "pkg_name", "file_path", "name", "severity", "category", "confidence", "link",
                      "suppressed"],
    "ci_runs": ["run_id", "run_attempt", "workflow", "workflow_path", "event", "head_branch", "head_sha", "status",
                "conclusion", "created_at", "run_started_at", "updated_at", "html_url", "source_path",
                "unparsed_event_lines"],
    "ci_jobs": ["run_id", "job_id", "run_attempt", "name", "status", "conclusion", "started_at", "completed_at"],
    "ci_steps": ["run_id", "job_id", "number", "name", "status", "conclusion", "started_at", "completed_at"],
    "ci_events": list(CiEvent._fields),
    "ci_log_issues": ["run_id", "log_file", "line_no", "reason", "text"],
    "exception_snapshots": ["scope", "snapshot_date", "file", "format", "sha256", "entries"],
    "exceptions": ["scope", "snapshot_date", "file", "format", "line_no", "section", "vuln_id", "expiry", "expiry_raw",
                   "declared_expiry", "reason", "paths", "purls", "valid", "invalid_reason", "sha256"],
    "exception_changes": ["scope", "commit_sha", "file", "path", "source", "repository", "landed_at", "landed_by",
                          "committed_at", "author", "author_email", "pr_number", "pr_url", "title", "deleted",
                          "content_sha256", "source_path", "signature_status", "signature_keys"],
    "exception_reviews": ["scope", "commit_sha", "reviewer", "email", "state", "submitted_at", "via"],
    "exception_line_versions": list(LineVersion._fields),
    "approvers": ["login", "role", "emails", "since", "until", "source_path", "keys"],
    "tickets": ["system", "key", "title", "url", "state", "created_at", "closed_at", "updated_at", "vuln_ids", "text",
                "snapshot_date", "source_path"],
    "inventory_deployable": ["name", "lineage", "source_path"],
    "inventory_retired": ["lineage", "retired_at", "source_path"],
    "source_files": ["path", "sha256", "size", "mtime", "kind", "status", "reason"],
    "ingest_errors": ["path", "sha256", "kind", "reason"],
}


@dataclass
class LandingFile:
    rel: str
    abspath: str
    size: int
    mtime: object
    kind: str                 # scan, ci-artifact, ci-run, exception, inventory, other, symlink, special
    sha256: str = ""

    @property
    def path(self) -> Path:
        return Path(self.abspath)


@dataclass
class IngestSummary:
    files_seen: int = 0
    new_files: int = 0
    ingested: int = 0
    rejected: int = 0
    duplicates: int = 0
    ignored: int = 0
    rows: dict = field(default_factory=lambda: defaultdict(int))
    rejections: list = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"files seen: {self.files_seen}, new: {self.new_files}, ingested: {self.ingested}, "
               f"rejected: {self.rejected}, duplicates: {self.duplicates}, ignored: {self.ignored}"]
        out += [f"  {t}: +{n} rows" for t, n in sorted(self.rows.items()) if t not in ("source_files",)]
        out += [f"  rejected {p}: {r}" for p, r in self.rejections]
        return out


def classify(rel: str) -> str:
    parts = rel.split("/")
    if parts[0] == "trivy" and rel.lower().endswith((".json", ".sarif")):
        return "scan"
    if parts[0] == "ci" and len(parts) >= 4 and parts[1] == "github-actions":
        if parts[3] == "artifacts" and rel.lower().endswith((".json", ".sarif")):
            return "ci-artifact"
        return "ci-run"
    if parts[0] == "exceptions" and len(parts) >= 4:
        return "exception"
    if rel in ("inventory/deployable.yaml", "inventory/deployable.yml"):
        return "inventory"
    if rel in ("inventory/approvers.yaml", "inventory/approvers.yml"):
        return "approvers"
    if parts[0] == "approvals" and len(parts) == 4 and rel.endswith(".json"):
        return "approval"
    if parts[0] == "tickets" and len(parts) >= 3 and rel.lower().endswith((".json", ".csv")):
        return "ticket"
    return "other"


def discover(landing: Path, folder_problems: list | None = None) -> list[LandingFile]:
    """Every file under the landing zone, in path order (a folder's files, then its sub-folders). Hidden
    folders hold tools' working state (the collector's temporary run folders), not evidence, and are
    skipped. Symbolic links (to files or folders) are listed as `symlink`, non-regular files (FIFOs,
    devices, sockets) as `special` and files whose path is not valid UTF-8 as `badname` (under the path
    with its bytes escaped): all are refused without being opened. Folders that cannot be read go to
    `folder_problems` as (relative path, reason)."""
    files: list[LandingFile] = []
    root = str(landing)
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if folder_problems is not None:
                folder_problems.append((undecodable_name(rel_dir) or rel_dir or ".",
                                        f"folder could not be read: {exc.strerror or exc}"))
            continue
        subdirs = []
        for e in entries:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            try:
                link = e.is_symlink()
                if not link and e.is_dir(follow_symlinks=False):
                    if not e.name.startswith("."):
                        subdirs.append(rel)
                    continue
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue          # vanished while being listed
            kind = "symlink" if link else (classify(rel) if stat.S_ISREG(st.st_mode) else "special")
            escaped = undecodable_name(rel)
            if escaped is not None:           # refused unopened, recorded under its escaped name
                rel, kind = escaped, "badname"
            files.append(LandingFile(rel, e.path, st.st_size, utc_from_epoch(st.st_mtime), kind))
        stack.extend(reversed(subdirs))
    return files


@dataclass(frozen=True)
class LandingFingerprint:
    files: int
    digest: str        # sha256 over every discovered file's path, size and mtime


def fingerprint_of(files: list[LandingFile]) -> LandingFingerprint:
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.rel}\x1f{f.size}\x1f{f.mtime.isoformat()}\x1e".encode("utf-8", "surrogateescape"))
    return LandingFingerprint(len(files), h.hexdigest())


def landing_fingerprint(landing: str | Path) -> LandingFingerprint:
    """The files ingest would read, without reading them (the sensor's view)."""
    landing = Path(landing)
    if not landing.is_dir():
        raise FileNotFoundError(f"landing zone {landing} does not exist or is not a folder")
    return fingerprint_of(discover(landing))


def receipt_path(warehouse: str | Path) -> Path:
    return Path(str(warehouse) + ".ingested.json")


def read_receipt(warehouse: str | Path) -> dict | None:
    """What the last completed ingest into `warehouse` saw; None if there was none."""
    try:
        return json.loads(receipt_path(warehouse).read_text())
    except (OSError, ValueError):
        return None


def write_receipt(warehouse: str | Path, landing: Path, fp: LandingFingerprint) -> None:
    p = receipt_path(warehouse)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps({"landing": str(landing.resolve()), "files": fp.files, "fingerprint": fp.digest}))
    os.replace(tmp, p)


class _Group:
    """The rows and deletes of one unit of evidence (a file, a run folder, a snapshot) and its files."""

    def __init__(self, label: str):
        self.label = label
        self.rows: dict[str, list[tuple]] = defaultdict(list)
        self.deletes: list[tuple[str, tuple]] = []
        self.files: list[tuple[LandingFile, str, str | None]] = []     # (file, status, reason) recorded


class Batch:
    """Rows waiting for one transaction, grouped by the unit of evidence they come from. If the batch
    cannot be stored (a value DuckDB cannot convert, a duplicate key), each group is stored on its own
    and a group that still fails rejects its files with DuckDB's reason: one file never costs the batch."""

    def __init__(self):
        self.groups: list[_Group] = [_Group("(batch)")]
        self.bytes = 0

    def start(self, label: str) -> None:
        self.groups.append(_Group(label))

    @property
    def deletes(self) -> list:
        return self.groups[-1].deletes

    @deletes.setter
    def deletes(self, value: list) -> None:
        self.groups[-1].deletes = value

    def add(self, table: str, row: tuple):
        self.groups[-1].rows[table].append(row)

    def extend(self, table: str, rows: list[tuple]):
        self.groups[-1].rows[table].extend(rows)

    def note(self, f: LandingFile, status: str, reason: str | None) -> None:
        self.groups[-1].files.append((f, status, reason))

    @staticmethod
    def _store(con, groups: list[_Group], summary: IngestSummary) -> None:
        fault_point()
        con.execute("BEGIN TRANSACTION")
        try:
            for g in groups:
                for sql, params in g.deletes:
                    con.execute(sql, params)
            for table in TABLE_COLUMNS:
                rows = [r for g in groups for r in g.rows.get(table, ())]
                if rows:
                    cols = TABLE_COLUMNS[table]
                    df = pd.DataFrame(rows, columns=cols, dtype=object)  # noqa: F841 (read by DuckDB below)
                    con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM df")
                    fault_point()
            con.execute("COMMIT")
            fault_point()
        except BaseException:
            con.execute("ROLLBACK")
            raise
        for g in groups:
            for table, rows in g.rows.items():
                summary.rows[table] += len(rows)

    def flush(self, con, summary: IngestSummary):
        groups = [g for g in self.groups if g.rows or g.deletes]
        if groups:
            try:
                self._store(con, groups, summary)
            except Exception:        # noqa: BLE001 (isolate the group that cannot be stored, whatever the reason)
                for g in groups:
                    try:
                        self._store(con, [g], summary)
                    except Exception as exc:      # noqa: BLE001
                        self._reject(con, g, exc, summary)
        self.groups = [_Group("(batch)")]
        self.bytes = 0

    @staticmethod
    def _reject(con, g: _Group, exc: Exception, summary: IngestSummary) -> None:
        reason = f"could not be stored ({type(exc).__name__}): {str(exc).splitlines()[0][:300]}"
        rej = _Group(g.label)
        for f, status, own_reason in g.files:
            kept = status in ("rejected", UNREADABLE)      # a file rejected earlier keeps its reason
            why = own_reason if kept else reason
            rej.rows["source_files"].append((f.rel, f.sha256, f.size, f.mtime, f.kind, status if kept else "rejected", why))
            rej.rows["ingest_errors"].append((f.rel, f.sha256, f.kind, why))
            if not kept:
                summary.rejected += 1
                summary.ingested -= status == "ingested"
                summary.rejections.append((f.rel, why))
        Batch._store(con, [rej], summary)


def _check_dates(scan: ParsedScan, now) -> None:
    if scan.created_at is not None:
        if scan.created_at < EARLIEST_PLAUSIBLE:
            raise Rejected(f"CreatedAt {scan.created_at.isoformat()}Z is before 2000: not a real scan time")
        if scan.created_at > now + timedelta(days=FUTURE_SLACK_DAYS):
            raise Rejected(f"CreatedAt {scan.created_at.isoformat()}Z is in the future")


def ingest(landing: str | Path, warehouse: str | Path, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
           progress=None, rehash: bool = False) -> IngestSummary:
    """Load the landing zone's new files. A file whose path, size and mtime match a loaded one is not
    read again (rehash=True reads and hashes every file)."""
    now = datetime.now(timezone.utc).replace(tzinfo=None)   # only to refuse impossible future dates
    landing = Path(landing)
    if not landing.is_dir():
        raise FileNotFoundError(f"landing zone {landing} does not exist or is not a folder")
    progress = progress or (lambda msg: print(msg, file=sys.stderr))
    summary = IngestSummary()
    folder_problems: list = []
    files = discover(landing, folder_problems)
    summary.files_seen = len(files)
    with connect(warehouse) as con, ExitStack() as cleanup:
        stored = con.execute("SELECT path, sha256, size, mtime, status FROM source_files").fetchall()
        # a file that could not be read (moved, unmounted, I/O error) is read again next time: its
        # failure was the machine's, not the file's. Rejected files stay rejected until they change.
        known = {(p, sha) for p, sha, _, _, st in stored if st != UNREADABLE}
        retried = {p for p, _, _, _, st in stored if st == UNREADABLE}
        known_paths = {p for p, _ in known}
        by_stat = {} if rehash else {(p, size, mtime): sha for p, sha, size, mtime, st in stored
                                     if st not in ("rejected", UNREADABLE)}
        loaded_shas = {s: p for p, s in con.execute(
            "SELECT path, sha256 FROM source_files WHERE kind IN ('scan','ci-artifact') AND status='ingested'").fetchall()}
        batch = Batch()

        def record(f: LandingFile, status: str, reason: str | None = None):
            if f.rel in retried:      # the earlier failed read is replaced by this one's outcome
                batch.deletes += [("DELETE FROM source_files WHERE path = ? AND status = ?", (f.rel, UNREADABLE)),
                                  ("DELETE FROM ingest_errors WHERE path = ? AND kind LIKE 'unreadable%'", (f.rel,))]
            if status == UNREADABLE:
                reason = f"{reason} (read again on the next ingest)"
            batch.note(f, status, reason)
            batch.add("source_files", (f.rel, f.sha256, f.size, f.mtime, f.kind, status, reason))
            if status == UNREADABLE:
                batch.add("ingest_errors", (f.rel, f.sha256, "unreadable:" + f.kind, reason))
                summary.rejected += 1
                summary.rejections.append((f.rel, reason))
            elif status == "rejected":
                batch.add("ingest_errors", (f.rel, f.sha256, f.kind, reason))
                summary.rejected += 1
                summary.rejections.append((f.rel, reason))
            elif status == "ingested":
                summary.ingested += 1
            elif status == "duplicate":
                summary.duplicates += 1
            else:
                summary.ignored += 1

        new: list[LandingFile] = []
        for f in files:
            if f.kind in ("symlink", "special", "badname"):   # never opened: a FIFO would block the read forever
                f.sha256 = ""
                if (f.rel, "") not in known:
                    new.append(f)
                continue
            seen = by_stat.get((f.rel, f.size, f.mtime))
            if seen is not None and not f.kind.startswith("unreadable"):
                f.sha256 = seen    # same path, size and mtime as a file already loaded: not read again
                continue
            if f.kind in ("scan", "ci-artifact") and f.rel not in known_paths and f.size <= max_file_bytes:
                new.append(f)      # a path never loaded is new whatever its bytes: hashed as it is parsed (one read)
                continue
            try:
                f.sha256 = sha256_file(f.path) if f.size <= max_file_bytes else f"oversize:{f.size}:{f.mtime.isoformat()}"
            except OSError as exc:
                f.sha256 = ""
                f.kind = "unreadable:" + str(exc)[:100]
            if (f.rel, f.sha256) not in known:
                new.append(f)
        summary.new_files = len(new)
        new_paths = {f.rel for f in new}   # membership by path: comparing LandingFile objects is O(n) each
        progress(f"ingest: {len(files)} files in {landing}, {len(new)} new")
        to_parse = [f for f in new if f.kind in ("scan", "ci-artifact", "ci-run")]
        readers = cleanup.enter_context(ReaderPool(
            reader_processes() if worth_processes(len(to_parse), sum(f.size for f in to_parse)) else 0,
            ahead_bytes=BATCH_BYTES, progress=progress))

        def maybe_flush(extra_bytes: int):
            batch.bytes += extra_bytes
            if batch.bytes >= BATCH_BYTES:
                batch.flush(con, summary)

        # --- inventory ----------------------------------------------------------------------
        for f in [f for f in new if f.kind == "inventory"]:
            batch.start(f.rel)
            try:
                deployable, retired = parse_inventory(f.path.read_text(encoding="utf-8-sig"))
            except Exception as exc:      # noqa: BLE001 (Rejected, bad text, or anything the YAML loader raises)
                record(f, "rejected", f"inventory not read: {type(exc).__name__}: {str(exc)[:300]}")
                continue
            batch.deletes += [("DELETE FROM inventory_deployable", ()), ("DELETE FROM inventory_retired", ())]
            for name, lin in deployable:
                batch.add("inventory_deployable", (name, lin, f.rel))
            for lin, at in retired:
                batch.add("inventory_retired", (lin, at, f.rel))
            record(f, "ingested")

        # --- tickets (a changed file replaces its own rows) -------------------------------------
        for f in [f for f in new if f.kind == "ticket"]:
            batch.start(f.rel)
            batch.deletes.append(("DELETE FROM tickets WHERE source_path=?", (f.rel,)))
            try:
                if len(f.rel.split("/")) < 4:
                    raise BadTimestamp("no date folder")
                day = parse_date(f.rel.split("/")[2])
                tickets = ticket_reader.parse_ticket_file(f.rel, f.path.read_bytes().decode("utf-8-sig"))
            except BadTimestamp:
                record(f, "rejected", "ticket file not in a YYYY-MM-DD date folder "
                                      "(tickets/<system>/<date taken>/<file>)")
                continue
            except (ticket_reader.TicketRejected, UnicodeDecodeError) as exc:
                record(f, "rejected", f"tickets not read: {exc}")
                continue
            for t in tickets:
                batch.add("tickets", (*t, day, f.rel))
            record(f, "ingested")

        # --- approvers (the roles file replaces the previous one) ------------------------------
        for f in [f for f in new if f.kind == "approvers"]:
            batch.start(f.rel)
            try:
                approvers = approvals_reader.parse_approvers(f.path.read_text(encoding="utf-8-sig"))
            except Exception as exc:      # noqa: BLE001 (RecordRejected, bad text, anything the YAML loader raises)
                record(f, "rejected", f"approvers not read: {type(exc).__name__}: {str(exc)[:300]}")
                continue
            batch.deletes.append(("DELETE FROM approvers", ()))
            for a in approvers:
                batch.add("approvers", (a.login, a.role, a.emails, a.since, a.until, f.rel, a.keys))
            record(f, "ingested")

        # --- exception change records (a changed record re-traces its whole scope) -------------
        row = con.execute("SELECT value FROM derived_meta WHERE key = 'exception_reader_version'").fetchone()
        exception_reader_changed = (row[0] if row else None) != exc_reader.READER_VERSION   # read every file again
        by_scope: dict[str, list[LandingFile]] = defaultdict(list)
        for f in files:
            if f.kind == "approval":
                by_scope[f.rel.split("/")[1]].append(f)
        stored_scopes = {r[0]: r[1] for r in con.execute(
            "SELECT scope, list(source_path ORDER BY source_path) FROM exception_changes GROUP BY scope").fetchall()}
        present = {s_: sorted(f.rel for f in fs) for s_, fs in by_scope.items()}
        for scope in sorted(set(stored_scopes) - set(by_scope)):     # every record of the scope left
            batch.start(f"approvals/{scope} (removed)")
            for table in ("exception_changes", "exception_reviews", "exception_line_versions"):
                batch.deletes.append((f"DELETE FROM {table} WHERE scope=?", (scope,)))
        # a record added or changed (new path or bytes), or one the stored trace read that left (moved aside);
        # a rejected record stays out of the stored list without making every ingest re-trace its scope
        retrace = {s_ for s_, fs in by_scope.items() if exception_reader_changed or any(f.rel in new_paths for f in fs)
                   or set(stored_scopes.get(s_, ())) - set(present[s_])}
        for scope in sorted(retrace):
            batch.start(f"approvals/{scope}")
            for table in ("exception_changes", "exception_reviews", "exception_line_versions"):
                batch.deletes.append((f"DELETE FROM {table} WHERE scope=?", (scope,)))
            records = []
            for f in by_scope[scope]:
                try:
                    rec = approvals_reader.parse_change_record(f.path.read_bytes().decode("utf-8-sig"), f.rel)
                except (approvals_reader.RecordRejected, UnicodeDecodeError) as exc:
                    if f.rel in new_paths:
                        record(f, "rejected", f"exception change record not read: {exc}")
                    continue
                records.append(rec)
                c, pr = rec.commit, rec.pull_request
                batch.add("exception_changes", (scope, c.sha, rec.file, rec.path, rec.source, rec.repository,
                                                rec.landed_at, rec.landed_by, c.committed_at, rec.author,
                                                c.author_email, pr.number if pr else None, pr.url if pr else None,
                                                rec.title, rec.deleted, rec.content_sha256, f.rel,
                                                c.signature.status if c.signature else "none",
                                                c.signature.good_keys if c.signature else []))
                for r in rec.reviews:
                    batch.add("exception_reviews", (scope, c.sha, r.reviewer, r.email, r.state.upper(),
                                                    r.submitted_at, r.via))
                if f.rel in new_paths:
                    record(f, "ingested")
            for lv in approvals_reader.trace_scope(records):
                batch.add("exception_line_versions", tuple(lv))

        # --- exception snapshots (a changed file re-reads its whole snapshot) -----------------
        snapshots: dict[tuple[str, str], list[LandingFile]] = defaultdict(list)
        for f in files:
            if f.kind == "exception":
                _, scope, day = f.rel.split("/")[:3]
                snapshots[(scope, day)].append(f)
        changed = {k for k, fs in snapshots.items() if exception_reader_changed or any(f.rel in new_paths for f in fs)}
        # a snapshot whose files left the landing zone (the history collector moves aside what a force push
        # took off the branch) is no longer evidence: its rows go, the source_files record stays
        for scope, day in con.execute("SELECT DISTINCT scope, strftime(snapshot_date, '%Y-%m-%d') "
                                      "FROM exception_snapshots").fetchall():
            if (scope, day) not in snapshots:
                batch.start(f"exceptions/{scope}/{day} (removed)")
                batch.deletes.append(("DELETE FROM exceptions WHERE scope=? AND snapshot_date=?", (scope, day)))
                batch.deletes.append(("DELETE FROM exception_snapshots WHERE scope=? AND snapshot_date=?", (scope, day)))
                progress(f"ingest: exceptions/{scope}/{day}/ is no longer in the landing zone: its entries are dropped")
        for (scope, day) in sorted(changed):
            fs = snapshots[(scope, day)]
            batch.start(f"exceptions/{scope}/{day}")
            try:
                snap_date = parse_date(day)
            except BadTimestamp:
                for f in fs:
                    if f.rel in new_paths:
                        record(f, "rejected", f"snapshot folder {day!r} is not a YYYY-MM-DD date")
                continue
            batch.deletes.append(("DELETE FROM exceptions WHERE scope=? AND snapshot_date=?", (scope, snap_date)))
            batch.deletes.append(("DELETE FROM exception_snapshots WHERE scope=? AND snapshot_date=?", (scope, snap_date)))
            for f in fs:
                name = "/".join(f.rel.split("/")[3:])
                reason = None
                try:    # bytes as they are: Trivy reads a BOM, a lone CR or an invalid byte as part of a line
                    fmt, entries = exc_reader.parse_exception_file(name, f.path.read_bytes())
                except exc_reader.FileRejected as exc:
                    fmt = exc_reader.exception_format(name)
                    entries, reason = exc.entries, f"Trivy would refuse this file: {exc}"
                except Exception as exc:      # noqa: BLE001 (this file only)
                    fmt, entries, reason = "unknown", [], f"not read ({type(exc).__name__}: {str(exc)[:300]})"
                batch.add("exception_snapshots", (scope, snap_date, name, fmt, f.sha256, len(entries)))
                for e in entries:
                    batch.add("exceptions", (scope, snap_date, name, fmt, e.line_no, e.section, e.vuln_id, e.expiry,
                                             e.expiry_raw, e.declared_expiry, e.reason, e.paths, e.purls, e.valid,
                                             e.invalid_reason, f.sha256))
                if f.rel in new_paths:
                    record(f, "rejected" if reason else "ingested", reason)

        # --- CI runs (a changed file re-reads the whole run) ----------------------------------
        run_files: dict[str, list[LandingFile]] = defaultdict(list)
        for f in files:
            if f.kind == "ci-run":
                run_files[f.rel.split("/")[2]].append(f)
        load_patterns()     # a broken IFC_SCAN_CI_PATTERNS file stops the ingest here, before any run is read
        run_folders = {rid: os.path.basename(str(src)) for rid, src in con.execute(
            "SELECT run_id, source_path FROM ci_runs").fetchall()}
        row = con.execute("SELECT value FROM derived_meta WHERE key = 'ci_reader_version'").fetchone()
        reader_changed = (row[0] if row else None) != CI_READER_VERSION   # read every run again
        if reader_changed and run_folders:
            progress(f"ingest: the CI log reader changed (version {row[0] if row else 'unrecorded'} -> "
                     f"{CI_READER_VERSION}): reading all {len(run_files)} run folders again")
        runs_to_read = sorted(k for k, fs in run_files.items() if reader_changed or any(f.rel in new_paths for f in fs))
        for run_name, got in readers.ordered(
                read_run_folders, runs_to_read, args=lambda r: (str(landing / "ci" / "github-actions" / r),),
                size=lambda r: sum(f.size for f in run_files[r]), what="CI run folders"):
            fs = run_files[run_name]
            batch.start(f"ci/github-actions/{run_name}")
            if got.status != "ok":
                why = {"rejected": f"CI run {run_name} not read: {got.reason}",
                       "unreadable": f"CI run {run_name} not readable: {got.reason}",
                       "error": f"CI run {run_name} not read (reader error {got.reason})"}[got.status]
                for f in fs:
                    if f.rel in new_paths:
                        record(f, UNREADABLE if got.status == "unreadable" else "rejected", why)
                continue
            res = got.result
            run_id = res.run[0]
            owner = run_folders.get(run_id)
            if owner is not None and owner != run_name:      # another folder already holds this run
                for f in fs:
                    if f.rel in new_paths:
                        record(f, "rejected", f"run.json says run {run_id}, which is already read from "
                                              f"ci/github-actions/{owner}: one run, one folder")
                continue
            run_folders[run_id] = run_name
            for t in ("ci_runs", "ci_jobs", "ci_steps", "ci_events", "ci_log_issues"):
                batch.deletes.append((f"DELETE FROM {t} WHERE run_id=?", (run_id,)))
            batch.add("ci_runs", res.run)
            for t, rows in (("ci_jobs", res.jobs), ("ci_steps", res.steps), ("ci_events", res.events),
                            ("ci_log_issues", res.issues)):
                for r in rows:
                    batch.add(t, r)
            errors = defaultdict(list)
            for relname, reason in res.errors:
                errors[relname].append(reason)
            # the run's problems are this reading's: an earlier reading's rows go (a re-read after a late
            # artifact or a new reader would otherwise list them twice)
            batch.deletes.append(("DELETE FROM ingest_errors WHERE starts_with(path, ?)",
                                  (f"ci/github-actions/{run_name}/",)))
            for f in fs:
                sub = "/".join(f.rel.split("/")[3:])
                if f.rel in new_paths:
                    if sub in errors:
                        record(f, "rejected", "; ".join(errors.pop(sub))[:1000])
                    else:
                        record(f, "ingested")
                elif sub in errors:      # a file read before, read again with this run: its problems now
                    batch.add("ingest_errors", (f.rel, f.sha256, f.kind, "; ".join(errors.pop(sub))[:1000]))
            for relname, reasons in errors.items():  # member-level problems (zip entries) of known files
                batch.add("ingest_errors", (f"ci/github-actions/{run_name}/{relname}", None, "ci-run", "; ".join(reasons)[:1000]))
                batch.add("ci_log_issues", (run_id, relname, None, "; ".join(reasons)[:1000], None))
            maybe_flush(sum(f.size for f in fs))

        # --- scan files (parsed by reader processes when there is much to read, stored here in path order) ---
        scan_files = []
        for f in [f for f in new if f.kind in ("scan", "ci-artifact")]:
            if f.size > max_file_bytes:
                batch.start(f.rel)
                record(f, "rejected", f"file is {f.size:,} bytes, over the limit of {max_file_bytes:,} "
                                      f"(IFC_SCAN_MAX_FILE_MB)")
            elif f.sha256 and f.sha256 in loaded_shas:    # hashed above (a changed known path): not parsed
                batch.start(f.rel)
                record(f, "duplicate", f"same content (sha256) as {loaded_shas[f.sha256]}: not counted twice")
            else:
                scan_files.append(f)
        for f, got in readers.ordered(read_landing_scans, scan_files, args=lambda f: (f.abspath, f.size, f.sha256 or None),
                                      size=lambda f: f.size, what="scan files"):
            batch.start(f.rel)
            f.sha256 = got.sha256
            if f.sha256 and f.sha256 in loaded_shas:
                record(f, "duplicate", f"same content (sha256) as {loaded_shas[f.sha256]}: not counted twice")
                continue
            if got.status != "ok":
                record(f, UNREADABLE if got.status == "unreadable" else "rejected", got.reason)
                continue
            scans = got.scans
            try:
                for s in scans:
                    _check_dates(s, now)
            except Rejected as exc:
                record(f, "rejected", str(exc))
                continue
            ci_run_id = None
            if f.kind == "ci-artifact":
                m = re.match(r"^\d+$", f.rel.split("/")[2])
                ci_run_id = int(f.rel.split("/")[2]) if m else None
            for i, s in enumerate(scans):
                scan_id = f"{f.sha256[:32]}-{i}"
                batch.add("scans", (scan_id, f.sha256, f.rel, i, s.format, s.schema_version, s.trivy_version,
                                    s.artifact_name, s.artifact_type, s.lineage, s.image_id, s.repo_digests, s.repo_tags,
                                    s.created_at, f.mtime, ci_run_id, s.image_created, s.os_family, s.os_name,
                                    s.lists_suppressed, len(s.vulnerabilities), len(s.misconfigurations),
                                    len(s.secrets), len(s.licenses)))
                for t, rows in (("scan_vulnerabilities", s.vulnerabilities), ("scan_misconfigurations", s.misconfigurations),
                                ("scan_secrets", s.secrets), ("scan_licenses", s.licenses)):
                    if rows:
                        batch.extend(t, [(scan_id, *r) for r in rows])
            loaded_shas[f.sha256] = f.rel
            record(f, "ingested")
            maybe_flush(f.size)

        batch.start("(other files)")
        for f in new:
            if f.kind == "other":
                record(f, "ignored", "not in a landing-zone folder ifc_scan reads (trivy/, ci/github-actions/, exceptions/, approvals/, tickets/, inventory/)")
            elif f.kind == "symlink":
                record(f, "rejected", "symbolic link: not followed (evidence must be a regular file in the landing zone)")
            elif f.kind == "special":
                record(f, "rejected", "not a regular file (a FIFO, device or socket): not opened")
            elif f.kind == "badname":
                record(f, "rejected", "file name is not valid UTF-8 (its bytes shown as \\xNN): not read, as "
                                      "evidence must be named by its path; rename it in UTF-8 to have it read")
            elif f.kind.startswith("unreadable:"):
                record(f, UNREADABLE, f"could not be read: {f.kind[11:]}")
        # folders that could not be walked: recorded anew on every ingest (they are retried every time)
        batch.deletes.append(("DELETE FROM ingest_errors WHERE kind = 'folder'", ()))
        for rel, reason in folder_problems:
            batch.add("ingest_errors", (rel, None, "folder", reason))
            summary.rejections.append((rel, reason))
        if reader_changed or exception_reader_changed:   # weeks computed from the old reading are stale
            batch.deletes.append(("DELETE FROM weekly_kpis", ()))
        batch.deletes.append(("INSERT OR REPLACE INTO derived_meta VALUES ('exception_reader_version', ?)",
                              (exc_reader.READER_VERSION,)))
        batch.deletes.append(("INSERT OR REPLACE INTO derived_meta VALUES ('ci_reader_version', ?)", (CI_READER_VERSION,)))
        batch.flush(con, summary)
    write_receipt(warehouse, landing, fingerprint_of(files))
    progress("ingest: " + "\n".join(summary.lines()))
    return summary
