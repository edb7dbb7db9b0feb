"""Team profile: `dagster dev` with run/event/schedule storage in a real PostgreSQL server on 127.0.0.1.
Backfills 4 weeks through GraphQL, checks the runs are recorded in PostgreSQL, and that the reports are
byte for byte those of the embedded profile (apart from run IDs and timestamps)."""

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date

import pytest

from ifc_scan.demo.generator import generate
from ifc_scan_tests import servers
from ifc_scan_tests.servers import ROOT

pytestmark = pytest.mark.e2e
WEEKS = ["2026-11-02", "2026-11-09", "2026-11-16", "2026-11-23"]
LABELS = ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]


def normalised_html(path):
    text = path.read_text()
    text = re.sub(r"generated \d{4}-\d{2}-\d{2}T[\d:]+Z", "generated <time>", text)
    text = re.sub(r"ifc-scan verify --reports \S+", "ifc-scan verify --reports <dir>", text)
    return re.sub(r"Dagster run: [^<]+\.", "Dagster run: <id>.", text)


def test_postgres_profile_backfill_matches_the_embedded_profile(tmp_path):
    try:
        import psycopg2
    except ImportError:
        pytest.skip("dagster-postgres not installed (pip install -e '.[postgres]'; make test installs it)")
    if servers.PG_BIN is None:
        pytest.skip("PostgreSQL server not installed (apt-get install postgresql; .ci/run installs it)")
    land = tmp_path / "landing"
    generate(land, weeks=6, seed=8, end=date(2026, 11, 30))
    base_env = dict(os.environ)
    sides = {}
    for side in ("postgres", "embedded"):
        wh, rep = tmp_path / f"{side}.duckdb", tmp_path / f"reports-{side}"
        subprocess.run([sys.executable, "-m", "ifc_scan.cli", "ingest", "--landing", str(land), "--warehouse", str(wh)],
                       check=True, capture_output=True, cwd=ROOT)
        sides[side] = {"IFC_SCAN_LANDING": str(land), "IFC_SCAN_WAREHOUSE": str(wh), "IFC_SCAN_REPORTS": str(rep)}
    with servers.postgres_server() as (pg_port, pg_env):
        home = tmp_path / "home-postgres"
        home.mkdir()
        shutil.copy(ROOT / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")
        log = tmp_path / "dagster-postgres.log"
        with servers.dagster_dev(home, {**base_env, **sides["postgres"], **pg_env}, log) as port:
            assert servers.wait_runs(port, [servers.launch(port, "ingest_job")]) == ["SUCCESS"]   # the lifecycle
            done = servers.backfill(port, WEEKS, log)
            run_id = done["runs"][0]["runId"]
        con = psycopg2.connect(host="127.0.0.1", port=pg_port, user="ifc", dbname="dagster")
        cur = con.cursor()
        cur.execute("SELECT run_id, status FROM runs")
        runs = dict(cur.fetchall())
        cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (run_id,))
        events = cur.fetchone()[0]
        con.close()
    assert runs.get(run_id) == "SUCCESS" and events > 10 and len(runs) == 2   # ingest_job and the backfill          # the run and its events live in PostgreSQL
    assert not list(home.glob("history")) and not list(home.glob("storage/*.db"))  # nothing kept in SQLite
    # the embedded profile, same weeks, same inputs
    home = tmp_path / "home-embedded"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    log = tmp_path / "dagster-embedded.log"
    with servers.dagster_dev(home, {**base_env, **sides["embedded"]}, log) as port:
        assert servers.wait_runs(port, [servers.launch(port, "ingest_job")]) == ["SUCCESS"]
        servers.backfill(port, WEEKS, log)
    pg, emb = tmp_path / "reports-postgres", tmp_path / "reports-embedded"
    for week in LABELS:
        for name in ("kpis.json", "findings.csv", "exceptions.csv", "coverage.csv", "deploys.csv", "config_and_secrets.csv"):
            assert (pg / week / name).read_bytes() == (emb / week / name).read_bytes(), (week, name)
        assert normalised_html(pg / week / "report.html") == normalised_html(emb / week / "report.html"), week
        m1, m2 = (json.loads((d / week / "manifest.json").read_text()) for d in (pg, emb))
        for m in (m1, m2):
            # run ids, times, and the reports folder each side was written to (they differ by construction)
            for volatile in ("generated_at", "dagster_run_id", "outputs", "previous_week_manifest_sha256", "previous_week",
                             "reproduce", "render"):
                m.pop(volatile)
        assert m1 == m2, week
