"""Org-scale benchmark: for each workload, a generated landing zone (bench/gen_org.py) run through the CLI
as a user would, each step in its own process, timed, with its peak RSS (bench/measure.py: the
larger of /usr/bin/time's and the sampled sum over the command's process tree).

    python bench/bench_org.py [--only NAME] [--keep DIR]

Steps: `ifc-scan ingest` (everything), `ifc-scan report --all` (lifecycle, every week's KPIs, every
report), then the scheduled weekly job's share: the last week recomputed and re-rendered alone
(`ifc-scan report --week LAST` after its stored row and folder are removed), and a re-ingest with
nothing new. Prints a Markdown table row per workload (BENCHMARKS.md). With --keep, a workload's landing
zone is kept with its generator summary (landing.json) and reused by the next run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
import measure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
WORKLOADS = {   # name: (images, days, findings per report)
    "10img-1y-60": (10, 364, 60),
    "100img-1y-60": (100, 364, 60),
    "100img-3y-60": (100, 3 * 364, 60),
    "500img-8w-60": (500, 56, 60),
    "10img-1y-1000": (10, 364, 1000),
}


def timed(cmd: list[str], log: Path) -> tuple[float, int]:
    return measure.timed(cmd, log, cwd=ROOT)


def run(name: str, work: Path) -> dict:
    images, days, findings = WORKLOADS[name]
    land, wh, rep = work / "landing", work / "w.duckdb", work / "reports"
    if (work / "landing.json").exists():      # a kept landing zone is reused (same generator, same seed)
        gen = json.loads((work / "landing.json").read_text())
    else:
        shutil.rmtree(land, ignore_errors=True)
        gen = json.loads(subprocess.run([sys.executable, str(ROOT / "bench" / "gen_org.py"), str(land), "--images",
                                         str(images), "--days", str(days), "--findings", str(findings)],
                                        capture_output=True, text=True, check=True).stdout)
        (work / "landing.json").write_text(json.dumps(gen))
    for old in [rep, *work.glob("w.duckdb*")]:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    cli = [str(BIN / "ifc-scan")]
    ingest = timed(cli + ["ingest", "--landing", str(land), "--warehouse", str(wh)], work / "ingest.log")
    backfill = timed(cli + ["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(rep), "--all"],
                     work / "report.log")
    weeks = [json.loads(x) for x in (work / "report.log").read_text().splitlines() if x.startswith("{")]
    last = weeks[-1]["week"]
    with duckdb.connect(str(wh)) as con:
        con.execute("DELETE FROM weekly_kpis WHERE week = ?", (last,))
    shutil.rmtree(rep / last)
    weekly = timed(cli + ["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(rep), "--week", last],
                   work / "weekly.log")
    again = timed(cli + ["ingest", "--landing", str(land), "--warehouse", str(wh)], work / "reingest.log")
    rows = duckdb.connect(str(wh), read_only=True).execute("SELECT count(*) FROM scan_vulnerabilities").fetchone()[0]
    return {"workload": name, "images": images, "days": days, "findings_per_report": findings, "files": gen["files"],
            "vuln_rows": rows, "weeks": len(weeks), "ingest_s": round(ingest[0], 1), "ingest_mb": ingest[1],
            "backfill_s": round(backfill[0], 1), "backfill_mb": backfill[1], "weekly_s": round(weekly[0], 1),
            "weekly_mb": weekly[1], "reingest_s": round(again[0], 1), "warehouse_mb": round(wh.stat().st_size / 2**20),
            "reports_mb": round(sum(p.stat().st_size for p in rep.rglob("*") if p.is_file()) / 2**20)}


def main(argv=None) -> int:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("--only", action="append", choices=sorted(WORKLOADS))
    a.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one, removed)")
    args = a.parse_args(argv)
    print("| workload | files | vuln rows | weeks | ingest s (MB) | ingest + all weeks s (MB) | one weekly job s (MB) "
          "| re-ingest, nothing new s | warehouse MB | reports MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.only or list(WORKLOADS):
        base = args.keep or Path(tempfile.mkdtemp(prefix="ifc-bench-"))
        work = base / name
        work.mkdir(parents=True, exist_ok=True)
        try:
            r = run(name, work)
        finally:
            if not args.keep:
                shutil.rmtree(base, ignore_errors=True)
        print(f"| {name} | {r['files']:,} | {r['vuln_rows']:,} | {r['weeks']} | {r['ingest_s']} ({r['ingest_mb']}) "
              f"| {round(r['ingest_s'] + r['backfill_s'], 1)} ({max(r['ingest_mb'], r['backfill_mb'])}) "
              f"| {r['weekly_s']} ({r['weekly_mb']}) | {r['reingest_s']} | {r['warehouse_mb']} | {r['reports_mb']} |",
              flush=True)
        print(json.dumps(r), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
