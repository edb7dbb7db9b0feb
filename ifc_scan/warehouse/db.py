"""Opening the DuckDB warehouse. Connections are short-lived: DuckDB allows one writer process."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from importlib import resources
from pathlib import Path

import duckdb

SCHEMA_SQL = resources.files("ifc_scan.warehouse").joinpath("schema.sql").read_text()


# Bump when a derived table (lifecycle, weekly KPIs) changes shape: they are dropped and rebuilt.
DERIVED_VERSION = "9"   # 5: weeks gain exception_approvals and tickets; 6: a week's inputs in input_catalog;
# 7: approvals judged on their evidence (D22: unsigned trailers stop counting; entries gain `evidence`)
# 8: weeks gain freshness and requirements (D23, kpis.json contract 1.3)
# 9: each lineage's walk state stored, so the lifecycle is extended rather than rebuilt (issue 28)
DERIVED_TABLES = ("findings", "finding_events", "timeline_moments", "current_images", "lifecycle_corrections",
                  "weekly_kpis", "input_catalog", "lifecycle_lineage_state", "lifecycle_finding_state")


# derived_meta keys that describe the raw tables (kept when the derived tables are rebuilt)
RAW_META_KEYS = ("version", "ci_reader_version", "scan_reader_version")


# Columns added to raw tables after their first release (CREATE TABLE IF NOT EXISTS does not add them).
RAW_COLUMNS_ADDED = (("ci_events", "status", "VARCHAR"), ("ci_events", "masked", "BOOLEAN"),
                     ("ci_events", "detail", "VARCHAR"), ("exception_changes", "signature_status", "VARCHAR"),
                     ("exception_changes", "signature_keys", "VARCHAR[]"), ("approvers", "keys", "VARCHAR[]"),
                     ("scan_vulnerabilities", "cve_aliases", "VARCHAR[]"))


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = 'main'").fetchall()}
    version = None
    if "derived_meta" in tables:
        row = con.execute("SELECT value FROM derived_meta WHERE key = 'version'").fetchone()
        version = row[0] if row else None
    if version != DERIVED_VERSION:
        for t in DERIVED_TABLES:
            con.execute(f"DROP TABLE IF EXISTS {t}")
        if "derived_meta" in tables:   # what the dropped tables were built from goes with them (lifecycle_inputs...)
            con.execute(f"DELETE FROM derived_meta WHERE key NOT IN ({', '.join(repr(k) for k in RAW_META_KEYS)})")
    con.execute(SCHEMA_SQL)
    for table, column, sql_type in RAW_COLUMNS_ADDED:      # a warehouse of an older release gains them
        con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {sql_type}")
    if version != DERIVED_VERSION:
        con.execute("INSERT OR REPLACE INTO derived_meta VALUES ('version', ?)", (DERIVED_VERSION,))


@contextlib.contextmanager
def connect(path: str | Path, read_only: bool = False, wait_seconds: float = 600.0, on_wait=None,
            create: bool = True):
    """Open the warehouse, waiting (not failing) while another process holds the lock.

    Outside Dagster's pool (CLI runs, tests, auditors' notebooks) this is what keeps two writers
    from failing each other: the second waits for the first, up to `wait_seconds`, and says so once
    after a few seconds (`on_wait`, default stderr). create=False refuses a warehouse that does not exist.
    """
    path = str(path)
    if not create and not Path(path).is_file():
        raise FileNotFoundError(f"warehouse {path} does not exist (run `ifc-scan ingest` first, or check --warehouse)")
    if not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    started = time.monotonic()
    said = False
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(path, read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            if not said and time.monotonic() - started > 3:
                m = re.search(r"held in (.*) \(PID (\d+)\)", str(exc))
                holder = f"PID {m.group(2)} ({m.group(1)})" if m else "another process"
                (on_wait or (lambda msg: print(msg, file=sys.stderr)))(
                    f"waiting for the warehouse lock on {path} held by {holder}")
                said = True
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        # Optional cap on DuckDB's buffer pool (it spills to disk past it). No default: a 1 GB cap made a
        # checkpoint fail fatally on a 3-year org-scale warehouse (BENCHMARKS.md).
        if os.environ.get("IFC_SCAN_DUCKDB_MEMORY"):
            con.execute(f"SET memory_limit = '{os.environ['IFC_SCAN_DUCKDB_MEMORY']}'")
        if not read_only:
            ensure_schema(con)
        yield con
    finally:
        con.close()
