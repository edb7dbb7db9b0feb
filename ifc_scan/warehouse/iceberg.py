"""The warehouse's tables as Apache Iceberg tables: the storage many processes and hosts can write at once.

The DuckDB file stays each process's working copy (and the default for one machine). With the Iceberg
profile a process publishes every table of its warehouse, raw evidence and derived alike, as one Iceberg
commit per table (an atomic swap of the table's metadata in the SQL catalog, PostgreSQL for many hosts);
data files go to S3-compatible storage or a shared folder. Another process loads a given snapshot of each
table back into a DuckDB connection (pyiceberg scan -> Arrow -> DuckDB) and runs the weekly stage on
exactly that state; the snapshot ids a published week read are recorded beside it (reports/tables/), so
`ifc-scan tables verify` can load that state again after any later commit.

Columns come from the DuckDB tables (ifc_scan/warehouse/schema.sql is their one definition): the Iceberg
schema is the Arrow schema of the DuckDB table, and a column added to the warehouse is added to the Iceberg
table by name before the next commit.
"""

from __future__ import annotations

import json
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ifc_scan.settings import Settings
from ifc_scan.warehouse.parquet import base_tables

if TYPE_CHECKING:       # pyarrow and pyiceberg come with the `iceberg` extra: imported where used
    import pyarrow as pa

RECORDS_DIR = "tables"     # reports/tables/<week>.json: the snapshots a published week read
COMMIT_ATTEMPTS = 8        # whole re-reads of a table after a concurrent writer won, beyond pyiceberg's own retries
CHUNK_ROWS = 131_072       # rows appended (and held in memory) at a time by a publication
# Parquet row groups of this many rows: a load streams a table one row group at a time (pyiceberg's
# default, 1,048,576 rows, held a 624,000-row scan_vulnerabilities in memory whole: BENCHMARKS.md)
TABLE_PROPERTIES = {"write.parquet.row-group-limit": "65536"}


@dataclass(frozen=True)
class IcebergConfig:
    """Where the Iceberg tables live (the settings iceberg_* and s3_*; docs/deploy.md)."""
    catalog_uri: str            # SQLAlchemy URI of the SQL catalog
    warehouse: str              # s3://bucket/prefix, or a folder every process can reach
    namespace: str = "ifc_scan"
    s3_endpoint: str = ""
    s3_region: str = "us-east-1"

    @classmethod
    def from_settings(cls, s: Settings) -> "IcebergConfig":
        if not s.iceberg_catalog or not s.iceberg_warehouse:
            raise ValueError("the Iceberg profile needs IFC_SCAN_ICEBERG_CATALOG (a SQLAlchemy URI of the catalog "
                             "database) and IFC_SCAN_ICEBERG_WAREHOUSE (s3://bucket/prefix or a shared folder)")
        return cls(s.iceberg_catalog, s.iceberg_warehouse, s.iceberg_namespace or "ifc_scan", s.s3_endpoint,
                   s.s3_region or "us-east-1")

    @property
    def location(self) -> str:
        """The warehouse as a URI: a plain folder becomes file:///absolute/path."""
        if "://" in self.warehouse:
            return self.warehouse
        return Path(self.warehouse).resolve().as_uri()


class TableSnapshot(NamedTuple):
    """One table as committed (or loaded): its snapshot id (None: the table was never written) and rows."""
    table: str
    snapshot_id: int | None
    rows: int


def open_catalog(cfg: IcebergConfig):
    """The SQL catalog (its tables are created in the catalog database on first use)."""
    try:
        from pyiceberg.catalog.sql import SqlCatalog
    except ImportError as exc:
        raise ValueError(f"the Iceberg profile needs the `iceberg` extra: pip install 'ifc_scan[iceberg]' ({exc})") from None
    props = {"uri": cfg.catalog_uri, "warehouse": cfg.location}
    if cfg.location.startswith("s3://"):
        # the region is given, never looked up: resolving it would ask AWS, not the configured endpoint
        props.update({"s3.region": cfg.s3_region, "s3.resolve-region": "false"})
        if cfg.s3_endpoint:
            props["s3.endpoint"] = cfg.s3_endpoint
    if cfg.location.startswith("file://"):
        Path(cfg.location[len("file://"):]).mkdir(parents=True, exist_ok=True)
    return SqlCatalog("ifc_scan", **props)


def _identifier(cfg: IcebergConfig, table: str) -> str:
    return f"{cfg.namespace}.{table}"


def _table_for(catalog, cfg: IcebergConfig, table: str, schema: pa.Schema):
    """The Iceberg table, created from the DuckDB table's Arrow schema when missing (a concurrent creator
    may win: its table is used), and given by name any column the warehouse has and it lacks."""
    from pyiceberg.exceptions import TableAlreadyExistsError
    from sqlalchemy.exc import IntegrityError
    ident = _identifier(cfg, table)
    if not catalog.table_exists(ident):
        try:
            catalog.create_namespace_if_not_exists(cfg.namespace)
        except IntegrityError:      # another process created it between pyiceberg's check and its insert
            pass
        try:
            return catalog.create_table(ident, schema=schema, properties=TABLE_PROPERTIES)
        except TableAlreadyExistsError:
            pass
    tbl = catalog.load_table(ident)
    if set(schema.names) - {f.name for f in tbl.schema().fields}:
        with tbl.update_schema() as update:
            update.union_by_name(schema)
    return tbl


def _commit_overwrite(con, catalog, cfg: IcebergConfig, table: str) -> TableSnapshot:
    """Replace the Iceberg table's rows with the DuckDB table's in one commit (a delete, then the rows
    appended CHUNK_ROWS at a time, so memory holds one chunk, not the table). When another writer's commit
    lands first and pyiceberg's own retries give up, the table is read again and the overwrite redone
    (bounded, with jittered backoff): each commit is one writer's whole table, never a mix."""
    import pyarrow as pa
    from pyiceberg.exceptions import CommitFailedException, ValidationException
    from pyiceberg.expressions import AlwaysTrue
    for attempt in range(COMMIT_ATTEMPTS):
        reader = con.sql(f'SELECT * FROM "{table}"').to_arrow_reader(CHUNK_ROWS)
        tbl = _table_for(catalog, cfg, table, reader.schema)
        rows = 0
        try:
            with tbl.transaction() as tx, warnings.catch_warnings():
                # an empty table's delete matches nothing, which pyiceberg warns about
                warnings.filterwarnings("ignore", "Delete operation did not match any records")
                tx.delete(AlwaysTrue())
                for batch in reader:
                    tx.append(pa.Table.from_batches([batch]))
                    rows += batch.num_rows
                if rows == 0:       # a snapshot all the same: the state "no rows" is recorded like any other
                    tx.append(reader.schema.empty_table())
            return TableSnapshot(table, tbl.current_snapshot().snapshot_id, rows)
        except (CommitFailedException, ValidationException):
            if attempt == COMMIT_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.05, 0.2) * 2 ** attempt)
    raise AssertionError("unreachable")


def publish_tables(con, cfg: IcebergConfig, catalog=None, tables: list[str] | None = None) -> list[TableSnapshot]:
    """Commit every table of the DuckDB warehouse `con` (or those named) to the Iceberg catalog, one
    commit per table. Returns each table's committed snapshot."""
    catalog = catalog or open_catalog(cfg)
    return [_commit_overwrite(con, catalog, cfg, table) for table in tables or base_tables(con)]


def current_snapshots(cfg: IcebergConfig, catalog=None) -> dict[str, int | None]:
    """table -> its current snapshot id (None: created but never committed), for every table of the namespace."""
    catalog = catalog or open_catalog(cfg)
    out = {}
    for ident in catalog.list_tables(cfg.namespace):
        snap = catalog.load_table(ident).current_snapshot()
        out[ident[-1]] = snap.snapshot_id if snap else None
    return dict(sorted(out.items()))


def _snapshot_reader(tbl, snapshot_id: int) -> pa.RecordBatchReader:
    """The snapshot's rows as a stream read one data file at a time, in the scan's file order (pyiceberg's
    own batch reader reads every file of the scan at once, so a load would hold the whole table)."""
    import pyarrow as pa
    from pyiceberg.io.pyarrow import ArrowScan, schema_to_pyarrow
    scan = tbl.scan(snapshot_id=snapshot_id)
    target = schema_to_pyarrow(scan.projection())
    reader = ArrowScan(scan.table_metadata, scan.io, scan.projection(), scan.row_filter, scan.case_sensitive)

    def batches():
        for task in scan.plan_files():
            for batch in reader.to_record_batches([task]):
                yield batch.cast(target)
    return pa.RecordBatchReader.from_batches(target, batches())


def load_tables(con, cfg: IcebergConfig, snapshots: dict[str, int | None] | None = None,
                catalog=None) -> list[TableSnapshot]:
    """Replace the rows of each table of `con` (a warehouse whose schema is in place: warehouse/db.py
    connect) with the rows of the given Iceberg snapshot (default: every table's current one), streamed into
    DuckDB one data file at a time; the tables are filled in one DuckDB transaction."""
    catalog = catalog or open_catalog(cfg)
    snapshots = current_snapshots(cfg, catalog) if snapshots is None else snapshots
    local = set(base_tables(con))
    unknown = sorted(set(snapshots) - local)
    if unknown:
        raise ValueError(f"Iceberg namespace {cfg.namespace} has tables this release's warehouse does not: "
                         f"{', '.join(unknown)} (published by a newer release?)")
    out = []
    con.execute("BEGIN TRANSACTION")
    try:
        for table, snapshot_id in sorted(snapshots.items()):
            con.execute(f'DELETE FROM "{table}"')
            if snapshot_id is not None:
                batches = _snapshot_reader(catalog.load_table(_identifier(cfg, table)), snapshot_id)  # noqa: F841
                con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM batches')   # DuckDB reads it by name
            out.append(TableSnapshot(table, snapshot_id, con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return out


# ---- what a published week read -----------------------------------------------------------------------

def record_path(reports: str | Path, week: str) -> Path:
    return Path(reports) / RECORDS_DIR / f"{week}.json"


def record_week_tables(reports: str | Path, week: str, cfg: IcebergConfig, loaded: list[TableSnapshot],
                       kpis_sha256: str) -> Path:
    """Write reports/tables/<week>.json: the Iceberg snapshots the week's figures were computed from, and the
    sha256 of the kpis.json they gave. The catalog URI is left out (it may carry credentials)."""
    path = record_path(reports, week)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"week": week, "kpis_sha256": kpis_sha256, "namespace": cfg.namespace, "warehouse": cfg.location,
           "snapshots": {t.table: t.snapshot_id for t in sorted(loaded)},
           "rows": {t.table: t.rows for t in sorted(loaded)}}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_week_record(reports: str | Path, week: str) -> dict:
    path = record_path(reports, week)
    try:
        doc = json.loads(path.read_text())
        return {**doc, "namespace": str(doc["namespace"]),
                "snapshots": {t: (int(s) if s is not None else None) for t, s in doc["snapshots"].items()}}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no Iceberg snapshot record for {week} (published without "
                                "`ifc-scan report --from-tables`?)") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a snapshot record ({exc})") from None
