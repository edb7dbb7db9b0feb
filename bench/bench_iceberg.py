"""Iceberg profile benchmark: publish and load times and peak memory of an org-scale warehouse.

    python bench/bench_iceberg.py [--images 100] [--days 91] [--findings 60] [--keep DIR]

A generated landing zone (bench/gen_org.py) is ingested and every week reported (so the derived tables
are filled), then, against a PostgreSQL catalog and a SeaweedFS S3 server started on 127.0.0.1 (the
tests' servers, ifc_scan_tests/servers.py) and against a shared folder with a SQLite catalog, each step
in its own process, timed, with its peak RSS (bench/measure.py): `ifc-scan tables publish` (every table,
one commit each), `ifc-scan tables load` into an empty warehouse, and the last week reported from the
tables (`ifc-scan report --from-tables --week LAST`), whose kpis.json must equal the DuckDB file's.
Prints one Markdown table row per profile (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
import measure  # noqa: E402
from ifc_scan_tests import servers  # noqa: E402

CLI = [sys.executable, "-m", "ifc_scan.cli"]


def step(cmd: list[str], log: Path, env: dict) -> tuple[float, int, str]:
    """Wall seconds, peak MB and stdout of one CLI command; a failure stops the benchmark."""
    r = measure.run_measured(CLI + cmd, cwd=ROOT, env=env)
    log.write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r.wall_s, r.peak_mb, r.stdout


def build(work: Path, images: int, days: int, findings: int, env: dict) -> tuple[Path, Path, str, dict]:
    land, wh, rep = work / "landing", work / "w.duckdb", work / "reports-file"
    subprocess.run([sys.executable, str(ROOT / "bench" / "gen_org.py"), str(land), "--images", str(images), "--days",
                    str(days), "--findings", str(findings)], check=True, capture_output=True)
    step(["ingest", "--landing", str(land), "--warehouse", str(wh)], work / "ingest.log", env)
    _, _, out = step(["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(rep), "--all",
                      "--signing-key", ""], work / "report.log", env)
    last = [json.loads(x) for x in out.splitlines() if x.startswith("{")][-1]["week"]
    with duckdb.connect(str(wh), read_only=True) as con:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_type = 'BASE TABLE'").fetchall()]
        rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    return land, wh, last, rows


def profile_run(name: str, work: Path, land: Path, wh: Path, last: str, env: dict) -> dict:
    pub = step(["tables", "publish", "--warehouse", str(wh)], work / f"{name}-publish.log", env)
    load = step(["tables", "load", "--warehouse", str(work / f"{name}-loaded.duckdb")], work / f"{name}-load.log", env)
    rep = work / f"reports-{name}"
    week = step(["report", "--from-tables", "--landing", str(land), "--reports", str(rep), "--week", last,
                 "--signing-key", ""], work / f"{name}-report.log", env)
    same = (rep / last / "kpis.json").read_bytes() == (work / "reports-file" / last / "kpis.json").read_bytes()
    return {"profile": name, "publish_s": round(pub[0], 1), "publish_mb": pub[1], "load_s": round(load[0], 1),
            "load_mb": load[1], "week_s": round(week[0], 1), "week_mb": week[1], "kpis_identical": same}


def main(argv=None) -> int:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--images", type=int, default=100)
    a.add_argument("--days", type=int, default=91)
    a.add_argument("--findings", type=int, default=60)
    a.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one, removed)")
    args = a.parse_args(argv)
    work = args.keep or Path(tempfile.mkdtemp(prefix="ifc-bench-iceberg-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        land, wh, last, rows = build(work, args.images, args.days, args.findings, env)
        results = []
        with servers.postgres_server() as (pg_port, _), servers.seaweedfs_server() as (endpoint, keys):
            s3 = {**env, **keys, "IFC_SCAN_ICEBERG_CATALOG": f"postgresql+psycopg2://ifc@127.0.0.1:{pg_port}/dagster",
                  "IFC_SCAN_ICEBERG_WAREHOUSE": "s3://ifc-warehouse/bench", "IFC_SCAN_S3_ENDPOINT": endpoint}
            results.append(profile_run("postgres+s3", work, land, wh, last, s3))
        folder = {**env, "IFC_SCAN_ICEBERG_CATALOG": f"sqlite:///{work}/shared/catalog.db",
                  "IFC_SCAN_ICEBERG_WAREHOUSE": str(work / "shared" / "tables")}
        results.append(profile_run("sqlite+folder", work, land, wh, last, folder))
        total = sum(rows.values())
        print(f"warehouse {wh.stat().st_size / 2**20:.0f} MB, {len(rows)} tables, {total:,} rows "
              f"(finding_events {rows.get('finding_events', 0):,}, scan_vulnerabilities "
              f"{rows.get('scan_vulnerabilities', 0):,}); last week {last}")
        print("| profile | publish s (MB) | load s (MB) | last week from the tables s (MB) | kpis.json identical |")
        print("|---|---|---|---|---|")
        for r in results:
            print(f"| {r['profile']} | {r['publish_s']} ({r['publish_mb']}) | {r['load_s']} ({r['load_mb']}) "
                  f"| {r['week_s']} ({r['week_mb']}) | {'yes' if r['kpis_identical'] else 'NO'} |")
            print(json.dumps(r), file=sys.stderr)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
