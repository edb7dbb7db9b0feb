"""End to end through the real Dagster webserver and daemon (`dagster dev -w workspace.yaml`).

Starts it on 127.0.0.1 on a free port with a temporary DAGSTER_HOME holding the committed dagster.yaml,
builds the lifecycle with ingest_job, backfills 4 weekly partitions through GraphQL as the UI does,
checks that each partition's materialization and check results carry that week's own figures (equal
to its kpis.json), then launches two overlapping DuckDB-touching runs and checks both succeed (the
pool of size 1 queues them). Saves screenshots of the partition view and of a failing check. Stops
every process it started.
"""

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta

import pytest

from ifc_scan.defs.weekly import CHECKS
from ifc_scan.demo.generator import generate
from ifc_scan_tests import servers
from ifc_scan_tests.servers import ROOT, gql
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


MATERIALIZATIONS = """query($k: AssetKeyInput!, $p: [String!]) { assetOrError(assetKey: $k) { ... on Asset {
    assetMaterializations(partitions: $p) { partition metadataEntries { label __typename
      ... on TextMetadataEntry { text } ... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue }
      ... on PathMetadataEntry { path } ... on JsonMetadataEntry { jsonString } } } } } }"""
CHECK_EXECUTIONS = """query($k: AssetKeyInput!, $c: String!, $p: String) {
    assetCheckExecutions(assetKey: $k, checkName: $c, partition: $p, limit: 5) {
      partition evaluation { success partition metadataEntries { label __typename
        ... on JsonMetadataEntry { jsonString } ... on IntMetadataEntry { intValue } } } } }"""


def _entry(e):
    for key in ("text", "intValue", "floatValue", "path"):
        if key in e:
            return e[key]
    return json.loads(e["jsonString"]) if "jsonString" in e else None


def test_backfill_and_overlapping_runs_through_the_ui_api(dagster_dev):
    port = dagster_dev["port"]
    assets = gql(port, "{ assetNodes { assetKey { path } isPartitioned } }")["assetNodes"]
    keys = {tuple(a["assetKey"]["path"]): a["isPartitioned"] for a in assets}
    assert keys == {("github_evidence",): False, ("exception_history",): False, ("ticket_evidence",): False,
                    ("warehouse_ingest",): False, ("finding_lifecycle",): False,
                    ("weekly_kpis",): True, ("weekly_report",): True, ("audit_period_pack",): False,
                    ("intel_evidence",): False, ("iceberg_tables",): False}

    assert servers.wait_runs(port, [servers.launch(port, "ingest_job")]) == ["SUCCESS"]      # builds the lifecycle
    done = servers.backfill(port, WEEKS, dagster_dev["log"], assets=("weekly_kpis", "weekly_report"))
    assert len(done["runs"]) == 1                       # BackfillPolicy.single_run(): one run for four weeks
    labels = dict(zip(WEEKS, ("2026-W45", "2026-W46", "2026-W47", "2026-W48")))
    for week in labels.values():
        assert (dagster_dev["reports"] / week / "report.html").is_file(), week

    # each partition's latest materialization carries its own week's figures and report path
    kp = {key: json.loads((dagster_dev["reports"] / w / "kpis.json").read_text()) for key, w in labels.items()}
    for asset in ("weekly_kpis", "weekly_report"):
        mats = gql(port, MATERIALIZATIONS, {"k": {"path": [asset]}, "p": WEEKS})["assetOrError"]["assetMaterializations"]
        assert sorted(m["partition"] for m in mats) == WEEKS, asset
        for m in mats:
            meta = {e["label"]: _entry(e) for e in m["metadataEntries"]}
            key, k = m["partition"], kp[m["partition"]]
            assert meta["iso_week"] == labels[key]
            if asset == "weekly_kpis":
                assert meta["critical_in_prod"] == k["critical_in_prod"]["count"]
                assert meta["nightly_pct"] == (k["coverage"]["nightly"]["pct"] if k["coverage"]["nightly"]["pct"]
                                               is not None else "n/a")
                assert meta["open_overdue"] == sum(k["sla"][s]["open_overdue"] or 0 for s in k["sla"])
            else:
                assert meta["report_path"] == str((dagster_dev["reports"] / labels[key] / "report.html").resolve())
    # each partition's check results match that week's figures, with the offending items
    failing_check = None     # a check that fails in the last week, for the screenshot
    for name in CHECKS:
        ex = gql(port, CHECK_EXECUTIONS, {"k": {"path": ["weekly_kpis"]}, "c": name, "p": WEEKS[-1]})
        if not ex["assetCheckExecutions"][0]["evaluation"]["success"]:
            failing_check = name
    for key, k in kp.items():
        ex = gql(port, CHECK_EXECUTIONS, {"k": {"path": ["weekly_kpis"]}, "c": "nightly_coverage", "p": key})
        ev = ex["assetCheckExecutions"][0]["evaluation"]
        assert ev["partition"] == key
        assert ev["success"] == (k["coverage"]["nightly"]["pct"] in (None, 100.0))
        items = next(_entry(e) for e in ev["metadataEntries"] if e["label"] == "offending_items")
        assert items == k["coverage"]["nightly"]["gaps"]

    # two overlapping runs that both open DuckDB: the pool of size 1 queues the second, neither fails
    ids = [servers.launch(port, "ingest_job"), servers.launch(port, "weekly_job", [{"key": "dagster/partition", "value": WEEKS[-1]}])]
    assert servers.wait_runs(port, ids) == ["SUCCESS", "SUCCESS"]

    # the audit-period pack of the backfilled weeks, launched as from the launchpad with the period as config
    pid = servers.launch(port, "period_job", run_config={"ops": {"audit_period_pack": {"config": {
        "period_from": "2026-W45", "period_to": "2026-W48", "sample": 3, "seed": 1}}}})     # = WEEKS
    assert servers.wait_runs(port, [pid]) == ["SUCCESS"]
    pack = dagster_dev["reports"] / "periods" / f"{WEEKS[0]}_{date.fromisoformat(WEEKS[-1]) + timedelta(days=6)}"
    assert (pack / "period.html").is_file() and pack.with_suffix(".zip").is_file()
    assert (pack / "verification.txt").read_text().count("VERIFIED") == len(WEEKS)

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
    for asset in ("warehouse_ingest", "finding_lifecycle", "weekly_kpis", "weekly_report"):
        assert asset in dom, asset
    pages = {"ui-asset-graph.png": graph, "period-pack.png": (pack / "period.html").as_uri(),
             "ui-weekly-kpis-partitions.png": f"http://127.0.0.1:{port}/assets/weekly_kpis?view=partitions"
                                             f"&partition={WEEKS[-1]}",
             "ui-failing-check.png": f"http://127.0.0.1:{port}/assets/weekly_kpis?view=checks"
                                     + (f"&checkDetail={failing_check}" if failing_check else "")}
    (ROOT / "reports").mkdir(exist_ok=True)   # a fresh clone has no reports/
    for name, url in pages.items():
        shot = ROOT / "reports" / name
        subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000, name
