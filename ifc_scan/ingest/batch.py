"""What one ingest transaction holds: the landing files, the rows and deletes grouped by the unit of
evidence they come from, and the summary the ingest reports.

A batch is stored as one transaction; if it cannot be (a value DuckDB cannot convert, a duplicate key),
each group is stored on its own and a group that still fails rejects its files with DuckDB's reason.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ifc_scan.faults import fault_point

UNREADABLE = "unreadable"     # source_files status of a read that failed for the machine's reasons: retried


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

    def __init__(self, columns: dict[str, list[str]]):
        self.columns = columns          # table -> columns, in the order tables are written
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

    def _store(self, con, groups: list[_Group], summary: IngestSummary) -> None:
        fault_point()
        con.execute("BEGIN TRANSACTION")
        try:
            for g in groups:
                for sql, params in g.deletes:
                    con.execute(sql, params)
            for table, cols in self.columns.items():
                rows = [r for g in groups for r in g.rows.get(table, ())]
                if rows:
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

    def _reject(self, con, g: _Group, exc: Exception, summary: IngestSummary) -> None:
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
        self._store(con, [rej], summary)
