"""Reliability: bad inputs, SIGKILL at random points, concurrent runs, evidence integrity.
RELIABILITY.md states what these prove and the figures they were last run with."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import zipfile
from datetime import date
from pathlib import Path

import duckdb
import pytest

from ifc_scan.demo.generator import generate
from ifc_scan_tests.badinputs import SIZES, _run, write_bad_inputs, write_zip_bomb

pytestmark = pytest.mark.slow   # the slow layer (make e2e): minutes of subprocesses or generated batteries

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "ifc_scan.cli"]
TABLES = ["source_files", "ingest_errors", "scans", "scan_vulnerabilities", "scan_misconfigurations", "scan_secrets",
          "scan_licenses", "ci_runs", "ci_jobs", "ci_steps", "ci_events", "ci_log_issues", "exception_snapshots",
          "exceptions", "inventory_deployable", "inventory_retired"]
DERIVED = ["findings", "finding_events", "timeline_moments", "weekly_kpis"]


def dump(path: Path, tables=TABLES) -> dict:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}
    finally:
        con.close()


def peak_rss_mb(cmd, env=None) -> tuple[int, float]:
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, cwd=ROOT, env=env)
    return out.returncode, int(out.stdout.strip()) / 1024


def test_bad_inputs_get_their_documented_outcome_and_lose_nothing_else(tmp_path):
    good, mixed = tmp_path / "good", tmp_path / "mixed"
    generate(good, weeks=3, seed=6, end=date(2026, 3, 9))
    generate(mixed, weeks=3, seed=6, end=date(2026, 3, 9))
    expected = write_bad_inputs(mixed)
    rc, peak = peak_rss_mb(CLI + ["ingest", "--landing", str(mixed), "--warehouse", str(tmp_path / "m.duckdb")])
    assert rc == 0
    assert peak < 700, f"peak RSS {peak:.0f} MB with a 200 MB report and a 1 GB one-line log"
    subprocess.run(CLI + ["ingest", "--landing", str(good), "--warehouse", str(tmp_path / "g.duckdb")], check=True,
                   capture_output=True, cwd=ROOT)
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    status = {p: (s, r or "") for p, s, r in con.execute("SELECT path, status, reason FROM source_files").fetchall()}
    errors = con.execute("SELECT path, reason FROM ingest_errors").fetchall()
    for path, (want, word) in expected.items():
        got, reason = status[path]
        assert got == want, (path, got, reason)
        if word:
            assert word.lower() in reason.lower(), (path, reason)
    # zip members are refused with a reason; nothing was written outside the run folder
    assert any("ifc-evil" in r and "escape" in r for _p, r in errors)
    assert not Path("/tmp/ifc-evil.txt").exists()
    # the 200 MB report (streamed) and the event after the 1 GB line are in
    assert con.execute("select n_vulnerabilities from scans where artifact_name='ghcr.io/bad/huge:1'").fetchone()[0] == \
        SIZES["huge_rows"]
    assert con.execute("select count(*) from ci_events where run_id=903 and kind='build'").fetchone()[0] == 1
    # the zip bomb's run keeps the event of its archive's other member
    assert con.execute("select count(*) from ci_events where run_id=905 and kind='build'").fetchone()[0] == 1
    # hostile text is stored verbatim (it is escaped only where it is shown): original, UTF-16 form, hostile copy
    assert con.execute("select count(*) from scan_vulnerabilities where title like '<script>%'").fetchone()[0] == 3
    # nothing of the good data was lost: every good table row is there, with the same counts
    g = dump(tmp_path / "g.duckdb", ["ci_events", "ci_runs", "exceptions"])
    m_events = con.execute("select * from ci_events where run_id not in (901, 902, 903, 905) order by all").fetchall()
    assert m_events == g["ci_events"]
    good_scans = duckdb.connect(str(tmp_path / "g.duckdb"), read_only=True).execute(
        "select source_path, n_vulnerabilities from scans order by all").fetchall()
    mixed_scans = con.execute("select source_path, n_vulnerabilities from scans where source_path not like 'trivy/bad/%' "
                              "order by all").fetchall()
    assert mixed_scans == good_scans
    con.close()


def fault_points(cmd, env, tmp_path) -> int:
    """How many fault points a clean run of cmd passes (ifc_scan.faults)."""
    log = tmp_path / "faults.count"
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, env={**env, "IFC_SCAN_FAULT_LOG": str(log)})
    return int(log.read_text())


def crash_at(cmd, env, n: int) -> bool:
    """Run cmd, SIGKILLed at its n-th fault point. True if it died there, False if it finished first."""
    r = subprocess.run(cmd, capture_output=True, cwd=ROOT, env={**env, "IFC_SCAN_FAULT_AT": str(n)})
    assert r.returncode in (0, -signal.SIGKILL), (n, r.returncode, r.stderr[-500:])
    return r.returncode == -signal.SIGKILL


INGEST_KILLS = 12


def test_sigkill_during_ingest_then_rerun_gives_the_clean_warehouse(tmp_path):
    """SIGKILL at 12 random fault points (before, inside and after the batch transactions) of a fresh
    ingest each time; after a re-run the warehouse equals a clean single run, table by table, row by row."""
    land = tmp_path / "landing"
    generate(land, weeks=6, seed=12, end=date(2026, 3, 9))
    env = {**os.environ, "IFC_SCAN_BATCH_MB": "0.05"}          # many batches, so many transactions to break
    ingest = CLI + ["ingest", "--landing", str(land), "--warehouse"]
    total = fault_points(ingest + [str(tmp_path / "clean.duckdb")], env, tmp_path)
    clean = dump(tmp_path / "clean.duckdb")
    assert total > 30
    points = sorted(random.Random(11).sample(range(1, total + 1), INGEST_KILLS))
    partial = 0
    for n in points:
        victim = tmp_path / f"victim{n}.duckdb"
        assert crash_at(ingest + [str(victim)], env, n)
        loaded = dump(victim, ["source_files"])["source_files"]
        partial += 0 < len(loaded) < len(clean["source_files"])
        subprocess.run(ingest + [str(victim)], check=True, capture_output=True, cwd=ROOT, env=env)
        assert dump(victim) == clean, f"fault point {n} of {total}"
    print(f"\ningest: {total} fault points, {INGEST_KILLS} crashes, {partial} left a partial warehouse, 0 rows lost")
    assert partial >= INGEST_KILLS // 2, partial       # most crashes left a partly loaded warehouse behind


def _published_weeks_are_complete(reports: Path) -> int:
    """Every visible week folder is a complete revision: each output the manifest names is there, intact."""
    n = 0
    for week in sorted(p for p in reports.iterdir() if p.is_dir() and p.name[:2] == "20"):
        m = json.loads((week / "manifest.json").read_text())
        for name, digest in m["outputs"].items():
            assert hashlib.sha256((week / name).read_bytes()).hexdigest() == digest, (week, name)
        n += 1
    return n


REPORT_KILLS = 8


def test_sigkill_during_kpis_and_report_writing_never_shows_a_half_written_week(tmp_path):
    """Reports of revision 1 exist; an input changes; the report run that writes revision 2 is killed at 8
    random fault points (inside the lifecycle and weekly_kpis transactions, after a temp folder is
    written, between the two publishing renames). Visible weeks are always complete, and after a final
    run everything equals a clean run: derived tables, every kpis.json and CSV, revision numbers, and
    each superseded revision kept."""
    land = tmp_path / "landing"
    generate(land, weeks=6, seed=13, end=date(2026, 3, 9))
    env = dict(os.environ)
    run = {}
    for side in ("clean", "victim"):
        wh, rep = tmp_path / f"{side}.duckdb", tmp_path / side
        subprocess.run(CLI + ["ingest", "--landing", str(land), "--warehouse", str(wh)], check=True, capture_output=True, cwd=ROOT)
        run[side] = CLI + ["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(rep), "--all"]
        subprocess.run(run[side], check=True, capture_output=True, cwd=ROOT)
    snap = land / "exceptions" / "_global" / "2026-02-02"
    snap.mkdir(parents=True)
    (snap / ".trivyignore").write_text("CVE-2099-0001  # a late snapshot: changes every week from W06 on\n")
    for side in ("clean", "victim"):
        subprocess.run(CLI + ["ingest", "--landing", str(land), "--warehouse", str(tmp_path / f"{side}.duckdb")],
                       check=True, capture_output=True, cwd=ROOT)
    total = fault_points(run["clean"], env, tmp_path)
    rng = random.Random(5)
    killed = 0
    for _ in range(REPORT_KILLS):
        # later runs pass fewer points (weeks already published are skipped): aim inside the first ones
        killed += crash_at(run["victim"], env, rng.randint(1, max(2, total // (2 + killed))))
        _published_weeks_are_complete(tmp_path / "victim")
    print(f"\nreport: {total} fault points in a clean run, {killed} of {REPORT_KILLS} runs crashed")
    assert killed >= REPORT_KILLS // 2, killed
    subprocess.run(run["victim"], check=True, capture_output=True, cwd=ROOT)
    assert dump(tmp_path / "victim.duckdb", DERIVED) == dump(tmp_path / "clean.duckdb", DERIVED)
    weeks = sorted(p.name for p in (tmp_path / "clean").iterdir() if p.name[:2] == "20")
    assert _published_weeks_are_complete(tmp_path / "victim") == _published_weeks_are_complete(tmp_path / "clean") == len(weeks)
    revised = 0
    for week in weeks:
        for name in ("kpis.json", "findings.csv", "exceptions.csv", "coverage.csv", "deploys.csv"):
            assert (tmp_path / "victim" / week / name).read_bytes() == (tmp_path / "clean" / week / name).read_bytes()
        rv, rc = (json.loads((tmp_path / side / week / "manifest.json").read_text())["revision"] for side in ("victim", "clean"))
        assert rv == rc, week
        if rc == 2:
            revised += 1
            assert (tmp_path / "victim" / "revisions" / week / "r1" / "kpis.json").is_file()   # nothing lost
    assert revised >= 3 and total > 2 * len(weeks)
    assert not list((tmp_path / "victim").glob(".tmp-*"))


def test_concurrent_ingests_and_a_report_during_ingest_end_like_a_serial_run(tmp_path):
    land = tmp_path / "landing"
    generate(land, weeks=6, seed=14, end=date(2026, 3, 9))
    subprocess.run(CLI + ["ingest", "--landing", str(land), "--warehouse", str(tmp_path / "serial.duckdb")], check=True,
                   capture_output=True, cwd=ROOT)
    wh = tmp_path / "shared.duckdb"
    ingest = CLI + ["ingest", "--landing", str(land), "--warehouse", str(wh)]
    procs = [subprocess.Popen(ingest, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    # the report starts once an ingest has created the warehouse (a fixed 0.3 s let a report that started
    # faster than both ingests on a loaded machine find no warehouse, which is its documented refusal)
    deadline = time.monotonic() + 120
    while not wh.exists() and time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.05)
    procs.append(subprocess.Popen(CLI + ["report", "--landing", str(land), "--warehouse", str(wh), "--reports",
                                         str(tmp_path / "reports"), "--week", "2026-W09"], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for _out, err, rc in results:
        assert rc == 0, err.decode()[-2000:]
        # no lock error; the documented wait message ("waiting for the warehouse lock ... held by PID") may
        # appear when the other process holds the lock for more than 3 s, as on a loaded machine
        assert b"could not set lock" not in err.lower() and b"traceback" not in err.lower(), err.decode()[-2000:]
    assert dump(wh) == dump(tmp_path / "serial.duckdb")
    counts = sorted(json.loads(out)["ingested"] for out, _e, _rc in results[:2])
    assert counts[0] == 0 and counts[1] == dump(wh, ["source_files"])["source_files"].__len__()


def test_a_broken_manifest_chain_is_reported(tmp_path):
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    generate(land, weeks=3, seed=9, end=date(2026, 3, 9))
    subprocess.run(CLI + ["ingest", "--landing", str(land), "--warehouse", str(wh)], check=True, capture_output=True, cwd=ROOT)
    for week in ("2026-W08", "2026-W09"):
        subprocess.run(CLI + ["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(rep),
                              "--week", week], check=True, capture_output=True, cwd=ROOT)
    ok = subprocess.run(CLI + ["verify", "--reports", str(rep), "--week", "2026-W09"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    m = rep / "2026-W08" / "manifest.json"
    m.write_text(m.read_text().replace('"revision": 1', '"revision": 1 '))      # one byte of the earlier week
    bad = subprocess.run(CLI + ["verify", "--reports", str(rep), "--week", "2026-W09"], capture_output=True, text=True,
                         cwd=ROOT)
    assert bad.returncode == 1 and "manifest chain broken" in bad.stderr


def test_a_wait_on_the_warehouse_lock_says_who_holds_it(tmp_path):
    """A second writer waits instead of failing, and after a few seconds says which process holds the lock."""
    import sys

    from ifc_scan.warehouse.db import connect
    wh = tmp_path / "w.duckdb"
    with connect(wh):
        pass
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(wh)!r}); "
                               "print('locked', flush=True); time.sleep(6)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        said = []
        started = time.monotonic()
        with connect(wh, wait_seconds=60, on_wait=said.append) as con:
            assert con.execute("SELECT 1").fetchone() == (1,)
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert waited > 3 and len(said) == 1
    assert said[0].startswith(f"waiting for the warehouse lock on {wh} held by PID {holder.pid}")


# 31-byte runner log lines: the slow kind of inflated text (each line is parsed), 412:1 under deflate
LOG_LINE = b"2026-03-02T10:00:00.0000000Z .\n"


def _zip_bomb_run(tmp_path, **claims) -> Path:
    land = tmp_path / "landing"
    run = land / "ci" / "github-actions" / "906"
    _run(run, 906)
    # 256 MB of log lines in about 0.6 MB: 8.6 million lines, over the run's budget of 5 million, which
    # reading took about 4 minutes to reach before archives were bounded by their ratio
    write_zip_bomb(run / "logs.zip", 256 * 1024 * 1024, LOG_LINE, **claims)
    assert (run / "logs.zip").stat().st_size < 1024 * 1024
    return land


def _ingest_timed(land: Path, wh: Path) -> tuple[float, dict]:
    from ifc_scan.ingest.runner import ingest
    started = time.monotonic()
    summary = ingest(land, wh, progress=lambda m: None)
    return time.monotonic() - started, dict(summary.rejections)


def test_a_zip_bomb_in_logs_zip_is_refused_by_its_headers_within_seconds(tmp_path):
    land = _zip_bomb_run(tmp_path)
    took, reasons = _ingest_timed(land, tmp_path / "w.duckdb")
    assert took < 5, f"ingest took {took:.1f} s"
    reason = reasons["ci/github-actions/906/logs.zip"]
    inflated = 256 * 1024 * 1024 // len(LOG_LINE) * len(LOG_LINE)        # whole lines
    assert "logs.zip!build/2_Bomb.txt: its header says" in reason and f"inflate to {inflated:,}" in reason
    assert "over the 100:1 an archive may inflate: a zip bomb, not read" in reason
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("select count(*) from ci_events where run_id=906 and kind='build'").fetchone()[0] == 1
    con.close()


def test_a_zip_bomb_whose_header_lies_is_stopped_while_it_inflates(tmp_path):
    """The central directory claims the bomb inflates to 60 MB (94:1, within both header checks): zipfile
    would yield those 60 MB, 2 million lines, before finding the CRC wrong. The bytes read from the
    archive, not the header, bound what the member may yield."""
    land = _zip_bomb_run(tmp_path, claim_inflated=60 * 1024 * 1024)
    took, reasons = _ingest_timed(land, tmp_path / "w.duckdb")
    assert took < 5, f"ingest took {took:.1f} s"
    reason = reasons["ci/github-actions/906/logs.zip"]
    assert "logs.zip!build/2_Bomb.txt: inflated" in reason and "zip bomb, reading stopped" in reason
    assert "inflating to 62,914,560" in reason


def test_a_zip_bomb_claiming_more_compressed_bytes_than_the_archive_holds_is_refused_by_its_size(tmp_path):
    """The central directory claims 4 MB of compressed bytes (64:1) in a 0.6 MB archive: the members together
    may inflate to 100 times the archive's size on disk, which the header's 256 MB overruns."""
    land = _zip_bomb_run(tmp_path, claim_compressed=4 * 1024 * 1024)
    took, reasons = _ingest_timed(land, tmp_path / "w.duckdb")
    assert took < 5, f"ingest took {took:.1f} s"
    reason = reasons["ci/github-actions/906/logs.zip"]
    archive = (land / "ci" / "github-actions" / "906" / "logs.zip").stat().st_size
    assert "logs.zip!build/2_Bomb.txt: the headers say the members inflate to" in reason
    assert f"over 100 times the archive's {archive:,}: a zip bomb, not read" in reason
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("select count(*) from ci_events where run_id=906 and kind='build'").fetchone()[0] == 1
    con.close()


def test_a_short_log_of_one_repeated_line_is_no_zip_bomb(tmp_path):
    """200 KB of one repeated line deflates about 400:1, past the ratio, but stays under the 256 KiB a member
    may always inflate to: it is read like any log."""
    from ifc_scan.ingest.github_actions import read_run_folder
    run = tmp_path / "907"
    _run(run, 907)
    write_zip_bomb(run / "logs.zip", 200 * 1024, LOG_LINE)
    info = zipfile.ZipFile(run / "logs.zip").getinfo("build/2_Bomb.txt")
    assert info.file_size > 100 * info.compress_size
    res = read_run_folder(run)
    assert res.errors == [] and [e.kind for e in res.events] == ["build"]
