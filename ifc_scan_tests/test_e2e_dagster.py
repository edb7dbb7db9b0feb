"""End to end through the real Dagster webserver and daemon (`dagster dev -w workspace.yaml`).

Starts it on 127.0.0.1 on a free port with a temporary DAGSTER_HOME holding the committed dagster.yaml,
backfills 4 weekly partitions through GraphQL, then launches two overlapping DuckDB-touching runs and
checks both succeed (the pool of size 1 queues them). Stops every process it started.
"""

import os
import shutil
import subprocess
import sys
from datetime import date

import pytest

from ifc_scan.demo.generator import generate
from ifc_scan_tests import servers
from ifc_scan_tests.servers import ROOT, gql, wait_for
WEEKS = ["2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23"]
pytestmark = pytest.mark.e2e


@pytest.fixture
def dagster_dev(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    generate(land, weeks=6, seed=8, end=date(2026, 11, 30))
    subprocess.run([sys.executable, "-m", "ifc_scan.cli", "ingest", "--landing", str(land), "--warehouse", str(wh)],
                   check=True, capture_output=True, cwd=ROOT)
    env = {**os.environ, "IFC_SCAN_LANDING": str(land), "IFC_SCAN_WAREHOUSE": str(wh), "IFC_SCAN_REPORTS": str(rep)}
    log = tmp_path / "dagster-dev.log"
    with servers.dagster_dev(home, env, log) as port:
        yield {"port": port, "reports": rep, "log": log}


RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"


def test_backfill_and_overlapping_runs_through_the_ui_api(dagster_dev):
    port = dagster_dev["port"]
    assets = gql(port, "{ assetNodes { assetKey { path } isPartitioned } }")["assetNodes"]
    keys = {tuple(a["assetKey"]["path"]): a["isPartitioned"] for a in assets}
    assert keys == {("github_evidence",): False, ("warehouse_ingest",): False, ("finding_lifecycle",): False,
                    ("weekly_report",): True}

    done = servers.backfill(port, WEEKS, dagster_dev["log"])
    assert len(done["runs"]) == 1                       # BackfillPolicy.single_run(): one run for four weeks
    for week in ("2026-W45", "2026-W46", "2026-W47", "2026-W48"):
        assert (dagster_dev["reports"] / week / "report.html").is_file(), week

    # two overlapping runs that both open DuckDB: the pool of size 1 queues the second, neither fails
    sel = {"repositoryLocationName": "ifc_scan", "repositoryName": "__repository__"}
    launch = """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
        __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }"""
    ids = []
    for job, tags in (("ingest_job", []), ("weekly_job", [{"key": "dagster/partition", "value": WEEKS[-1]}])):
        r = gql(port, launch, {"p": {"selector": {**sel, "jobName": job}, "executionMetadata": {"tags": tags}}})["launchRun"]
        assert r["__typename"] == "LaunchRunSuccess", r
        ids.append(r["run"]["runId"])

    def finished():
        st = [gql(port, RUN_STATUS, {"id": i})["runOrError"]["status"] for i in ids]
        return st if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in st) else None
    assert wait_for(finished, 420, "both runs to finish", every=2) == ["SUCCESS", "SUCCESS"]

    # the asset graph as a person sees it: headless Chromium on the lineage page, screenshot saved
    chromium = shutil.which("chromium")
    if chromium is None:
        return  # the browser half needs Debian's chromium (.ci/run installs it); the API half has run
    assert gql(port, "mutation { setNuxSeen }")["setNuxSeen"] is True      # dismiss the first-visit modal
    graph = f"http://127.0.0.1:{port}/assets/weekly_report?view=lineage&lineageScope=upstream"
    catalog = f"http://127.0.0.1:{port}/assets"
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={dagster_dev['reports'].parent / 'chr'}",
             "--window-size=1400,800", "--virtual-time-budget=25000"]
    # the catalog lists every asset as text (the lineage graph lays out after Chromium's DOM snapshot)
    dom = subprocess.run([*flags, "--dump-dom", catalog], capture_output=True, text=True, timeout=120).stdout
    for asset in ("warehouse_ingest", "finding_lifecycle", "weekly_report"):
        assert asset in dom, asset
    shot = ROOT / "reports" / "ui-asset-graph.png"
    subprocess.run([*flags, f"--screenshot={shot}", graph], capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
