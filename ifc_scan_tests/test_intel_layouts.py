"""KEV catalogs and EPSS files where people and mirrors put them (intel/files.py: is_kev_path, is_epss_path,
path_date; docs/evidence.md "Known exploited vulnerabilities"): each layout read with its date D, a
disagreement rejected by name with both dates, the as-of rule on a catalog dated by its dateReleased, and
one deterministic choice between two files of the same D, the same for the weekly figures and the gate."""

import gzip
import json
from datetime import date, datetime
from pathlib import Path

import pytest

from ifc_scan.gate import load_kev
from ifc_scan.ingest.runner import ingest
from ifc_scan.intel import files as intel_files
from ifc_scan.intel.asof import intel_as_of
from ifc_scan.intel.files import IntelRejected, PathDate, path_date
from ifc_scan.warehouse.db import connect

FIXTURES = Path(__file__).parent / "fixtures" / "intel"
KEV = json.loads((FIXTURES / "known_exploited_vulnerabilities.json").read_text())   # 3 entries, as CISA writes them
FIRST_LINE = "#model_version:v2025.03.14,score_date:{}T00:00:00Z\n"


def kev_doc(released: str, version: str, extra_cve: str | None = None, added: str = "2026-11-30") -> bytes:
    doc = {**json.loads(json.dumps(KEV)), "dateReleased": released, "catalogVersion": version}
    if extra_cve:        # an entry as CISA adds one (the fields it always writes)
        doc["vulnerabilities"].append({
            "cveID": extra_cve, "vendorProject": "Example", "product": "Widget",
            "vulnerabilityName": "Example Widget Command Injection Vulnerability", "dateAdded": added,
            "shortDescription": "Example Widget contains a command injection vulnerability.",
            "requiredAction": "Apply mitigations per vendor instructions or discontinue use of the product.",
            "dueDate": "2026-12-21", "knownRansomwareCampaignUse": "Unknown", "notes": "", "cwes": ["CWE-77"]})
        doc["count"] = len(doc["vulnerabilities"])
    return json.dumps(doc, indent=4).encode()


def epss_csv(rows: list[tuple[str, str, str]], score_date: str | None) -> str:
    """FIRST's shape; score_date None: the file starts at the header (v1/v2-era files, stripped mirrors)."""
    return ((FIRST_LINE.format(score_date) if score_date else "") + "cve,epss,percentile\n"
            + "".join(f"{c},{e},{p}\n" for c, e, p in rows))


def put(landing: Path, rel: str, data: bytes | str) -> str:
    (landing / rel).parent.mkdir(parents=True, exist_ok=True)
    (landing / rel).write_bytes(data.encode() if isinstance(data, str) else data)
    return rel


def gz(text: str) -> bytes:
    return gzip.compress(text.encode())


def _errors(wh) -> dict:
    with connect(wh) as con:
        return dict(con.execute("SELECT path, reason FROM ingest_errors").fetchall())


@pytest.mark.parametrize("rel, expected", [
    ("enrichment/kev/2026-11-27/known_exploited_vulnerabilities.json", PathDate(date(2026, 11, 27), "its folder's date")),
    # the nearest (deepest) date folder; a date elsewhere in the path does not count
    ("enrichment/kev/2026-11-18/backup/2026-11-19/kev.json", PathDate(date(2026, 11, 19), "its folder's date")),
    ("enrichment/kev/2026-11-18/backup/kev.json", PathDate(date(2026, 11, 18), "its folder's date")),
    ("enrichment/kev/known_exploited_vulnerabilities-2026-11-25.json", PathDate(date(2026, 11, 25), "its name's date")),
    ("enrichment/epss/2026/11/epss_scores-2026-11-23.csv.gz", PathDate(date(2026, 11, 23), "its name's date")),
    ("enrichment/epss/2026-11-23/epss_scores-2026-11-23.csv.gz", PathDate(date(2026, 11, 23), "its folder's date")),
    ("enrichment/mirror/known_exploited_vulnerabilities.json", PathDate(None, None)),
    ("enrichment/epss/epss_scores-current.csv.gz", PathDate(None, None)),
])
def test_a_paths_date_is_its_nearest_date_folder_else_the_date_in_its_name(rel, expected):
    assert path_date(rel) == expected


@pytest.mark.parametrize("rel, why", [
    ("enrichment/kev/2026-11-20/known_exploited_vulnerabilities-2026-11-21.json",
     "its name's date 2026-11-21 is not its folder's date 2026-11-20"),
    ("enrichment/epss/2026-11-31/scores.csv", "its folder's date 2026-11-31 is not a real date"),
    ("enrichment/epss/epss_scores-2026-02-30.csv.gz", "its name's date 2026-02-30 is not a real date"),
    ("enrichment/kev/kev-2026-11-01-to-2026-11-02.json", "its name has 2 dates (2026-11-01, 2026-11-02), not one"),
])
def test_a_path_whose_dates_disagree_is_rejected_with_both(rel, why):
    with pytest.raises(IntelRejected, match=why.replace("(", r"\(").replace(")", r"\)")):
        path_date(rel)


def test_kev_catalogs_are_read_in_the_common_layouts_with_their_date(tmp_path):
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    expected = {   # path -> D (each catalog released within its D)
        put(landing, "enrichment/kev/2026-11-02/known_exploited_vulnerabilities.json",       # the collector's
            kev_doc("2026-11-02T17:00:00Z", "2026.11.02")): date(2026, 11, 2),
        put(landing, "enrichment/kev/2026-11-09/backup/kev.json",                            # any name, nearest folder
            kev_doc("2026-11-09T15:00:00Z", "2026.11.09")): date(2026, 11, 9),
        put(landing, "enrichment/kev/known_exploited_vulnerabilities-2026-11-16.json",       # the name's date
            kev_doc("2026-11-16T18:30:00.1234Z", "2026.11.16")): date(2026, 11, 16),
        put(landing, "enrichment/cisa-mirror/known_exploited_vulnerabilities.json",          # no date: dateReleased's
            kev_doc("2026-11-23T16:45:12.5Z", "2026.11.23")): date(2026, 11, 23),
        put(landing, "enrichment/kev/latest.json", kev_doc("2026-11-24T23:59:59Z", "2026.11.24")): date(2026, 11, 24),
    }
    ignored = [put(landing, "enrichment/kev/known_exploited_vulnerabilities.csv", "cveID,vendorProject\n"),
               put(landing, "enrichment/notes/kev.json", "{}")]       # not under kev/, not CISA's name
    s = ingest(landing, wh)
    assert (s.ingested, s.rejected, s.ignored) == (5, 0, 2)
    with connect(wh) as con:
        assert dict(con.execute("SELECT source_path, catalog_date FROM kev_catalogs").fetchall()) == expected
        kinds = dict(con.execute("SELECT path, kind FROM source_files").fetchall())
        assert [kinds[r] for r in ignored] == ["other", "other"]
        # the week ending Mon 2026-11-23 00:00 uses the name-dated catalog of 11-16 (the mirror's, dated 11-23,
        # is not known yet); the week ending 11-30 the newest, latest.json of 11-24
        assert intel_as_of(con, datetime(2026, 11, 23)).kev_catalog.version == "2026.11.16"
        assert intel_as_of(con, datetime(2026, 11, 30)).kev_catalog.source_path == "enrichment/kev/latest.json"


def test_kev_dates_that_disagree_are_rejected_by_name(tmp_path):
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    bad = {
        put(landing, "enrichment/kev/2026-11-20/known_exploited_vulnerabilities-2026-11-21.json",
            kev_doc("2026-11-20T10:00:00Z", "a")): "its name's date 2026-11-21 is not its folder's date 2026-11-20",
        # released after the day its name gives it ends: it cannot have been known that day
        put(landing, "enrichment/kev/known_exploited_vulnerabilities-2026-11-19.json",
            kev_doc("2026-11-20T00:00:00Z", "b")):
            "dateReleased 2026-11-20T00:00:00Z is after its name's date 2026-11-19 ends",
        put(landing, "enrichment/kev/2026-11-18/kev.json", kev_doc("2026-11-19T08:00:00Z", "c")):
            "dateReleased 2026-11-19T08:00:00Z is after its folder's date 2026-11-18 ends",
        # no date in the path, dateReleased after tomorrow: a clock's error
        put(landing, "enrichment/kev/feed.json", kev_doc("2099-01-01T00:00:00Z", "d")): "dated 2099-01-01, in the future",
    }
    s = ingest(landing, wh)
    assert (s.ingested, s.rejected) == (0, 4)
    errors = _errors(wh)
    for rel, why in bad.items():
        assert errors[rel].startswith("KEV catalog not read: ") and why in errors[rel], (rel, errors[rel])


def test_a_catalog_dated_by_its_release_is_known_from_that_day_on(tmp_path):
    # Released 2026-11-30T14:00Z, no date in its path: D = 2026-11-30. The week ending Mon 2026-11-30 00:00 uses
    # the catalog of 11-27 (CVE-2026-11111, added 11-30, unknown to it); the week ending 12-07 uses the new one.
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    older = put(landing, "enrichment/kev/2026-11-27/known_exploited_vulnerabilities.json",
                kev_doc("2026-11-27T17:02:40Z", "2026.11.27"))
    newer = put(landing, "enrichment/mirror/known_exploited_vulnerabilities.json",
                kev_doc("2026-11-30T14:00:00Z", "2026.11.30", extra_cve="CVE-2026-11111"))
    assert ingest(landing, wh).ingested == 2
    with connect(wh) as con:
        assert con.execute("SELECT catalog_date, date_released FROM kev_catalogs WHERE source_path = ?",
                           (newer,)).fetchone() == (date(2026, 11, 30), datetime(2026, 11, 30, 14))
        week48 = intel_as_of(con, datetime(2026, 11, 30))
        assert week48.kev_catalog.source_path == older and "CVE-2026-11111" not in week48.kev
        week49 = intel_as_of(con, datetime(2026, 12, 7))
        assert week49.kev_catalog.source_path == newer and week49.kev["CVE-2026-11111"].date_added == date(2026, 11, 30)
    # the gate, by the same rule: on 11-29 the catalog of 11-27; from 11-30 on the new one
    assert load_kev(None, landing, datetime(2026, 11, 29, 23, 59)).path == str(landing / older)
    judged = load_kev(None, landing, datetime(2026, 12, 1, 12))
    assert judged.path == str(landing / newer) and "CVE-2026-11111" in judged.by_cve


def test_two_catalogs_of_one_day_the_later_release_then_the_last_path_is_used_by_figures_and_gate(tmp_path):
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    # 11-25: the collector's file released 10:00, a copy released 18:00 (CISA published twice): the later one,
    # though its path sorts first ("backup" < "known...")
    put(landing, "enrichment/kev/2026-11-25/known_exploited_vulnerabilities.json", kev_doc("2026-11-25T10:00:00Z", "am"))
    later = put(landing, "enrichment/kev/2026-11-25/backup/kev.json", kev_doc("2026-11-25T18:00:00Z", "pm"))
    assert ingest(landing, wh).ingested == 2
    with connect(wh) as con:
        assert intel_as_of(con, datetime(2026, 11, 30)).kev_catalog.source_path == later
    assert load_kev(None, landing, datetime(2026, 11, 30)).path == str(landing / later)
    # 11-26: the same file in two folders (same dateReleased): the path that sorts last, each time
    same = kev_doc("2026-11-26T17:00:00Z", "copy")
    put(landing, "enrichment/kev/2026-11-26/known_exploited_vulnerabilities.json", same)
    last = put(landing, "enrichment/kev/mirror/known_exploited_vulnerabilities-2026-11-26.json", same)
    assert ingest(landing, wh).ingested == 2
    with connect(wh) as con:
        assert intel_as_of(con, datetime(2026, 11, 30)).kev_catalog.source_path == last
    assert load_kev(None, landing, datetime(2026, 11, 30)).path == str(landing / last)


def test_the_gate_passes_over_a_catalog_that_does_not_read_as_ingest_rejects_it(tmp_path):
    landing = tmp_path / "landing"
    good = put(landing, "enrichment/kev/known_exploited_vulnerabilities-2026-11-20.json",
               kev_doc("2026-11-20T17:00:00Z", "good"))
    put(landing, "enrichment/kev/2026-11-27/known_exploited_vulnerabilities.json", b'{"vulnerabilities": [}')
    assert load_kev(None, landing, datetime(2026, 12, 1)).path == str(landing / good)


def test_epss_files_are_read_in_the_common_layouts_with_their_date(tmp_path):
    # One file per ISO week, so each keeps its rows: W45 11-02, W46 11-09, W47 11-16, W48 11-23, W49 11-30.
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    row = [("CVE-2021-44228", "0.94358", "0.99957")]
    expected = {   # path -> (D, model_version, rows)
        put(landing, "enrichment/epss/2026-11-30/epss_scores-2026-11-30.csv.gz",              # the collector's
            gz(epss_csv(row, "2026-11-30"))): (date(2026, 11, 30), "v2025.03.14", 1),
        put(landing, "enrichment/epss/epss_scores-2026-11-23.csv.gz",                         # the name's date
            gz(epss_csv(row * 1 + [("CVE-2024-3094", "0.84823", "0.99285")], "2026-11-23"))):
            (date(2026, 11, 23), "v2025.03.14", 2),
        put(landing, "enrichment/epss/2026-11-16/scores.csv", epss_csv(row, "2026-11-16")):   # plain CSV, folder
            (date(2026, 11, 16), "v2025.03.14", 1),
        put(landing, "enrichment/first-mirror/epss_scores-current.csv.gz",                    # the first line's
            gz(epss_csv(row, "2026-11-09"))): (date(2026, 11, 9), "v2025.03.14", 1),
        put(landing, "enrichment/epss/2026-11-02/epss_scores-2026-11-02.csv.gz",              # no comment line
            gz(epss_csv(row, None))): (date(2026, 11, 2), None, 1),
    }
    ignored = put(landing, "enrichment/epss/README.md", "# scores from FIRST\n")
    s = ingest(landing, wh)
    assert (s.ingested, s.rejected, s.ignored) == (5, 0, 1)
    with connect(wh) as con:
        got = {r[0]: r[1:4] for r in con.execute(
            "SELECT source_path, score_date, model_version, rows_read FROM epss_files WHERE rows_kept").fetchall()}
        assert got == expected
        assert con.execute("SELECT kind FROM source_files WHERE path = ?", (ignored,)).fetchone() == ("other",)
        # the week ending Mon 11-30 00:00 uses the file of 11-23 (D < T)
        week = intel_as_of(con, datetime(2026, 11, 30), cves=["CVE-2024-3094"])
        assert week.epss_file.source_path == "enrichment/epss/epss_scores-2026-11-23.csv.gz"
        assert week.epss["CVE-2024-3094"].epss == 0.84823


def test_epss_dates_that_disagree_or_are_missing_are_rejected_by_name(tmp_path, monkeypatch):
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    row = [("CVE-2021-44228", "0.9", "0.99")]
    bad = {
        put(landing, "enrichment/epss/2026-10-05/scores.csv.gz", gz(epss_csv(row, "2026-10-04"))):
            "score_date 2026-10-04 in the file's first line is not its folder's date 2026-10-05",
        put(landing, "enrichment/epss/epss_scores-2026-10-06.csv", epss_csv(row, "2026-10-07")):
            "score_date 2026-10-07 in the file's first line is not its name's date 2026-10-06",
        put(landing, "enrichment/epss/2026-10-08/epss_scores-2026-10-09.csv.gz", gz(epss_csv(row, "2026-10-08"))):
            "its name's date 2026-10-09 is not its folder's date 2026-10-08",
        put(landing, "enrichment/epss/latest.csv", epss_csv(row, None)): "no score_date",
        put(landing, "enrichment/epss/current/epss_scores-current.csv.gz", gz(epss_csv(row, "2099-01-01"))):
            "dated 2099-01-01, in the future",
        # a plain CSV is held to the inflated budget (cut to 200 bytes here)
        put(landing, "enrichment/epss/2026-10-10/scores.csv", epss_csv(row * 1 + [
            (f"CVE-2020-{10000 + i}", "0.1", "0.5") for i in range(20)], "2026-10-10")):
            "over the uncompressed EPSS file limit of 200",
    }
    monkeypatch.setattr(intel_files, "MAX_EPSS_CSV_BYTES", 200)
    s = ingest(landing, wh)
    assert (s.ingested, s.rejected) == (0, len(bad))
    errors = _errors(wh)
    for rel, why in bad.items():
        assert errors[rel].startswith("EPSS file not read: ") and why in errors[rel], (rel, errors[rel])


def test_two_epss_files_of_one_day_the_last_path_keeps_the_rows(tmp_path):
    # The same day in two folders, different scores: "enrichment/epss/mirror/..." sorts after
    # "enrichment/epss/2026-12-01/..." ('m' > '2'), so the mirror's rows are the week's, whatever the order read.
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    put(landing, "enrichment/epss/2026-12-01/epss_scores-2026-12-01.csv.gz",
        gz(epss_csv([("CVE-2024-3094", "0.8", "0.99")], "2026-12-01")))
    mirror = put(landing, "enrichment/epss/mirror/epss_scores-2026-12-01.csv.gz",
                 gz(epss_csv([("CVE-2024-3094", "0.81", "0.991")], "2026-12-01")))
    assert ingest(landing, wh).ingested == 2
    with connect(wh) as con:
        assert con.execute("SELECT source_path FROM epss_files WHERE rows_kept").fetchall() == [(mirror,)]
        week = intel_as_of(con, datetime(2026, 12, 7), cves=["CVE-2024-3094"])
        assert week.epss_file.source_path == mirror and week.epss["CVE-2024-3094"].epss == 0.81


def test_a_split_comment_line_is_read(tmp_path):
    # a mirror that writes FIRST's fields on two comment lines
    path = tmp_path / "scores.csv"
    path.write_text("#model_version:v2023.03.01\n#score_date:2026-12-02\ncve,epss,percentile\nCVE-1999-0001,0.0046,0.7385\n")
    read = intel_files.read_epss_file(path, None, keep_rows=True)
    assert (read.score_date, read.model_version, read.cves) == (date(2026, 12, 2), "v2023.03.01", ["CVE-1999-0001"])


def test_a_mirror_file_rewritten_with_a_later_date_leaves_its_old_week_to_the_files_still_there(tmp_path):
    # W48 runs 11-23..11-29. The mirror's undated file scores 11-26 (W48's newest: it keeps the rows; the 11-24
    # file does not). Rewritten as 12-01 (W49), it takes W49; W48 falls back to the 11-24 file, read again.
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    put(landing, "enrichment/epss/2026-11-24/epss_scores-2026-11-24.csv.gz",
        gz(epss_csv([("CVE-2024-3094", "0.7", "0.98")], "2026-11-24")))
    mirror = put(landing, "enrichment/mirror/epss_scores-current.csv.gz",
                 gz(epss_csv([("CVE-2024-3094", "0.8", "0.99")], "2026-11-26")))
    assert ingest(landing, wh).ingested == 2
    kept = "SELECT strftime(score_date, '%m-%d'), count(*) FROM epss_scores GROUP BY 1 ORDER BY 1"
    with connect(wh) as con:
        assert con.execute(kept).fetchall() == [("11-26", 1)]
    put(landing, mirror, gz(epss_csv([("CVE-2024-3094", "0.9", "0.995"), ("CVE-2021-44228", "0.94", "0.999")],
                                     "2026-12-01")))
    assert ingest(landing, wh).ingested == 1
    with connect(wh) as con:
        assert con.execute(kept).fetchall() == [("11-24", 1), ("12-01", 2)]
        assert con.execute("SELECT source_path, strftime(score_date, '%m-%d'), rows_kept FROM epss_files "
                           "ORDER BY 1").fetchall() == [
            ("enrichment/epss/2026-11-24/epss_scores-2026-11-24.csv.gz", "11-24", True), (mirror, "12-01", True)]
        assert intel_as_of(con, datetime(2026, 11, 30), cves=["CVE-2024-3094"]).epss["CVE-2024-3094"].epss == 0.7
