"""Year-scale benchmark: 10 images, 52 weeks of nightly + CI scans; ingest + lifecycle + all weeks' KPIs.
Run: .venv/bin/python bench/bench_kpis.py   (prints seconds and peak RSS)"""
import resource
import shutil
import tempfile
import time
from pathlib import Path

from ifc_scan.demo.generator import generate
from ifc_scan.ingest.runner import ingest
from ifc_scan.kpis.stage import compute_and_store, data_weeks
from ifc_scan.lifecycle.store import derive_lifecycle
from ifc_scan.policy import load_policy
from ifc_scan.warehouse.db import connect

tmp = Path(tempfile.mkdtemp())
apps = tuple(f"app-{i:02d}" for i in range(10))
t0 = time.time()
stats = generate(tmp / "landing", weeks=52, seed=11, apps=apps)
t1 = time.time()
ingest(tmp / "landing", tmp / "w.duckdb", progress=lambda m: None)
t2 = time.time()
p = load_policy()
with connect(tmp / "w.duckdb") as con:
    derive_lifecycle(con, p)
    weeks = data_weeks(con, p)
    compute_and_store(con, p, weeks, force=True)
t3 = time.time()
print(f"landing: {stats}; generate {t1-t0:.1f}s; ingest {t2-t1:.1f}s; lifecycle+{len(weeks)} weeks KPIs {t3-t2:.1f}s; "
      f"ingest+KPIs {t3-t1:.1f}s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024:.0f} MB")
shutil.rmtree(tmp)
