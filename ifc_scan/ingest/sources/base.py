"""The interface every kind of evidence implements, and the ingest's state a kind sees.

A kind of evidence (`EvidenceSource`) says:
- which landing paths it owns (`claims`: a path -> the source_files kind it records, or None),
- what a new or changed file replaces (`replaces`, and the deletes its `store` adds: its own rows, its
  scope or snapshot, or the whole table),
- which units it reads this time (`plan`: compared with what the warehouse holds; it may also drop
  evidence that left the landing zone and settle files without reading them),
- how a unit is read (`read`: a module-level function, pure, that a reader process can run: a list of
  argument tuples -> one reading per tuple, typed rows or a `Rejection`),
- how a reading is stored (`store`: rows and deletes into the batch, and each file's outcome).
The runner (ingest/runner.py) only loops over the registry (ingest/sources/__init__.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, ClassVar, NamedTuple

from ifc_scan.ingest.batch import UNREADABLE, Batch, IngestSummary, LandingFile


class Rejection(NamedTuple):
    """A reading that found the file (or unit) not usable: the reason is shown to people as is."""
    reason: str


class ReadEach:
    """`read` for a kind whose reader takes one unit: maps it over a task's argument tuples. Picklable
    (a module-level function inside), so the unit can be read in a reader process like the others."""

    def __init__(self, read_one: Callable):
        self.read_one = read_one

    def __call__(self, many: list[tuple]) -> list:
        return [self.read_one(*args) for args in many]


@dataclass
class Unit:
    """What one reading covers (a file, a snapshot folder, a scope, a run folder) and the files it stands for."""
    label: str                     # the batch group's name, shown when the unit cannot be stored
    files: list[LandingFile]
    args: tuple                    # the arguments of the kind's `read` for this unit
    key: object = None             # the kind's own handle (a scope, a run folder name, a date)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class Removal:
    """Evidence that left the landing zone: its rows go (the source_files records stay)."""
    label: str
    deletes: list[tuple[str, tuple]]
    message: str | None = None     # said to the person running the ingest


@dataclass
class Plan:
    removals: list[Removal] = field(default_factory=list)
    settled: list[tuple[LandingFile, str, str]] = field(default_factory=list)   # outcomes known without reading
    units: list[Unit] = field(default_factory=list)


@dataclass
class Context:
    """One ingest as the kinds of evidence see it."""
    con: object                            # the DuckDB connection (reads only: writes go through the batch)
    batch: Batch
    summary: IngestSummary
    landing: Path
    files: list[LandingFile]               # every file discovered, in path order
    new: list[LandingFile]                 # the files new or changed since the last ingest
    retried: set[str]                      # paths whose last read failed for the machine's reasons
    now: datetime                          # only to refuse impossible future dates
    max_file_bytes: int
    progress: Callable[[str], None]
    stale_readers: set[str]                # derived_meta keys whose reader version changed: read everything again
    new_paths: set[str] = field(init=False)

    def __post_init__(self):
        self.new_paths = {f.rel for f in self.new}   # membership by path: comparing LandingFile objects is O(n)

    def all_of(self, kinds: tuple[str, ...]) -> list[LandingFile]:
        return [f for f in self.files if f.kind in kinds]

    def new_of(self, kinds: tuple[str, ...]) -> list[LandingFile]:
        return [f for f in self.new if f.kind in kinds]

    def reread_all(self, source: "EvidenceSource") -> bool:
        return source.reader_version is not None and source.reader_version[0] in self.stale_readers

    def record(self, f: LandingFile, status: str, reason: str | None = None) -> None:
        """A file's outcome: source_files, ingest_errors for a rejection, and the summary's counts."""
        batch, summary = self.batch, self.summary
        if f.rel in self.retried:      # the earlier failed read is replaced by this one's outcome
            batch.deletes += [("DELETE FROM source_files WHERE path = ? AND status = ?", (f.rel, UNREADABLE)),
                              ("DELETE FROM ingest_errors WHERE path = ? AND kind LIKE 'unreadable%'", (f.rel,))]
        if status == UNREADABLE:
            reason = f"{reason} (read again on the next ingest)"
        batch.note(f, status, reason)
        batch.add("source_files", (f.rel, f.sha256, f.size, f.mtime, f.kind, status, reason))
        if status in (UNREADABLE, "rejected"):
            batch.add("ingest_errors", (f.rel, f.sha256, ("unreadable:" if status == UNREADABLE else "") + f.kind,
                                        reason))
            summary.rejected += 1
            summary.rejections.append((f.rel, reason))
        elif status == "ingested":
            summary.ingested += 1
        elif status == "duplicate":
            summary.duplicates += 1
        else:
            summary.ignored += 1

    def record_if_new(self, f: LandingFile, status: str, reason: str | None = None) -> None:
        """For a unit re-read as a whole: only its new files get an outcome (the others have theirs)."""
        if f.rel in self.new_paths:
            self.record(f, status, reason)


class EvidenceSource:
    """One kind of evidence. Subclasses set the class attributes and implement the four methods; the
    runner makes one instance per ingest (so a kind may keep what its plan learnt for its store)."""
    name: ClassVar[str]                               # said in the docs
    unit_name: ClassVar[str]                          # its units, in progress messages ("CI run folders")
    folder: ClassVar[str]                             # the landing-zone folder it reads ("tickets/")
    kinds: ClassVar[tuple[str, ...]]                  # the source_files kinds its `claims` gives
    replaces: ClassVar[str]                           # what a new or changed file replaces, in words
    tables: ClassVar[dict[str, list[str]]]            # the warehouse tables it writes, with their columns
    read: ClassVar[Callable[[list[tuple]], list]]     # module-level and pure: argument tuples -> readings
    reader_version: ClassVar[tuple[str, str] | None] = None   # (derived_meta key, version): a new one re-reads all
    parallel: ClassVar[bool] = False        # read in reader processes when the ingest is large
    hashed_by_reader: ClassVar[bool] = False  # a path never loaded is hashed as it is read (one read, not two)

    @staticmethod
    def claims(rel: str) -> str | None:
        raise NotImplementedError

    def plan(self, ctx: Context) -> Plan:
        """The units to read, by default one per new file of the kind."""
        return Plan(units=[Unit(f.rel, [f], (f.rel, f.abspath)) for f in ctx.new_of(self.kinds)])

    def store(self, ctx: Context, unit: Unit, reading) -> int:
        """Adds the reading's rows and deletes to ctx.batch and records the files' outcomes. Returns the
        input bytes to count toward the batch's size (0: the kind's files are small and never flush)."""
        raise NotImplementedError

    def finish(self, ctx: Context) -> None:
        """After every unit is stored: what the kind adds to the batch once (by default nothing)."""
