"""Freshness (D23), the requirements behind the verdict, and the verdict itself, on hand-built weeks; every
expected figure is worked out by hand in the comments (policy: scan_gap_hours 48, coverage target 100 %)."""

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
    # 13 controls: 7 fail; 9.1 (verify), 8.32 / CC8.1 / CC6.8 (no deploy) and CC9.1 (no approvals) have no data;
    # A08 has no data too (no deploy): 13 - 6 = 7 judged, none passing
    assert v.controls_passing() == (0, 7)
    assert v.verdict_line().startswith("2026-W10: NOT COMPLIANT - 5 of 6 requirements met (not met: Nightly "
                                       "coverage %) - 7 of 13 controls fail")
