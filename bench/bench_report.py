"""Report with 100,000 open findings: time to compute and write the week, page size, and load time in
headless Chromium (dump-dom after all scripts ran). Run: .venv/bin/python bench/bench_report.py"""
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ifc_scan.ingest.runner import ingest  # noqa: E402
from ifc_scan.lifecycle.store import derive_lifecycle  # noqa: E402
from ifc_scan.policy import load_policy  # noqa: E402
from ifc_scan.pipeline import publish_weeks  # noqa: E402
from ifc_scan.warehouse.db import connect  # noqa: E402
from ifc_scan_tests.scenario import Scenario, vuln  # noqa: E402

N = 100_000
tmp = Path(tempfile.mkdtemp())
sc = Scenario(tmp)
sev = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]
vulns = [vuln(f"CVE-2026-{i:06d}", f"pkg{i % 3000}", sev[i % 5]) for i in range(N)]
for day in (2, 3, 4):      # three nightly scans of the same image: 3 timeline moments x 100k findings
    sc.registry_scan("A", datetime(2026, 3, day, 2), vulns)
t0 = time.perf_counter()
ingest(sc.landing, tmp / "w.duckdb", progress=lambda m: None)
t1 = time.perf_counter()
policy = load_policy()
with connect(tmp / "w.duckdb") as con:
    derive_lifecycle(con, policy)
    publish_weeks(con, policy, [date(2026, 3, 2)], tmp / "reports", landing=str(sc.landing))
t2 = time.perf_counter()
week = tmp / "reports" / "2026-W10"
k = json.loads((week / "kpis.json").read_text())
page = week / "report.html"
t = time.perf_counter()
dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                      "--disable-background-networking", f"--user-data-dir={tmp / 'chr'}", "--virtual-time-budget=10000",
                      "--dump-dom", page.as_uri()], capture_output=True, text=True).stdout
t3 = time.perf_counter() - t
svgs = dom.count('class="main-svg"')
print(f"{N} findings ({k['open_backlog']['total']} open at T); ingest {t1 - t0:.1f} s; lifecycle + KPIs (12 weeks "
      f"of trend) + report {t2 - t1:.1f} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
print(f"report.html {page.stat().st_size / 1e6:.1f} MB (about 4.6 MB of it plotly), findings.csv "
      f"{(week / 'findings.csv').stat().st_size / 1e6:.1f} MB; rows in the page {dom.count('data-sev=')}; "
      f"Chromium load + scripts + DOM dump {t3:.1f} s; plotly SVG layers in the DOM {svgs} (4 charts)")
shutil.rmtree(tmp)
