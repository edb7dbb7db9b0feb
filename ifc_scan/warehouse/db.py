"""Opening the DuckDB warehouse. Connections are short-lived: DuckDB allows one writer process."""

from __future__ import annotations

import contextlib
import re
import sys
import time
from importlib import resources
from pathlib import Path

import duckdb

from ifc_scan.settings import Settings

SCHEMA_SQL = resources.files("ifc_scan.warehouse").joinpath("schema.sql").read_text()


# Bump when a derived table (lifecycle, weekly KPIs) changes shape: they are dropped and rebuilt.
DERIVED_VERSION = "10"   # 5: weeks gain exception_approvals and tickets; 6: a week's inputs in input_catalog;
# 7: approvals judged on their evidence (D22: unsigned trailers stop counting; entries gain `evidence`)
# 8: weeks gain freshness and requirements (D23, kpis.json contract 1.3)
# 9: each lineage's walk state stored, so the lifecycle is extended rather than rebuilt (issue 28)
# 10: a week's populations stored zlib-compressed (populations_json_zlib), to fit a checkpoint under the memory cap
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
            create: bool = True, memory_limit: str | None = None):
    """Open the warehouse, waiting (not failing) while another process holds the lock.

    Outside Dagster's pool (CLI runs, tests, auditors' notebooks) this is what keeps two writers
    from failing each other: the second waits for the first, up to `wait_seconds`, and says so once
    after a few seconds (`on_wait`, default stderr). create=False refuses a warehouse that does not exist.
    `memory_limit`: DuckDB's cap while the connection works (default: the duckdb_memory setting).
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
        cap_memory(con, memory_limit or Settings.from_env().duckdb_memory)
        if not read_only:
            ensure_schema(con)
        yield con
    finally:
        if not read_only:
            with contextlib.suppress(duckdb.Error):   # a connection left in a failed transaction closes as it is
                con.execute("RESET memory_limit")     # the checkpoint at close runs uncapped (cap_memory)
        con.close()


def cap_memory(con, limit: str) -> None:
    """Cap DuckDB's memory while the connection works (operators spill to the database's .tmp folder past
    it). A checkpoint pins every large string of a table it rewrites at once (DuckDB 2.0.1: measured, a
    table of 52 strings of 5 MB fails to checkpoint under 200 MB, fatally): the weeks' populations are
    stored compressed to stay well under the cap, and the checkpoint at close runs after it is lifted."""
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", limit.strip(), re.IGNORECASE):
        raise ValueError(f"IFC_SCAN_DUCKDB_MEMORY: {limit!r} is not a size such as 1GB or 512MB")
    con.execute(f"SET memory_limit = '{limit.strip()}'")
