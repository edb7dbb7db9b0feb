"""KEV catalogs and EPSS files in the landing zone (ingest/sources/kev.py, epss.py; intel/files.py): what is
stored, which EPSS file of a week keeps its rows, and every bad file rejected by name with its reason."""

import gzip
import json
from datetime import date, datetime
from pathlib import Path

import pytest

from ifc_scan.ingest.runner import ingest
from ifc_scan.intel import files as intel_files
from ifc_scan.intel.asof import intel_as_of
from ifc_scan.warehouse.db import connect

FIXTURES = Path(__file__).parent / "fixtures" / "intel"
KEV = json.loads((FIXTURES / "known_exploited_vulnerabilities.json").read_text())
EPSS_TEXT = (FIXTURES / "epss_scores-2026-11-30.csv").read_text()


def put_kev(landing: Path, day: str, doc=None, raw: bytes | None = None, name: str = intel_files.KEV_NAME) -> str:
    rel = f"enrichment/kev/{day}/{name}"
    (landing / rel).parent.mkdir(parents=True, exist_ok=True)
    (landing / rel).write_bytes(raw if raw is not None else json.dumps(doc if doc is not None else KEV).encode())
    return rel


def epss_text(day: str, rows: list[tuple[str, str, str]], name_day: str | None = None) -> str:
    return (f"#model_version:v2025.03.14,score_date:{name_day or day}T00:00:00Z\ncve,epss,percentile\n"
            + "".join(f"{c},{e},{p}\n" for c, e, p in rows))


def put_epss(landing: Path, day: str, text: str | None = None, raw: bytes | None = None, name: str | None = None) -> str:
    rel = f"enrichment/epss/{day}/{name or f'epss_scores-{day}.csv.gz'}"
    (landing / rel).parent.mkdir(parents=True, exist_ok=True)
    (landing / rel).write_bytes(raw if raw is not None else gzip.compress((text or epss_text(day, [
        ("CVE-2021-44228", "0.94358", "0.99957")])).encode()))
    return rel


def _errors(wh) -> dict:
    with connect(wh) as con:
        return dict(con.execute("SELECT path, reason FROM ingest_errors").fetchall())


def test_a_kev_catalog_is_stored_with_its_entries_and_used_from_its_date(tmp_path):
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    put_kev(landing, "2026-11-27")
    s = ingest(landing, wh)
    assert (s.ingested, s.rejected) == (1, 0)
    with connect(wh) as con:
        assert con.execute("SELECT catalog_date, catalog_version, date_released, entries FROM kev_catalogs").fetchall() \
            == [(date(2026, 11, 27), "2026.11.27", datetime(2026, 11, 27, 17, 2, 40, 46200), 3)]
        log4j = con.execute("SELECT vendor_project, product, date_added, due_date, known_ransomware_campaign_use "
                            "FROM kev_entries WHERE cve_id = 'CVE-2021-44228'").fetchone()
        assert log4j == ("Apache", "Log4j2", date(2021, 12, 10), date(2021, 12, 24), "Known")
        # a week ending 2026-11-27 00:00 does not know the catalog dated 11-27; the week ending 11-30 does
        assert intel_as_of(con, datetime(2026, 11, 27)).kev_catalog is None
        week = intel_as_of(con, datetime(2026, 11, 30))
        assert sorted(week.kev) == ["CVE-2021-44228", "CVE-2023-2975", "CVE-2024-3094"]
    # the file leaves the landing zone: its rows go
    (landing / "enrichment/kev/2026-11-27" / intel_files.KEV_NAME).unlink()
    ingest(landing, wh)
    with connect(wh) as con:
        assert con.execute("SELECT count(*) FROM kev_entries").fetchone() == (0,)


def _kev_with(**changes) -> dict:
    doc = {**json.loads(json.dumps(KEV)), "dateReleased": "2026-10-01T12:00:00Z"}
    entry = changes.pop("entry", None)
    if entry:
        doc["vulnerabilities"][0].update(entry)
    doc.update(changes)
    return doc


def test_bad_kev_catalogs_are_rejected_by_name_with_their_reason(tmp_path, monkeypatch):
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    # a catalog trimmed by hand keeps the published count: its entries are read all the same
    good = put_kev(landing, "2026-11-28", _kev_with(dateReleased="2026-11-28T10:00:00Z", count=1484))
    # a date alone: its midnight; a dateAdded written as a full ISO time: the date written (23:30 at -05:00 on
    # 12-10 is 12-11 in UTC, but the catalog means 12-10)
    dated = put_kev(landing, "2026-11-29", _kev_with(dateReleased="2026-11-29", entry={"dateAdded": "2021-12-10T23:30:00-05:00"}))
    bad = {
        put_kev(landing, "2026-11-01", raw=b'{"vulnerabilities": [}'): "not valid JSON",
        put_kev(landing, "2026-11-02", [KEV]): "not CISA's KEV catalog",
        put_kev(landing, "2026-11-03", _kev_with(entry={"cveID": "CVE-21-44228"})): "is not a CVE id",
        put_kev(landing, "2026-11-04", _kev_with(entry={"dateAdded": "٢٠٢١-12-10"})): "is not a YYYY-MM-DD date",
        put_kev(landing, "2026-11-10", _kev_with(entry={"dateAdded": "2021-12-10T25:00:00Z"})): "is not a YYYY-MM-DD date",
        put_kev(landing, "2026-11-05", _kev_with(entry={"dueDate": "2021-02-30"})): "is not a real date",
        put_kev(landing, "2026-11-06", _kev_with(dateReleased="2026-11-07T00:00:00Z")): "after its folder's date",
        put_kev(landing, "2026-11-07", _kev_with(dateReleased="yesterday")): "is not an ISO 8601 time",
        put_kev(landing, "2026-11-08", _kev_with(dateReleased="2026-11-09")): "after its folder's date 2026-11-08 ends",
        put_kev(landing, "2026-11-09", _kev_with(vulnerabilities=KEV["vulnerabilities"] * 2, count=6)): "listed twice",
        put_kev(landing, "2026-11-11", _kev_with(entry={"dateAdded": "2021-12-10", "dueDate": "2021-12-09"})):
            "dueDate 2021-12-09 is before its dateAdded 2021-12-10",
        put_kev(landing, "2026-11-31"): "its folder's date 2026-11-31 is not a real date",
        put_kev(landing, "2099-01-01", _kev_with(dateReleased="2099-01-01T00:00:00Z")): "dated 2099-01-01, in the future",
        put_kev(landing, "2026-11-12", _kev_with(dateReleased="2026-11-12T00:00:00Z",
                                                 padding="x" * 7000)): "over the KEV catalog limit of 6,000",
    }
    monkeypatch.setattr(intel_files, "MAX_KEV_BYTES", 6000)     # the fixture is 2.2 KB as written here
    s = ingest(landing, wh)
    assert (s.ingested, s.rejected) == (2, len(bad))
    errors = _errors(wh)
    assert good not in errors and dated not in errors
    for rel, why in bad.items():
        assert why in errors[rel], (rel, errors[rel])
        assert errors[rel].startswith("KEV catalog not read: ")
    with connect(wh) as con:
        assert con.execute("SELECT catalog_date, date_released, entries FROM kev_catalogs ORDER BY 1").fetchall() == [
            (date(2026, 11, 28), datetime(2026, 11, 28, 10), 3), (date(2026, 11, 29), datetime(2026, 11, 29), 3)]
        assert con.execute("SELECT date_added FROM kev_entries WHERE source_path = ? AND cve_id = 'CVE-2021-44228'",
                           (dated,)).fetchone() == (date(2021, 12, 10),)


def test_only_the_newest_epss_file_of_each_iso_week_keeps_its_rows(tmp_path):
    # ISO week 2026-W49 runs Monday 11-30 to Sunday 12-06; 12-07 starts W50.
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    put_epss(landing, "2026-11-30", EPSS_TEXT)                                    # 4 rows
    put_epss(landing, "2026-12-01", epss_text("2026-12-01", [("CVE-2021-44228", "0.95", "0.9996"),
                                                             ("CVE-2024-3094", "0.8", "0.99")]))
    put_epss(landing, "2026-12-07", epss_text("2026-12-07", [("CVE-2024-3094", "0.7", "0.98")]))
    s = ingest(landing, wh)
    assert (s.ingested, s.rejected) == (3, 0)

    def state(con):
        files = con.execute("SELECT strftime(score_date, '%m-%d'), rows_read, rows_kept FROM epss_files "
                            "ORDER BY 1").fetchall()
        kept = con.execute("SELECT strftime(score_date, '%m-%d'), count(*) FROM epss_scores GROUP BY 1 ORDER BY 1").fetchall()
        return files, kept
    with connect(wh) as con:
        assert state(con) == ([("11-30", 4, False), ("12-01", 2, True), ("12-07", 1, True)],
                              [("12-01", 2), ("12-07", 1)])
    # a newer file of W49 arrives late (12-03): it takes the week's rows over; the others stay recorded
    put_epss(landing, "2026-12-03", epss_text("2026-12-03", [("CVE-2024-3094", "0.81", "0.991")]))
    # ... and a newest W49 file that is bad (12-05, a value over 1) is rejected and leaves them with 12-03
    put_epss(landing, "2026-12-05", epss_text("2026-12-05", [("CVE-2024-3094", "1.5", "0.99")]))
    s = ingest(landing, wh)
    assert (s.ingested, s.rejected) == (1, 1)
    with connect(wh) as con:
        assert state(con) == ([("11-30", 4, False), ("12-01", 2, False), ("12-03", 1, True), ("12-07", 1, True)],
                              [("12-03", 1), ("12-07", 1)])
        # the week ending 12-07 00:00 uses the 12-03 file (D < T); 12-07's file is known only from 12-07
        week = intel_as_of(con, datetime(2026, 12, 7), cves=["CVE-2024-3094"])
        assert week.epss_file.file_date == date(2026, 12, 3) and week.epss["CVE-2024-3094"].epss == 0.81
    # the kept file leaves: the week falls back to its newest readable file left (12-01, read again for its rows)
    (landing / "enrichment/epss/2026-12-03/epss_scores-2026-12-03.csv.gz").unlink()
    ingest(landing, wh)
    with connect(wh) as con:
        assert state(con) == ([("11-30", 4, False), ("12-01", 2, True), ("12-07", 1, True)],
                              [("12-01", 2), ("12-07", 1)])


def test_bad_epss_files_are_rejected_by_name_with_their_reason(tmp_path):
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    row = [("CVE-2021-44228", "0.9", "0.99")]
    # 40 MB of zeros after the first row, ~40 KB of gzip: cut off at the first 64 KB inflated (a line too long)
    bomb = gzip.compress(epss_text("2026-10-07", row).encode() + b"0" * (40 * 1024 * 1024))
    bad = {
        put_epss(landing, "2026-10-01", epss_text("2026-10-01", row, name_day="2026-09-30")):
            "score_date 2026-09-30 in the file's first line is not its folder's date 2026-10-01",
        put_epss(landing, "2026-10-02", epss_text("2026-10-02", [("CVE-2021-44228", "-0.1", "0.5")])):
            "epss '-0.1' is not a number in [0, 1]",
        put_epss(landing, "2026-10-03", epss_text("2026-10-03", [("CVE-2021-44228", "0.1", "1.0001")])):
            "percentile 1.0001 is outside [0, 1]",
        put_epss(landing, "2026-10-04", epss_text("2026-10-04", [("CVE-2021-44228", "nan", "0.5")])):
            "epss 'nan' is not a number",
        put_epss(landing, "2026-10-05", epss_text("2026-10-05", [("GHSA-xxxx-yyyy-zzzz", "0.1", "0.5")])):
            "line 3: 'GHSA-xxxx-yyyy-zzzz' is not a CVE id",
        put_epss(landing, "2026-10-06", "CVE,EPSS,PERCENTILE\nCVE-2021-44228,0.9,0.99\n"):
            "is neither FIRST's '#model_version",
        put_epss(landing, "2026-10-07", raw=bomb): "line 4: longer than 512 bytes",
        put_epss(landing, "2026-10-08", raw=gzip.compress(epss_text("2026-10-08", row * 3).encode())[:-30]):
            "not a whole gzip file",
        put_epss(landing, "2026-10-09", raw=epss_text("2026-10-09", row).encode()): "not a whole gzip file",
        put_epss(landing, "2026-10-10", epss_text("2026-10-10", [])): "no score rows",
        put_epss(landing, "2026-10-11", epss_text("2026-10-11", row), name="epss_scores-2026-10-12.csv.gz"):
            "its name's date 2026-10-12 is not its folder's date 2026-10-11",
        put_epss(landing, "2026-10-12", epss_text("2026-10-12", row * 2)): "CVE-2021-44228 is scored twice",
        put_epss(landing, "2099-01-01", epss_text("2099-01-01", row)): "dated 2099-01-01, in the future",
        put_epss(landing, "2026-10-13", epss_text("2026-10-13", row).replace("T00:00:00Z", "T00:00:00+0000")): None,
        put_epss(landing, "2026-10-14", epss_text("2026-10-14", row).replace("score_date:2026-10-14", "score_date:14/10/2026")):
            "score_date in the first line: not a YYYY-MM-DD date",
    }
    s = ingest(landing, wh)
    assert (s.ingested, s.rejected) == (1, len(bad) - 1)
    errors = _errors(wh)
    for rel, why in bad.items():
        if why is None:
            assert rel not in errors                      # FIRST's older first line (+0000) is read
        else:
            assert why in errors[rel], (rel, errors[rel])
            assert errors[rel].startswith("EPSS file not read: ")
    with connect(wh) as con:
        assert con.execute("SELECT score_date, cve, epss FROM epss_scores").fetchall() == [
            (date(2026, 10, 13), "CVE-2021-44228", 0.9)]


def test_a_file_inflating_past_the_budget_is_cut_off(tmp_path, monkeypatch):
    # The budget is min(MAX_EPSS_CSV_BYTES, 100 x the gzip size + 256 KB); with the cap at 4,096 bytes, 500 valid
    # rows (~12 KB inflated) pass it and are refused there, whatever follows.
    monkeypatch.setattr(intel_files, "MAX_EPSS_CSV_BYTES", 4096)
    rows = [(f"CVE-2020-{10000 + i}", "0.1", "0.5") for i in range(500)]
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    rel = put_epss(landing, "2026-12-02", epss_text("2026-12-02", rows))
    assert ingest(landing, wh).rejected == 1
    assert "inflate past 4,096 (the limit: 100:1 and at most 4,096): a gzip bomb, not read" in _errors(wh)[rel]


def test_a_large_epss_file_is_read_as_a_stream_with_its_rows(tmp_path):
    # 300,000 rows as FIRST publishes (~300k CVEs): every row stored, the values as written.
    rows = [(f"CVE-{2000 + i % 26}-{10000 + i}", f"{(i % 1000) / 1000:.5f}", f"{(i % 997) / 997:.5f}")
            for i in range(300_000)]
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    put_epss(landing, "2026-12-02", epss_text("2026-12-02", rows))
    assert ingest(landing, wh).ingested == 1
    with connect(wh) as con:
        assert con.execute("SELECT count(*), count(DISTINCT cve), max(epss) FROM epss_scores").fetchone() == (
            300_000, 300_000, 0.999)
        assert con.execute("SELECT epss, percentile FROM epss_scores WHERE cve = 'CVE-2007-10007'").fetchone() == (
            0.007, 0.00702)


@pytest.mark.parametrize("line", ["#model_version:v2025.03.14,score_date:2026-12-02T00:00:00Z",
                                  "#model_version:v2023.03.01,score_date:2026-12-02T00:00:00+0000",
                                  "\ufeff#score_date:2026-12-02,model_version:v2025.03.14"])
def test_first_lines_of_both_eras_are_read(line, tmp_path):
    # values as decimals or in scientific notation (4.3e-05), 1 and 0 without a point
    path = tmp_path / "e.csv.gz"
    path.write_bytes(gzip.compress(f"{line}\ncve,epss,percentile\nCVE-1999-0001,0.0046,0.7385\n"
                                   "CVE-1999-0002,4.3e-05,0\nCVE-2021-44228,1,1.0\n".encode()))
    read = intel_files.read_epss_file(path, date(2026, 12, 2), keep_rows=True)
    assert (read.score_date, read.rows_read, read.cves, read.epss, read.percentile) == (
        date(2026, 12, 2), 3, ["CVE-1999-0001", "CVE-1999-0002", "CVE-2021-44228"], [0.0046, 0.000043, 1.0],
        [0.7385, 0.0, 1.0])


def test_a_weeks_inputs_manifest_lists_each_intel_file_from_its_date(tmp_path):
    # KEV of 11-29 and 11-30, EPSS of 11-29: the week ending 2026-11-30 00:00 rests on the two files dated 11-29
    # (D < T); the week ending 12-07 on all three. A rejected file is in no manifest.
    from ifc_scan.kpis.stage import InputCatalog
    from ifc_scan.lifecycle.observations import load
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    kev29 = put_kev(landing, "2026-11-29")
    kev30 = put_kev(landing, "2026-11-30")
    epss29 = put_epss(landing, "2026-11-29")
    put_epss(landing, "2026-11-28", epss_text("2026-11-28", [("CVE-2021-44228", "2", "0.5")]))     # rejected
    ingest(landing, wh)
    with connect(wh) as con:
        catalog = InputCatalog(con, load(con, with_findings=False))
        paths = lambda end: sorted(e["path"] for e in catalog.week_inputs(end)[0])   # noqa: E731
        assert paths(datetime(2026, 11, 29)) == []
        assert paths(datetime(2026, 11, 30)) == sorted([kev29, epss29])
        assert paths(datetime(2026, 12, 7)) == sorted([kev29, kev30, epss29])
