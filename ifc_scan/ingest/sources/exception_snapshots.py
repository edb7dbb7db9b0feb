"""exceptions/<scope>/<YYYY-MM-DD>/<file>: the exception files (.trivyignore, .trivyignore.yaml, OpenVEX)
of a scope as they stood on a day. A new or changed file re-reads its whole snapshot (scope and day); a
snapshot whose files left the landing zone (the history collector moves aside what a force push took off
the branch) is no longer evidence: its rows go, the source_files records stay."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ifc_scan.ingest import exceptions as exc_reader
from ifc_scan.ingest.sources.base import Context, EvidenceSource, Plan, ReadEach, Rejection, Removal, Unit
from ifc_scan.timeutil import BadTimestamp, parse_date


class ExceptionFileRead(NamedTuple):
    name: str                      # the file's path inside the snapshot folder
    format: str
    entries: list[exc_reader.Entry]
    reason: str | None             # why Trivy would refuse it, or why it was not read


def read_exception_file(name: str, abspath: str) -> ExceptionFileRead:
    reason = None
    try:    # bytes as they are: Trivy reads a BOM, a lone CR or an invalid byte as part of a line
        fmt, entries = exc_reader.parse_exception_file(name, Path(abspath).read_bytes())
    except exc_reader.FileRejected as exc:
        fmt = exc_reader.exception_format(name)
        entries, reason = exc.entries, f"Trivy would refuse this file: {exc}"
    except Exception as exc:      # noqa: BLE001 (this file only)
        fmt, entries, reason = "unknown", [], f"not read ({type(exc).__name__}: {str(exc)[:300]})"
    return ExceptionFileRead(name, fmt, entries, reason)


def read_snapshot(day: str, files: list[tuple[str, str]]):
    """A snapshot folder's date and files [(name, abspath)] -> (date, [ExceptionFileRead]) or a Rejection."""
    try:
        snap_date = parse_date(day)
    except BadTimestamp:
        return Rejection(f"snapshot folder {day!r} is not a YYYY-MM-DD date")
    return snap_date, [read_exception_file(name, abspath) for name, abspath in files]


def _snapshot_deletes(scope: str, day) -> list[tuple[str, tuple]]:
    return [("DELETE FROM exceptions WHERE scope=? AND snapshot_date=?", (scope, day)),
            ("DELETE FROM exception_snapshots WHERE scope=? AND snapshot_date=?", (scope, day))]


class ExceptionSnapshots(EvidenceSource):
    name = "exception snapshots"
    unit_name = "exception snapshots"
    folder = "exceptions/"
    kinds = ("exception",)
    replaces = "its whole snapshot (every file of the scope on that day)"
    tables = {"exception_snapshots": ["scope", "snapshot_date", "file", "format", "sha256", "entries"],
              "exceptions": ["scope", "snapshot_date", "file", "format", "line_no", "section", "vuln_id", "expiry",
                             "expiry_raw", "declared_expiry", "reason", "paths", "purls", "valid", "invalid_reason",
                             "sha256"]}
    read = ReadEach(read_snapshot)
    reader_version = ("exception_reader_version", exc_reader.READER_VERSION)

    @staticmethod
    def claims(rel: str) -> str | None:
        return "exception" if rel.split("/")[0] == "exceptions" and len(rel.split("/")) >= 4 else None

    def plan(self, ctx: Context) -> Plan:
        snapshots: dict[tuple[str, str], list] = {}
        for f in ctx.all_of(self.kinds):
            _, scope, day = f.rel.split("/")[:3]
            snapshots.setdefault((scope, day), []).append(f)
        removals = [Removal(f"exceptions/{scope}/{day} (removed)", _snapshot_deletes(scope, day),
                            f"ingest: exceptions/{scope}/{day}/ is no longer in the landing zone: its entries are dropped")
                    for scope, day in ctx.con.execute("SELECT DISTINCT scope, strftime(snapshot_date, '%Y-%m-%d') "
                                                      "FROM exception_snapshots").fetchall()
                    if (scope, day) not in snapshots]
        changed = sorted(k for k, fs in snapshots.items()
                         if ctx.reread_all(self) or any(f.rel in ctx.new_paths for f in fs))
        return Plan(removals=removals, units=[
            Unit(f"exceptions/{scope}/{day}", snapshots[(scope, day)],
                 (day, [("/".join(f.rel.split("/")[3:]), f.abspath) for f in snapshots[(scope, day)]]), key=scope)
            for scope, day in changed])

    def store(self, ctx: Context, unit: Unit, reading) -> int:
        if isinstance(reading, Rejection):
            for f in unit.files:
                ctx.record_if_new(f, "rejected", reading.reason)
            return 0
        scope, (snap_date, reads) = unit.key, reading
        ctx.batch.deletes += _snapshot_deletes(scope, snap_date)
        for f, r in zip(unit.files, reads):
            ctx.batch.add("exception_snapshots", (scope, snap_date, r.name, r.format, f.sha256, len(r.entries)))
            for e in r.entries:
                ctx.batch.add("exceptions", (scope, snap_date, r.name, r.format, e.line_no, e.section, e.vuln_id,
                                             e.expiry, e.expiry_raw, e.declared_expiry, e.reason, e.paths, e.purls,
                                             e.valid, e.invalid_reason, f.sha256))
            ctx.record_if_new(f, "rejected" if r.reason else "ingested", r.reason)
        return 0
