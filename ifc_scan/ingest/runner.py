"""Ingest a landing zone into the warehouse: new files only, in atomic batches.

A file is identified by (path, sha256). Re-running changes nothing; a scan file whose content was
already loaded under another name is recorded as a duplicate and not counted twice. Every batch is
one transaction, so a crash leaves the warehouse as it was before that batch, and the files of the
failed batch are simply new again on the next run.

The kinds of evidence are the registry's (ingest/sources/): `ingest` discovers the files, classifies
them by the registry, compares them with what is stored, and lets each kind plan, read (in reader
processes when the ingest is large), and store its units; it records what no kind claimed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ifc_scan.ingest.batch import UNREADABLE, Batch, IngestSummary, LandingFile
from ifc_scan.ingest.readers import ReaderPool, reader_processes, worth_processes
from ifc_scan.ingest.scan_files import sha256_file, undecodable_name
from ifc_scan.ingest.sources import SOURCES, TABLE_COLUMNS, classify, landing_folders, source_of
from ifc_scan.ingest.sources.base import Context, EvidenceSource
from ifc_scan.timeutil import utc_from_epoch
from ifc_scan.warehouse.db import connect

__all__ = ["TABLE_COLUMNS", "IngestSummary", "LandingFile", "classify", "discover", "ingest", "landing_fingerprint",
           "read_receipt"]

DEFAULT_MAX_FILE_BYTES = int(float(os.environ.get("IFC_SCAN_MAX_FILE_MB", "512")) * 1024 * 1024)
# flush (commit) after this many input bytes: bounds memory. Tests set it small to get many commit points.
BATCH_BYTES = int(float(os.environ.get("IFC_SCAN_BATCH_MB", "96")) * 1024 * 1024)


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


def _new_files(files: list[LandingFile], stored: list[tuple], max_file_bytes: int,
               rehash: bool) -> list[LandingFile]:
    """The files to ingest: not stored under their (path, sha256), or stored as unreadable. A file whose path,
    size and mtime match a stored one is not read again (rehash=True hashes every file)."""
    # a file that could not be read (moved, unmounted, I/O error) is read again next time: its
    # failure was the machine's, not the file's. Rejected files stay rejected until they change.
    known = {(p, sha) for p, sha, _, _, st in stored if st != UNREADABLE}
    known_paths = {p for p, _ in known}
    by_stat = {} if rehash else {(p, size, mtime): sha for p, sha, size, mtime, st in stored
                                 if st not in ("rejected", UNREADABLE)}
    hashed_by_reader = {k for s in SOURCES if s.hashed_by_reader for k in s.kinds}
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
        if f.kind in hashed_by_reader and f.rel not in known_paths and f.size <= max_file_bytes:
            new.append(f)      # a path never loaded is new whatever its bytes: hashed as it is read (one read)
            continue
        try:
            f.sha256 = sha256_file(f.path) if f.size <= max_file_bytes else f"oversize:{f.size}:{f.mtime.isoformat()}"
        except OSError as exc:
            f.sha256 = ""
            f.kind = "unreadable:" + str(exc)[:100]
        if (f.rel, f.sha256) not in known:
            new.append(f)
    return new


def _stale_readers(con) -> set[str]:
    """The derived_meta keys of the readers whose version is not the one the warehouse was read with."""
    stale = set()
    for s in SOURCES:
        if s.reader_version is not None:
            key, version = s.reader_version
            row = con.execute("SELECT value FROM derived_meta WHERE key = ?", (key,)).fetchone()
            if (row[0] if row else None) != version:
                stale.add(key)
    return stale


def _ingest_kind(ctx: Context, source: EvidenceSource, readers: ReaderPool, inline: ReaderPool) -> None:
    """One kind of evidence: what left the landing zone, what is settled unread, then each unit read and stored
    (a batch is committed whenever the input bytes stored reach BATCH_BYTES)."""
    plan = source.plan(ctx)
    for removal in plan.removals:
        ctx.batch.start(removal.label)
        ctx.batch.deletes += removal.deletes
        if removal.message:
            ctx.progress(removal.message)
    for f, status, reason in plan.settled:
        ctx.batch.start(f.rel)
        ctx.record(f, status, reason)
    pool = readers if source.parallel else inline
    for unit, reading in pool.ordered(source.read, plan.units, args=lambda u: u.args, size=lambda u: u.size,
                                      what=source.unit_name):
        ctx.batch.start(unit.label)
        ctx.batch.bytes += source.store(ctx, unit, reading)
        if ctx.batch.bytes >= BATCH_BYTES:
            ctx.batch.flush(ctx.con, ctx.summary)
    source.finish(ctx)


def _settle_unclaimed(ctx: Context, folder_problems: list) -> None:
    """The new files no kind of evidence reads, and the folders that could not be walked."""
    ctx.batch.start("(other files)")
    for f in ctx.new:
        if f.kind == "other":
            ctx.record(f, "ignored", f"not in a landing-zone folder ifc_scan reads ({', '.join(landing_folders())})")
        elif f.kind == "symlink":
            ctx.record(f, "rejected", "symbolic link: not followed (evidence must be a regular file in the landing zone)")
        elif f.kind == "special":
            ctx.record(f, "rejected", "not a regular file (a FIFO, device or socket): not opened")
        elif f.kind == "badname":
            ctx.record(f, "rejected", "file name is not valid UTF-8 (its bytes shown as \\xNN): not read, as "
                                      "evidence must be named by its path; rename it in UTF-8 to have it read")
        elif f.kind.startswith("unreadable:"):
            ctx.record(f, UNREADABLE, f"could not be read: {f.kind[11:]}")
    # folders that could not be walked: recorded anew on every ingest (they are retried every time)
    ctx.batch.deletes.append(("DELETE FROM ingest_errors WHERE kind = 'folder'", ()))
    for rel, reason in folder_problems:
        ctx.batch.add("ingest_errors", (rel, None, "folder", reason))
        ctx.summary.rejections.append((rel, reason))


def _record_reader_versions(ctx: Context) -> None:
    if ctx.stale_readers:     # weeks computed from the old reading are stale
        ctx.batch.deletes.append(("DELETE FROM weekly_kpis", ()))
    for key, version in dict(s.reader_version for s in SOURCES if s.reader_version is not None).items():
        ctx.batch.deletes.append(("INSERT OR REPLACE INTO derived_meta VALUES (?, ?)", (key, version)))


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
        new = _new_files(files, stored, max_file_bytes, rehash)
        summary.new_files = len(new)
        progress(f"ingest: {len(files)} files in {landing}, {len(new)} new")
        ctx = Context(con, Batch(TABLE_COLUMNS), summary, landing, files, new,
                      retried={p for p, _, _, _, st in stored if st == UNREADABLE}, now=now,
                      max_file_bytes=max_file_bytes, progress=progress, stale_readers=_stale_readers(con))
        to_parse = [f for f in new if (source_of(f.kind) or EvidenceSource).parallel]
        readers = cleanup.enter_context(ReaderPool(
            reader_processes() if worth_processes(len(to_parse), sum(f.size for f in to_parse)) else 0,
            ahead_bytes=BATCH_BYTES, progress=progress))
        inline = ReaderPool(0, ahead_bytes=0)
        for source in SOURCES:
            _ingest_kind(ctx, source(), readers, inline)
        _settle_unclaimed(ctx, folder_problems)
        _record_reader_versions(ctx)
        ctx.batch.flush(con, summary)
    write_receipt(warehouse, landing, fingerprint_of(files))
    progress("ingest: " + "\n".join(summary.lines()))
    return summary
