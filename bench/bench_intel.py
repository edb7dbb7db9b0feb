"""EPSS ingest: time and peak memory of FIRST-sized files (300,000 rows each), and the empty ingest as the floor.

Writes `--weeks` ISO weeks of `--per-week` daily EPSS files (each 300,000 CVEs, gzip, FIRST's first line
and header) into a landing zone, then in separate processes: `ifc-scan ingest` on an empty landing zone,
and on the EPSS files. Only the newest file of each week keeps its rows; every file is read (checked) as a
stream. Prints wall time, peak RSS, files and rows kept.
Run: .venv/bin/python bench/bench_intel.py [--weeks 4] [--per-week 3] [--rows 300000]
"""

import argparse
import gzip
import json
import os
import random
import shutil
import sys
import tempfile
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def epss_file(day: date, rows: int, rng: random.Random) -> bytes:
    lines = [f"#model_version:v2025.03.14,score_date:{day.isoformat()}T00:00:00Z", "cve,epss,percentile"]
    lines += [f"CVE-{1999 + i % 28}-{1000 + i},{rng.random() ** 6:.5f},{i / rows:.5f}" for i in range(rows)]
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weeks", type=int, default=4)
    ap.add_argument("--per-week", type=int, default=3)
    ap.add_argument("--rows", type=int, default=300_000)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ifc-bench-intel-"))
    landing, empty = tmp / "landing", tmp / "empty"
    empty.mkdir()
    rng, monday, size = random.Random(1), date(2026, 11, 2), 0
    for w in range(a.weeks):
        for d in range(a.per_week):
            day = monday + timedelta(weeks=w, days=d)
            p = landing / "enrichment" / "epss" / day.isoformat() / f"epss_scores-{day.isoformat()}.csv.gz"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(epss_file(day, a.rows, rng))
            size += p.stat().st_size
    cli = [PY, "-m", "ifc_scan.cli", "ingest"]
    env = {**os.environ, "IFC_SCAN_READERS": "0"}
    m0 = run_measured(cli + ["--landing", str(empty), "--warehouse", str(tmp / "e.duckdb")], cwd=ROOT, env=env)
    m1 = run_measured(cli + ["--landing", str(landing), "--warehouse", str(tmp / "w.duckdb")], cwd=ROOT, env=env)
    if m1.returncode:
        raise SystemExit(m1.stderr[-2000:])
    rows = json.loads(m1.stdout)["rows"]
    files = a.weeks * a.per_week
    print(f"corpus: {files} EPSS files ({a.weeks} weeks x {a.per_week}), {a.rows:,} rows each, {size / 1e6:.1f} MB gzip")
    print(f"ifc-scan ingest, empty landing zone (start-up): {m0.wall_s:.2f} s, peak RSS {m0.peak_mb} MB")
    print(f"ifc-scan ingest, EPSS files: {m1.wall_s:.2f} s (net {m1.wall_s - m0.wall_s:.2f} s, "
          f"{(m1.wall_s - m0.wall_s) / files:.2f} s a file), peak RSS {m1.peak_mb} MB; "
          f"epss_files +{rows.get('epss_files', 0)}, epss_scores +{rows.get('epss_scores', 0):,}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
