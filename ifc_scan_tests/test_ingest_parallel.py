"""Scan files and CI run folders parsed by reader processes (a large ingest) give the warehouse the same
rows as when the ingest process reads them, for good and bad inputs alike; a reader process that dies
costs no file."""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor

import duckdb
import pytest

import ifc_scan.ingest.readers as readers
import ifc_scan.ingest.runner as runner
from ifc_scan.demo.generator import generate
from ifc_scan.ingest.runner import TABLE_COLUMNS, ingest
from ifc_scan_tests.badinputs import write_bad_inputs


def _tables(wh) -> dict:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLE_COLUMNS}
    finally:
        con.close()


def _landing(root):
    land = root / "landing"
    generate(land, weeks=3, seed=5)
    expected = write_bad_inputs(land, huge=False)
    t = land / "trivy" / "more"
    t.mkdir(parents=True)
    good = json.loads((land / "trivy" / "bad" / "hostile-text.json").read_text())
    (t / "same-as-hostile.json").write_text(json.dumps(good))       # a duplicate found only once parsed
    return land, expected


def _force_readers(monkeypatch, n: int):
    monkeypatch.setenv("IFC_SCAN_READERS", str(n))
    monkeypatch.setattr(readers, "PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr(readers, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(readers, "TASK_BYTES", 32 * 1024)    # many tasks, as a large landing zone gives


def test_reader_processes_store_exactly_what_the_ingest_process_stores(tmp_path, monkeypatch):
    land, expected = _landing(tmp_path)
    _force_readers(monkeypatch, 0)
    alone = ingest(land, tmp_path / "alone.duckdb", progress=lambda m: None)
    _force_readers(monkeypatch, 2)
    said = []
    monkeypatch.setattr(runner, "BATCH_BYTES", 64 * 1024)    # many batches: the read-ahead crosses commits
    shared = ingest(land, tmp_path / "shared.duckdb", progress=said.append)
    assert any("CI run folders to read, parsed by 2 reader processes" in m for m in said)
    assert any("scan files to read, parsed by 2 reader processes" in m for m in said)
    assert (shared.ingested, shared.rejected, shared.duplicates) == (alone.ingested, alone.rejected, alone.duplicates)
    assert shared.rejections == alone.rejections
    a, b = _tables(tmp_path / "alone.duckdb"), _tables(tmp_path / "shared.duckdb")
    for table in TABLE_COLUMNS:
        assert a[table] == b[table], table
    # the bad inputs kept their documented outcome (badinputs.EXPECTED) with reader processes
    status = {p: st for p, _, _, _, _, st, _ in b["source_files"]}
    for path, (want, _) in expected.items():
        if path.startswith("trivy/"):
            assert status[path] == want, path
    assert status["trivy/more/same-as-hostile.json"] == "duplicate"
    assert len(a["scan_vulnerabilities"]) > 300 and len(a["ci_events"]) > 50     # not a vacuous comparison


class _DiesOnThirdFile(ProcessPoolExecutor):
    """A real pool whose process given the third task exits at once, as the kernel's OOM killer would."""
    submitted = 0

    def submit(self, fn, *args, **kwargs):
        _DiesOnThirdFile.submitted += 1
        if _DiesOnThirdFile.submitted == 3:
            return super().submit(os._exit, 9)
        return super().submit(fn, *args, **kwargs)


def test_a_reader_process_that_dies_costs_no_file(tmp_path, monkeypatch):
    land, _ = _landing(tmp_path)
    _force_readers(monkeypatch, 0)
    ingest(land, tmp_path / "alone.duckdb", progress=lambda m: None)
    _force_readers(monkeypatch, 2)
    monkeypatch.setattr(readers, "ProcessPoolExecutor", _DiesOnThirdFile)
    said = []
    s = ingest(land, tmp_path / "shared.duckdb", progress=said.append)
    assert _DiesOnThirdFile.submitted >= 3
    assert any("a reader process stopped" in m and "in this process" in m for m in said)
    assert s.new_files == s.files_seen
    assert _tables(tmp_path / "alone.duckdb") == _tables(tmp_path / "shared.duckdb")


@pytest.mark.parametrize("configured,expected", [("0", 0), ("1", 1), ("3", 3)])
def test_the_number_of_reader_processes_is_configurable(monkeypatch, configured, expected):
    monkeypatch.setenv("IFC_SCAN_READERS", configured)
    assert readers.reader_processes() == expected
    monkeypatch.delenv("IFC_SCAN_READERS")
    assert readers.reader_processes() == min(len(os.sched_getaffinity(0)), 8)


def test_reader_processes_start_only_for_a_large_ingest(monkeypatch, tmp_path):
    """RELIABILITY.md: 64 files and 48 MB or more to parse, and at least 2 processes configured."""
    monkeypatch.setenv("IFC_SCAN_READERS", "2")
    mb = 1024 * 1024
    assert readers.worth_processes(64, 48 * mb)
    assert not readers.worth_processes(63, 10_000 * mb)
    assert not readers.worth_processes(10_000, 48 * mb - 1)
    monkeypatch.setenv("IFC_SCAN_READERS", "1")
    assert not readers.worth_processes(10_000, 10_000 * mb)
    # the demo's three weeks are below the thresholds: read in the ingest process, no process started
    monkeypatch.setenv("IFC_SCAN_READERS", "2")
    generate(tmp_path / "landing", weeks=3, seed=5)
    said = []
    ingest(tmp_path / "landing", tmp_path / "w.duckdb", progress=said.append)
    assert not any("reader processes" in m for m in said)
