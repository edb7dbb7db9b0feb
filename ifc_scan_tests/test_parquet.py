"""The Parquet warehouse gives the same figures as the DuckDB file, and readers need no lock."""

import json
from datetime import date, timedelta

import duckdb

from ifc_scan.demo.generator import generate
from ifc_scan.ingest.runner import ingest
from ifc_scan.kpis.stage import WeeklyStage
from ifc_scan.lifecycle.store import derive_lifecycle
from ifc_scan.policy import load_policy
from ifc_scan.warehouse.db import connect
from ifc_scan.warehouse.parquet import connect_parquet, publish_parquet


def test_kpis_on_parquet_equal_kpis_on_the_duckdb_file(tmp_path):
    generate(tmp_path / "landing", weeks=10, seed=21, end=date(2026, 3, 9))
    ingest(tmp_path / "landing", tmp_path / "w.duckdb", progress=lambda m: None)
    policy = load_policy()
    mondays = [date(2025, 12, 29) + timedelta(weeks=i) for i in range(10)]
    with connect(tmp_path / "w.duckdb") as con:
        derive_lifecycle(con, policy)
        counts = publish_parquet(con, tmp_path / "parquet")
        on_file = [WeeklyStage(con, policy).compute(m).kpis_json for m in mondays]
        # while the writer holds its connection, a reader opens the Parquet files
        pq = WeeklyStage(connect_parquet(tmp_path / "parquet"), policy)
        on_parquet = [pq.compute(m).kpis_json for m in mondays]
    assert on_parquet == on_file
    assert any(json.loads(k)["new_findings"]["total"] for k in on_file)      # weeks with something in them
    # Hive layout by week; every row is there
    weeks = sorted(p.name for p in (tmp_path / "parquet" / "scans").iterdir())
    assert weeks[0].startswith("week=20") and len(weeks) >= 10
    pq = connect_parquet(tmp_path / "parquet")
    for table, n in counts.items():
        assert pq.execute(f"select count(*) from {table}").fetchone()[0] == n, table
    # plain DuckDB (any BI tool) reads a partition in place
    one = duckdb.connect().execute(f"select count(*) from read_parquet('{tmp_path / 'parquet' / 'scans' / weeks[-1]}/*.parquet')").fetchone()[0]
    assert one > 0


def test_cli_report_reads_parquet_when_configured(tmp_path, monkeypatch):
    from ifc_scan.cli import main
    generate(tmp_path / "landing", weeks=3, seed=22, end=date(2026, 3, 9))
    args = ["--landing", str(tmp_path / "landing"), "--warehouse", str(tmp_path / "w.duckdb")]
    main(["ingest", *args])
    main(["report", *args, "--reports", str(tmp_path / "file"), "--week", "2026-W09"])
    monkeypatch.setenv("IFC_SCAN_PARQUET_DIR", str(tmp_path / "parquet"))
    main(["report", *args, "--reports", str(tmp_path / "pq"), "--week", "2026-W09"])
    assert (tmp_path / "parquet" / "scan_vulnerabilities").is_dir()
    assert (tmp_path / "pq" / "2026-W09" / "kpis.json").read_bytes() == (tmp_path / "file" / "2026-W09" / "kpis.json").read_bytes()
