"""Freshness (D23), the requirements behind the verdict, and the verdict itself, on hand-built weeks; every
expected figure is worked out by hand in the comments (policy: scan_gap_hours 48, coverage target 100 %)."""

import re
from datetime import date, datetime

import pytest

from ifc_scan.kpis.targets import Targets, judge_targets
from ifc_scan.kpis.view import WeekKpis
from ifc_scan.policy import load_policy
from ifc_scan_tests.scenario import Scenario, vuln

MON = date(2026, 3, 2)          # week 2026-W10: [Mon 03-02 00:00, Mon 03-09 00:00)
NIGHTLY_CONTROLS = ["OWASP Top 10 A06:2021", "OWASP Top 10 A03:2025", "ISO/IEC 27001 8.8", "SOC 2 CC7.1",
                    "SOC 2 CC6.6", "NIST SP 800-53 RA-5, SI-2(3)", "CIS Controls 7.5, 7.7"]


def D(day, h=0, m=0):
    return datetime(2026, 3, day, h, m)


@pytest.fixture
def sc(tmp_path):
    return Scenario(tmp_path)


def card(k: dict, key: str):
    return next(t for t in judge_targets(WeekKpis(k), Targets.from_policy(load_policy()), []) if t.key == key)


def req(k: dict, key: str) -> dict:
    return next(r for r in k["requirements"] if r["key"] == key)


def test_an_image_scanned_62_hours_before_T_is_stale_and_its_zero_is_not_met(sc):
    sc.registry_scan("A", D(2, 2), [vuln("CVE-1", "openssl", "HIGH")])
    sc.registry_scan("A", D(6, 10), [vuln("CVE-1", "openssl", "HIGH")])   # newest scan: Fri 10:00
    k = sc.kpis(MON)
    fr = k["freshness"]
    # Fri 10:00 -> Mon 00:00 = 14 h + 24 h + 24 h = 62 h > 48 h
    assert fr["images"] == [{"lineage": "ghcr.io/acme/api", "image": fr["images"][0]["image"],
                             "last_scan_at": "2026-03-06T10:00:00Z", "age_hours": 62.0, "stale": True}]
    assert fr["stale"] == 1 and fr["window_hours"] == 48
    assert (fr["scans_in_week"], fr["ci_events_in_week"], fr["no_new_evidence"]) == (2, 0, False)
    assert fr["last_evidence_at"] == "2026-03-06T10:00:00Z"
    # 0 CRITICAL, but read from a 62 h old scan: shown as stale, neither met nor a pass
    assert k["critical_in_prod"]["count"] == 0
    crit = card(k, "zero_critical_in_production")
    assert crit.value == 0 and crit.status == "stale" and crit.passed is None
    assert req(k, "zero_critical_in_production")["status"] == "stale"
    assert req(k, "no_open_overdue")["status"] == "stale"     # 0 overdue, same stale scan
    # the freshness requirement names the image and its age
    fresh = req(k, "scans_current")
    assert fresh["status"] == "not met"
    assert fresh["items"][0] == {"kind": "stale_image", "lineage": "ghcr.io/acme/api",
                                 "last_scan_at": "2026-03-06T10:00:00Z", "age_hours": 62.0}
    assert WeekKpis(k).verdict != "NO NEW EVIDENCE"


def test_an_image_scanned_36_hours_before_T_is_current_and_its_zero_is_met(sc):
    sc.registry_scan("A", D(7, 12), [vuln("CVE-1", "openssl", "HIGH")])   # Sat 12:00 -> T: 12 h + 24 h = 36 h
    k = sc.kpis(MON)
    assert k["freshness"]["images"][0]["age_hours"] == 36.0 and k["freshness"]["stale"] == 0
    assert card(k, "zero_critical_in_production").status == "met"


def test_a_week_without_any_evidence_has_its_own_verdict_naming_the_last_evidence(sc):
    sc.registry_scan("A", datetime(2026, 2, 27, 2), [vuln("CVE-1", "openssl", "HIGH")])   # W09's Friday, nothing after
    k = sc.kpis(MON)
    fr = k["freshness"]
    # Fri 02-27 02:00 -> Sun 03-01 02:00 = 48 h; -> Mon 03-09 00:00 = 8 d - 2 h = 190 h; 238 h in all
    assert fr["images"][0]["age_hours"] == 238.0 and fr["images"][0]["stale"]
    assert (fr["scans_in_week"], fr["ci_events_in_week"], fr["no_new_evidence"]) == (0, 0, True)
    v = WeekKpis(k)
    assert v.verdict == "NO NEW EVIDENCE"
    assert v.verdict_line() == ("2026-W10: NO NEW EVIDENCE - no evidence received since 2026-02-27 02:00Z, "
                                "check the collectors")


def test_one_missed_night_is_one_unmet_requirement_explaining_seven_controls(sc):
    for day in (2, 3, 5, 6, 7, 8):      # every night but Wed 03-04: Tue 02:00 -> Thu 02:00 is 48 h, not over
        sc.registry_scan("A", D(day, 2), [vuln("CVE-1", "zlib", "LOW")])
    k = sc.kpis(MON)
    v = WeekKpis(k)
    unmet = v.unmet_requirements
    assert [r["key"] for r in unmet] == ["nightly_coverage"]
    night = unmet[0]
    assert night["value"] == 85.71 and night["target"] == ">= 100 %"         # 6 of 7 image-days
    assert night["items"] == [{"kind": "nightly_gap", "lineage": "ghcr.io/acme/api", "day": "2026-03-04"}]
    # the seven controls whose rules include nightly coverage fail, each named once, all by this requirement
    assert sorted(night["controls"]) == sorted(NIGHTLY_CONTROLS)
    assert sorted(f"{c['framework']} {c['id']}" for c in v.failing_controls) == sorted(NIGHTLY_CONTROLS)
    assert all(r["controls"] == [] for r in k["requirements"] if r["key"] != "nightly_coverage")
    # judged: scans current, CRITICAL in prod, nightly, overdue, expired listed, exception lines = 6;
    # no data: build gate (no build), MTTR x3 (no fix), deploys, approvals and tickets (not collected), verify
    assert v.requirements_met() == (5, 6)
    # 17 controls: 7 fail; 9.1 (verify), 8.32 / CC8.1 / CC6.8 (no deploy) and CC9.1 (no approvals) have no data;
    # A08 has no data too (no deploy); CISA BOD 22-01 and PCI DSS 6.3.1, 6.3.3, 11.3.1 have no data (no KEV
    # catalog collected, D26): 17 - 10 = 7 judged, none passing
    assert v.controls_passing() == (0, 7)
    assert v.verdict_line().startswith("2026-W10: NOT COMPLIANT - 5 of 6 requirements met (not met: Nightly "
                                       "coverage %) - 7 of 17 controls fail")


def publish(sc, mondays: list[date]):
    """Ingest the scenario and publish these weeks as `ifc-scan report` does; returns the reports folder."""
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.pipeline import publish_weeks
    from ifc_scan.warehouse.db import connect
    ingest(sc.landing, sc.root / "w.duckdb", progress=lambda m: None)
    policy = load_policy()
    with connect(sc.root / "w.duckdb") as con:
        derive_lifecycle(con, policy)
        publish_weeks(con, policy, mondays, sc.root / "reports", landing=str(sc.landing), first_week=mondays[0])
    return sc.root / "reports"


def section(html: str, sid: str) -> str:
    start = html.index(f'<section id="{sid}"')
    return html[start:html.index("</section>", start)]


def test_a_stale_zero_is_printed_stale_never_met(sc):
    sc.registry_scan("A", D(6, 10), [vuln("CVE-1", "openssl", "HIGH")])   # 62 h before T, as above
    html = (publish(sc, [MON]) / "2026-W10" / "report.html").read_text()
    cards = section(html, "headline")
    crit = cards[cards.index("CRITICAL in production"):][:700]
    assert '<div class="v">0 <span class="stale-tag">stale</span>' in crit and "<b>stale</b>" in crit
    assert "· met" not in crit
    assert 'class="card stale"' in cards


@pytest.fixture
def three_weeks(sc):
    """W09: every night scanned, one LOW. W10: no scan on Wed 03-04; a CRITICAL disclosed Sat 03-07 02:00 (due Sun
    03-08 02:00, so 22 h late at T). W11: nothing received at all."""
    for day in range(23, 29):
        sc.registry_scan("A", datetime(2026, 2, day, 2), [vuln("CVE-1", "zlib", "LOW")])
    sc.registry_scan("A", D(1, 2), [vuln("CVE-1", "zlib", "LOW")])
    for day in (2, 3, 5, 6):
        sc.registry_scan("A", D(day, 2), [vuln("CVE-1", "zlib", "LOW")])
    for day in (7, 8):
        sc.registry_scan("A", D(day, 2), [vuln("CVE-1", "zlib", "LOW"), vuln("CVE-C", "openssl", "CRITICAL")])
    return publish(sc, [date(2026, 2, 23), MON, date(2026, 3, 9)])


def test_the_verdict_names_each_unmet_requirement_with_its_items_linked_to_their_rows(three_weeks):
    html = (three_weeks / "2026-W10" / "report.html").read_text()
    verdict = section(html, "verdict")
    # judged: current scans, CRITICAL in prod, nightly, overdue, expired listed, exception lines = 6; met: current
    # scans (newest Sun 02:00, 22 h), expired listed (0), exception lines (0) = 3; 17 controls (the 4 of issue 31
    # have no data without a KEV catalog)
    assert "<h2>2026-W10: NOT COMPLIANT - 3 of 6 requirements met - 7 of 17 controls fail</h2>" in verdict
    reqs = re.findall(r'<li id="req-([a-z_]+)"><b>([^<]+)</b>', verdict)
    assert reqs == [("zero_critical_in_production", "CRITICAL in production"),
                    ("nightly_coverage", "Nightly coverage %"), ("no_open_overdue", "Open findings past due")]
    night = verdict[verdict.index('id="req-nightly_coverage"'):]
    night = night[:night.index("</li>")]
    assert "85.7 against &gt;= 100 %" in night                                  # 6 of 7 nights
    assert night.count('href="#ctl-') == 7                                      # each mapped control once
    # every link of the verdict lands on a row of this page, and the gap's link on the row of that day
    ids = set(re.findall(r' id="([^"]+)"', html))
    targets = re.findall(r'href="#([^"]+)"', verdict)
    assert targets and all(t in ids for t in targets), [t for t in targets if t not in ids]
    gap = re.search(r'<a href="#(g-[0-9a-f]+)">ghcr', night).group(1)
    row = html[html.index(f'<tr id="{gap}">'):][:200]
    assert "2026-03-04" in row
    overdue = verdict[verdict.index('id="req-no_open_overdue"'):]
    assert "(22 h ago)" in overdue[:overdue.index("</li>")]                     # due Sun 02:00, T Mon 00:00
    # the finding's row says it in hours, not "0 d"
    assert "22 h late" in section(html, "findings-section") and "0 d" not in section(html, "findings-section")


def test_a_week_without_evidence_says_so_first_on_its_page_and_the_index(three_weeks):
    html = (three_weeks / "2026-W11" / "report.html").read_text()
    verdict = section(html, "verdict")
    assert 'class="verdict stale"' in verdict
    assert ("<h2>2026-W11: NO NEW EVIDENCE - no evidence received since 2026-03-08 02:00Z, check the collectors</h2>"
            in verdict)
    # Sun 03-08 02:00 -> Mon 03-16 00:00 = 7 d 22 h
    assert "7 d 22 h" in section(html, "coverage")
    index = (three_weeks / "index.html").read_text()
    row = index[index.index('<tr id="w-2026-W11">'):]
    row = row[:row.index("</tr>")]
    assert "NO NEW EVIDENCE" in row and "no evidence received since 2026-03-08 02:00Z" in row


def test_the_index_gives_degree_direction_and_the_unmet_requirements_of_each_week(three_weeks):
    index = (three_weeks / "index.html").read_text()
    # W09 6 of 6; W11: current scans (190 h), CRITICAL (1), nightly (0 of 7) and overdue unmet: 2 of 6
    assert "2026-W11: 2 of 6 requirements met, down from 6 of 6 in 2026-W09 (2 weeks before)." in index
    row = index[index.index('<tr id="w-2026-W10">'):]
    row = row[:row.index("</tr>")]
    assert "<td class=\"n\">3 of 6</td><td class=\"unmet\">CRITICAL in production; Nightly coverage %; Open findings past due</td>" in row
    # new and resolved: W09 CVE-1 onboarded (1 new), W10 CVE-C disclosed (1 new), nothing closed
    strip = section(index, "direction")
    assert re.search(r"<th>New findings</th>\s*<td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">0</td>", strip)
    assert re.search(r"<th>Resolved findings</th>\s*(<td class=\"n\">0</td>){3}", strip)
    assert '<a href="2026-W10/report.html">' in index


def test_weeks_link_to_the_index_and_to_each_other_through_it(three_weeks):
    """A published page never changes, so its previous and next weeks are rows of the index (regenerated on
    every publication): the next week's link works once that week is published, and nothing links outside
    a folder of weeks with its index (the audit pack)."""
    w09, w10, w11 = ((three_weeks / w / "report.html").read_text() for w in ("2026-W09", "2026-W10", "2026-W11"))
    nav = w10[w10.index('<nav id="weeks"'):]
    nav = nav[:nav.index("</nav>")]
    assert '<a href="../index.html">All weeks</a>' in nav
    assert '<a href="../index.html#w-2026-W09" rel="prev">' in nav and '<a href="../index.html#w-2026-W11" rel="next">' in nav
    assert 'rel="prev"' not in w09.split("</nav>")[0]          # the first week published has none before it
    assert '<a href="../index.html#w-2026-W12" rel="next">' in w11    # listed there once it is published
    index = (three_weeks / "index.html").read_text()
    for page, folder in ((w09, "2026-W09"), (w10, "2026-W10"), (w11, "2026-W11")):   # every link lands
        for href in re.findall(r'href="(\.\./[^"]+)"', page):
            path, _, fragment = href.partition("#")
            assert (three_weeks / folder / path).resolve().is_file(), href
            assert not fragment or fragment == "w-2026-W12" or f'<tr id="{fragment}">' in index, href


def test_delivery_says_no_evidence_in_the_subject(three_weeks):
    from ifc_scan.deliver import read_published
    assert read_published(three_weeks, "2026-W11").subject() == (
        "[ifc_scan] 2026-W11: NO NEW EVIDENCE - no evidence received since 2026-03-08 02:00Z, check the collectors")
    # W10 received evidence: its verdict and its CRITICAL in production (CVE-C, open and overdue)
    assert read_published(three_weeks, "2026-W10").subject() == "[ifc_scan] 2026-W10: NOT COMPLIANT - 1 CRITICAL in production"


def test_an_unmet_mttr_names_the_fixes_behind_it(sc):
    sc.registry_scan("A", D(2, 2), [vuln("CVE-C", "openssl", "CRITICAL")])          # detected Mon 02:00
    sc.ci_run("B", D(3, 6), scan_t=D(3, 6, 5), vulns=[], push_t=D(3, 6, 10), deploy_t=D(3, 8))   # fixed by Tue 08:00's deploy
    k = sc.kpis(MON)
    mttr = req(k, "mttr_critical")
    # Mon 02:00 -> Tue 08:00 = 30 h, not under the 24 h target
    assert (mttr["status"], mttr["value"], mttr["target"]) == ("not met", 30.0, "< 24 h")
    assert [(i["kind"], i["finding"], i["ttr_hours"]) for i in mttr["items"]] == [("finding", "CVE-C", 30.0)]
    # NIST's MTTR condition fails on it: the requirement names that control (30 h over the 24 h SLA)
    assert "NIST SP 800-53 RA-5, SI-2(3)" in mttr["controls"]


def test_an_expired_exception_still_listed_is_named_with_its_file_and_line(sc):
    sc.registry_scan("A", D(8, 2), [vuln("CVE-7", "curl", "LOW")])
    sc.exceptions("_global", date(2026, 3, 1), "# no patch upstream\nCVE-7 exp:2026-03-05\n")   # line 2, lapsed Thu
    k = sc.kpis(MON)
    r = req(k, "no_expired_exception_listed")
    assert (r["status"], r["value"]) == ("not met", 1)
    assert [(i["file"], i["line"], i["id"]) for i in r["items"]] == [
        ("exceptions/_global/2026-03-01/.trivyignore", 2, "CVE-7")]
    assert "ISO/IEC 27001 8.8" in r["controls"]     # its rule: exceptions valid


def test_a_deploy_of_an_unscanned_digest_is_one_unmet_requirement_naming_its_run(sc):
    sc.registry_scan("A", D(2, 2), [])
    rid = sc.ci_run("B", D(3, 6), push_t=D(3, 6, 10), deploy_t=D(3, 8))     # built, pushed, deployed; never scanned
    k = sc.kpis(MON)
    r = req(k, "deploys_gated")
    assert (r["status"], r["value"]) == ("not met", "1 of 1 failed it")
    assert [(i["run_id"], i["time"], i["problem"]) for i in r["items"]] == [
        (rid, "2026-03-03T08:00:00Z", "no scan of this digest before it")]
    # the five controls whose rules include the scan gate of a deploy
    assert sorted(r["controls"]) == sorted(["OWASP Top 10 A03:2025", "OWASP Top 10 A08:2021 / A08:2025",
                                            "ISO/IEC 27001 8.32", "SOC 2 CC8.1", "SOC 2 CC6.8"])


def test_mttr_medium_over_its_sla_and_an_invalid_exception_line(sc):
    sc.registry_scan("A", datetime(2026, 1, 20, 2), [vuln("CVE-M", "zlib", "MEDIUM")])      # detected Jan 20 02:00
    sc.ci_run("B", D(3, 6), scan_t=D(3, 6, 5), vulns=[], push_t=D(3, 6, 10), deploy_t=D(3, 8))
    sc.exceptions("_global", date(2026, 3, 1), "CVE-5 exp:2026-13-01\n")          # month 13: Trivy drops the line
    k = sc.kpis(MON)
    m = req(k, "mttr_medium_low")
    # Jan 20 02:00 -> Mar 3 08:00: 11 d (to Jan 31) + 28 d (to Feb 28) + 3 d + 6 h = 42 d 6 h = 1014 h > 720 h
    assert k["mttr_hours"]["MEDIUM"]["mean"] == 1014.0
    assert (m["status"], m["value"], m["target"]) == ("not met", "MEDIUM 42 d 6 h", "MEDIUM <= 30 d, LOW <= 90 d")
    assert m["items"] == [{"kind": "mttr", "severity": "MEDIUM", "mean_h": 1014.0, "sla_h": 720}]
    assert m["controls"] == ["NIST SP 800-53 RA-5, SI-2(3)"]
    bad = req(k, "exception_lines_valid")
    assert (bad["status"], bad["value"]) == ("not met", 1)
    assert [(i["file"], i["line"], i["id"]) for i in bad["items"]] == [("exceptions/_global/2026-03-01/.trivyignore", 1, "CVE-5")]
    assert bad["controls"] == ["ISO/IEC 27001 8.8"]
