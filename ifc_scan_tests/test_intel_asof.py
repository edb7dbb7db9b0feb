"""The as-of rule for KEV and EPSS (issue 31): a week ending T uses only files dated before T."""

from datetime import date, datetime

from ifc_scan.intel.asof import intel_as_of
from ifc_scan.warehouse.db import connect


def _warehouse(tmp_path):
    return connect(tmp_path / "w.duckdb")


def _kev(con, d: date, entries):
    con.execute("INSERT INTO kev_catalogs VALUES (?, ?, ?, ?, ?, 'x')", (d, f"{d}.1", datetime.combine(d, datetime.min.time()), len(entries), f"enrichment/kev/{d}/known_exploited_vulnerabilities.json"))
    for cve, added, due in entries:
        con.execute("INSERT INTO kev_entries VALUES (?, ?, 'v', 'p', 'n', ?, ?, 'Known', 'apply', ?)",
                    (d, cve, added, due, f"enrichment/kev/{d}/known_exploited_vulnerabilities.json"))


def test_a_week_uses_only_files_dated_before_its_end(tmp_path):
    # Week 2026-W48: Monday 2026-11-23 to T = Monday 2026-11-30 00:00 (exclusive).
    # Catalog of Sunday 11-29 lists CVE-A (added 11-20). Catalog of Monday 11-30 also lists CVE-B (added 11-30).
    # The week ending T uses the Sunday catalog: CVE-A only. The next week (T = 12-07) sees both.
    with _warehouse(tmp_path) as con:
        _kev(con, date(2026, 11, 29), [("CVE-2026-0001", date(2026, 11, 20), date(2026, 12, 11))])
        _kev(con, date(2026, 11, 30), [("CVE-2026-0001", date(2026, 11, 20), date(2026, 12, 11)),
                                       ("CVE-2026-0002", date(2026, 11, 30), date(2026, 12, 21))])
        con.execute("INSERT INTO epss_files VALUES ('2026-11-30', 'v2025.03.14', 2, true, 'e/30', 'x')")
        con.execute("INSERT INTO epss_scores VALUES ('2026-11-30', 'CVE-2026-0001', 0.9, 0.99), "
                    "('2026-11-30', 'CVE-2026-0002', 0.1, 0.5)")
        w48 = intel_as_of(con, datetime(2026, 11, 30))
        assert w48.kev_catalog.file_date == date(2026, 11, 29)
        assert sorted(w48.kev) == ["CVE-2026-0001"]
        assert w48.epss_file is None and w48.epss == {}            # the EPSS file of 11-30 is not yet known
        w49 = intel_as_of(con, datetime(2026, 12, 7), cves=["CVE-2026-0002"])
        assert sorted(w49.kev) == ["CVE-2026-0001", "CVE-2026-0002"]
        assert w49.kev["CVE-2026-0002"].due_date == date(2026, 12, 21)
        assert list(w49.epss) == ["CVE-2026-0002"] and w49.epss["CVE-2026-0002"].percentile == 0.5


def test_an_entry_added_on_or_after_the_end_is_left_out(tmp_path):
    # A catalog dated 11-29 claiming an entry added 11-30 (impossible; a clock or a mirror's error): a week
    # ending 11-30 does not count it.
    with _warehouse(tmp_path) as con:
        _kev(con, date(2026, 11, 29), [("CVE-2026-0003", date(2026, 11, 30), date(2026, 12, 21))])
        assert intel_as_of(con, datetime(2026, 11, 30)).kev == {}
        # mid-day end (a gate run at 12:00 on 11-30): files dated 11-30 are known, so is the entry
        assert list(intel_as_of(con, datetime(2026, 11, 30, 12)).kev) == ["CVE-2026-0003"]
