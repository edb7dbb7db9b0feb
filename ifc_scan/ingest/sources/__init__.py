"""The registry of evidence sources: every kind of evidence ingest reads, one module each.

| kind (module)                    | landing folder                     | a new or changed file replaces        |
|----------------------------------|------------------------------------|---------------------------------------|
| inventory (inventory.py)         | inventory/deployable.yaml          | the whole inventory                   |
| tickets (tickets.py)             | tickets/<system>/<date>/           | the file's own rows                   |
| approvers (approvers.py)         | inventory/approvers.yaml           | the whole approvers table             |
| exception change records         | approvals/<scope>/<...>/           | the scope (its records traced again)  |
|   (exception_changes.py)         |                                    |                                       |
| exception snapshots              | exceptions/<scope>/<date>/         | the snapshot (scope and day)          |
|   (exception_snapshots.py)       |                                    |                                       |
| CI runs (ci_runs.py)             | ci/github-actions/<run>/           | the whole run                         |
| scan reports (scans.py)          | trivy/, a run's artifacts/         | nothing: keyed by content (sha256)    |
| KEV catalogs (kev.py)            | enrichment/kev/ (intel/files.py)   | the file's own rows                   |
| EPSS files (epss.py)             | enrichment/epss/ (intel/files.py)  | its ISO week's choice of the file     |
|                                  |                                    |   whose rows are kept                 |

A new kind is one module (an `EvidenceSource` subclass, see base.py) and one `register(...)` call (here, or beside the module), plus its
tables in warehouse/schema.sql; the runner does not change. Sources are ingested in this order (CI runs
and scans last: they are the large ones, stored in batches as they are read).
"""

from __future__ import annotations

from ifc_scan.ingest.sources.approvers import Approvers
from ifc_scan.ingest.sources.base import EvidenceSource
from ifc_scan.ingest.sources.ci_runs import CiRuns
from ifc_scan.ingest.sources.epss import EpssFiles
from ifc_scan.ingest.sources.exception_changes import ExceptionChanges
from ifc_scan.ingest.sources.exception_snapshots import ExceptionSnapshots
from ifc_scan.ingest.sources.inventory import Inventory
from ifc_scan.ingest.sources.kev import KevCatalogs
from ifc_scan.ingest.sources.scans import Scans
from ifc_scan.ingest.sources.tickets import Tickets

# what every ingest records about the files themselves, whatever their kind
FILE_TABLES = {"source_files": ["path", "sha256", "size", "mtime", "kind", "status", "reason"],
               "ingest_errors": ["path", "sha256", "kind", "reason"]}

SOURCES: list[type[EvidenceSource]] = []        # in the order they are ingested
# every table ingest writes, with its columns (the order tables are written in a transaction)
TABLE_COLUMNS: dict[str, list[str]] = dict(FILE_TABLES)
_BY_KIND: dict[str, type[EvidenceSource]] = {}


def register(source: type[EvidenceSource]) -> type[EvidenceSource]:
    """Adds a kind of evidence (ingested after those registered before it)."""
    taken = [k for k in source.kinds if k in _BY_KIND]
    if taken:
        raise ValueError(f"{source.__name__}: kind {taken[0]!r} is already {_BY_KIND[taken[0]].__name__}'s")
    SOURCES.append(source)
    _BY_KIND.update({kind: source for kind in source.kinds})
    _update_tables()
    return source


def unregister(source: type[EvidenceSource]) -> None:
    """Takes a kind of evidence out again (a test's own kind, say)."""
    SOURCES.remove(source)
    for kind in source.kinds:
        del _BY_KIND[kind]
    _update_tables()


def _update_tables() -> None:
    columns = {t: cols for s in SOURCES for t, cols in s.tables.items()} | FILE_TABLES
    TABLE_COLUMNS.clear()           # updated in place: the runner and the gate hold this dict
    TABLE_COLUMNS.update(columns)


for _source in (Inventory, Tickets, Approvers, ExceptionChanges, ExceptionSnapshots, KevCatalogs, EpssFiles, CiRuns,
                Scans):
    register(_source)


def classify(rel: str) -> str:
    """The source_files kind of a landing path: the first source that claims it, else "other"."""
    for s in SOURCES:
        kind = s.claims(rel)
        if kind is not None:
            return kind
    return "other"


def source_of(kind: str) -> type[EvidenceSource] | None:
    return _BY_KIND.get(kind)


def landing_folders() -> list[str]:
    """The folders ingest reads, the most recently registered first (as the ignored files' reason lists them)."""
    return list(reversed(dict.fromkeys(s.folder for s in SOURCES)))
