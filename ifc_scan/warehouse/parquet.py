"""The warehouse as Parquet files that DuckDB reads in place (Hive-style `<table>/week=<YYYY-Www>/`).

The DuckDB file stays the writer's system of record (one writer, transactions). With IFC_SCAN_PARQUET_DIR
set, each ingest publishes every table to Parquet, and the KPI step reads through views of the same
names, so the KPI SQL runs unchanged on both. Readers (auditors, BI tools) query the Parquet files
without ever taking the writer's lock. A publication is written next to the old one and swapped in by
rename, so a reader never sees half of one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import duckdb

# tables partitioned by ISO week, with the time that places a row in a week
WEEK_OF = {
    "scans": "coalesce(created_at, file_mtime)",
    "ci_runs": "created_at",
    "ci_events": "time",
    "finding_events": "time",
}
# tables partitioned by the week of their scan
BY_SCAN = ("scan_vulnerabilities", "scan_misconfigurations", "scan_secrets", "scan_licenses")


def base_tables(con) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema='main' AND table_type='BASE TABLE' "
        "ORDER BY table_name").fetchall()]


def _week_expr(t: str) -> str:
    return f"coalesce(strftime({t}, '%G-W%V'), 'none')"


def publish_parquet(con, out_dir: str | Path) -> dict:
    """Write every warehouse table under out_dir (replacing the previous publication). Returns row counts."""
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    counts = {}
    try:
        for table in base_tables(con):
            dest = tmp / table
            dest.mkdir()
            if table in WEEK_OF:
                query = f"SELECT *, {_week_expr(WEEK_OF[table])} AS week FROM {table}"
            elif table in BY_SCAN:
                query = (f"SELECT c.*, {_week_expr('coalesce(s.created_at, s.file_mtime)')} AS week "
                         f"FROM {table} c LEFT JOIN scans s USING (scan_id)")
            else:
                query = None
            n = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            counts[table] = n
            if query is None:
                con.execute(f"COPY (SELECT * FROM {table} ORDER BY ALL) TO '{dest / 'data.parquet'}' (FORMAT parquet)")
            elif n == 0:   # no partition to write: one empty file keeps the schema readable
                (dest / "week=none").mkdir()
                con.execute(f"COPY ({query} LIMIT 0) TO '{dest / 'week=none' / 'data.parquet'}' (FORMAT parquet)")
            else:
                con.execute(f"COPY ({query} ORDER BY ALL) TO '{dest}' (FORMAT parquet, PARTITION_BY (week))")
        old = None
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}-old-{os.getpid()}"
            os.rename(out_dir, old)
        os.rename(tmp, out_dir)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts


def connect_parquet(parquet_dir: str | Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose tables are views over the Parquet publication (read only, no lock)."""
    parquet_dir = Path(parquet_dir)
    if not parquet_dir.is_dir():
        raise FileNotFoundError(f"no Parquet warehouse at {parquet_dir} (run ingest with IFC_SCAN_PARQUET_DIR set)")
    con = duckdb.connect()
    for table_dir in sorted(p for p in parquet_dir.iterdir() if p.is_dir()):
        t = table_dir.name
        if (table_dir / "data.parquet").is_file():
            con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{table_dir / 'data.parquet'}')")
        else:
            con.execute(f"CREATE VIEW {t} AS SELECT * EXCLUDE (week) FROM read_parquet('{table_dir}/*/*.parquet', "
                        f"hive_partitioning = true)")
    return con
