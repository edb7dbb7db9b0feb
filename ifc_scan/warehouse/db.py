"""Opening the DuckDB warehouse. Connections are short-lived: DuckDB allows one writer process."""

from __future__ import annotations

import contextlib
import time
from importlib import resources
from pathlib import Path

import duckdb

SCHEMA_SQL = resources.files("ifc_scan.warehouse").joinpath("schema.sql").read_text()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA_SQL)


@contextlib.contextmanager
def connect(path: str | Path, read_only: bool = False, wait_seconds: float = 600.0):
    """Open the warehouse, waiting (not failing) while another process holds the lock.

    Outside Dagster's pool (CLI runs, tests, auditors' notebooks) this is what keeps two writers
    from failing each other: the second waits for the first, up to `wait_seconds`.
    """
    path = str(path)
    if not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(path, read_only=read_only)
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
    try:
        if not read_only:
            ensure_schema(con)
        yield con
    finally:
        con.close()
