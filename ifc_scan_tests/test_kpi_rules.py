"""The remaining rules of design/KPIS.md, one hand-built scenario each. Expected figures are worked out
by hand in the comments. Week under test: 2026-W10 = [Mon 03-02 00:00, Mon 03-09 00:00) unless said."""

from datetime import date, datetime

import pytest

from ifc_scan.policy import load_policy
from ifc_scan.timeutil import iso_z
from ifc_scan.warehouse.db import connect
from ifc_scan_tests.scenario import Scenario, digest, vuln

MON = date(2026, 3, 2)
NEXT = date(2026, 3, 9)


def D(day, h=0, m=0):
    return datetime(2026, 3, day, h, m)


@pytest.fixture
def sc(tmp_path):
    return Scenario(tmp_path)


def finding(sc, vid):
    return next(r for r in sc.result.populations["findings"] if r["vulnerability_id"] == vid)


# ---- causes ---------------------------------------------------------------------------------

def test_introduced_by_a_new_image(sc):
    x, y = vuln("CVE-X", "a", "HIGH"), vuln("CVE-Y", "b", "HIGH")
    sc.registry_scan("A", D(2, 2), [x])                                   # x onboarded
    sc.ci_run("B", D(2, 10), scan_t=D(2, 10, 5), vulns=[x, y], push_t=D(2, 10, 10), deploy_t=D(2, 12))
    k = sc.kpis(MON)                                                      # y first present on B, new to the timeline
    assert k["new_findings"]["by_cause"] == {"introduced": 1, "disclosed": 0, "onboarded": 1}
    assert finding(sc, "CVE-Y")["cause"] == "introduced" and finding(sc, "CVE-Y")["detected_at"] == "2026-03-02T12:00:00Z"


def test_introduced_when_earlier_moments_of_the_image_never_looked(sc):
    z = vuln("CVE-Z", "c", "MEDIUM")
    sc.registry_scan("A", D(2, 2), [])
    # B deployed through a CRITICAL-only scan: that moment cannot see a MEDIUM finding
    sc.ci_run("B", D(2, 10), scan_t=D(2, 10, 5), vulns=[], severity="CRITICAL", push_t=D(2, 10, 10), deploy_t=D(2, 12))
    sc.registry_scan("B", D(3, 2), [z])                                   # first full look at B shows z
    k = sc.kpis(MON)
    assert finding(sc, "CVE-Z")["cause"] == "introduced"                  # not disclosed: B was never looked at for it
    assert k["new_findings"]["MEDIUM"]["introduced"] == 1


# ---- partial scans ----------------------------------------------------------------------------

def test_ignore_unfixed_scan_cannot_close_unfixed_findings(sc):
    unfixed, fixable = vuln("CVE-U", "a", "HIGH", fixed=None), vuln("CVE-F", "b", "HIGH")
    sc.registry_scan("A", D(2, 2), [unfixed, fixable])
    sc.ci_run("B", D(3, 10), scan_t=D(3, 10, 5), vulns=[], with_extra={"ignore-unfixed": "true"},
              push_t=D(3, 10, 10), deploy_t=D(3, 12))
    k = sc.kpis(MON)
    # CVE-F (has a fix) absent from B: fixed Tue 12:00; CVE-U not looked at: stays open
    assert k["remediated"]["HIGH"] == 1 and k["open_backlog"]["HIGH"]["total"] == 1
    assert finding(sc, "CVE-U")["state"] == "open"


def test_vuln_type_os_scan_cannot_close_library_findings(sc):
    osv, lib = vuln("CVE-OS", "openssl", "HIGH"), vuln("CVE-LIB", "lodash", "HIGH", cls="lang-pkgs")
    sc.registry_scan("A", D(2, 2), [osv, lib])
    sc.ci_run("B", D(3, 10), scan_t=D(3, 10, 5), vulns=[], with_extra={"vuln-type": "os"},
              push_t=D(3, 10, 10), deploy_t=D(3, 12))
    k = sc.kpis(MON)
    assert k["remediated"]["HIGH"] == 1
    assert finding(sc, "CVE-LIB")["state"] == "open" and finding(sc, "CVE-OS")["close_reason"] == "fixed"


# ---- production timeline ----------------------------------------------------------------------

def test_deploy_of_an_unscanned_image_changes_nothing_until_its_first_scan(sc):
    x = vuln("CVE-X", "a", "HIGH")
    sc.registry_scan("A", D(2, 2), [x])
    sc.ci_run("B", D(2, 10), push_t=D(2, 10, 10), deploy_t=D(2, 12))     # no scan of B in its run
    sc.registry_scan("B", D(3, 2), [])                                    # the next nightly: first scan of B
    k = sc.kpis(MON)
    # x closes at Tue 02:00 (the first scan of B), not at the Mon 12:00 deploy: 24 h, not 10 h
    assert k["mttr_hours"]["HIGH"]["mean"] == 24.0
    assert k["coverage"]["build_gate"]["covered"] == 0 and k["coverage"]["build_gate"]["builds"] == 1


def test_staging_deploys_do_not_move_the_current_image(sc):
    x = vuln("CVE-X", "a", "HIGH")
    sc.registry_scan("A", D(2, 2), [x])
    sc.ci_run("B", D(2, 10), scan_t=D(2, 10, 5), vulns=[], push_t=D(2, 10, 10), deploy_t=D(2, 12), env="staging")
    k = sc.kpis(MON)
    assert k["remediated"]["total"] == 0 and finding(sc, "CVE-X")["state"] == "open"


def test_deploy_through_an_older_scan_does_not_judge_later_findings(sc):
    y = vuln("CVE-Y", "a", "HIGH")
    sc.registry_scan("A", D(2, 2), [])
    sc.ci_run("B", D(2, 10), scan_t=D(2, 10, 5), vulns=[], push_t=D(2, 10, 10))   # B scanned Mon 10:05
    sc.registry_scan("A", D(3, 2), [y])                                   # y disclosed on A, Tue 02:00
    # B deployed Tue 12:00: evaluated through the Mon 10:05 scan, taken before y was detected,
    # so y is not looked at and stays open
    sc.deploy("B", D(3, 12))
    sc.registry_scan("B", D(4, 2), [])                                    # Wed 02:00: y absent on B: fixed
    k = sc.kpis(MON)
    assert finding(sc, "CVE-Y")["cause"] == "disclosed"
    # Tue 02:00 -> Wed 02:00 = 24 h (it would be 10 h had the deploy moment closed it)
    assert k["mttr_hours"]["HIGH"] == {"n": 1, "mean": 24.0, "median": 24.0, "p90": 24.0, "max": 24.0}


# ---- severity and due -------------------------------------------------------------------------

def test_a_fall_never_extends_due(sc):
    sc.registry_scan("A", D(2, 0), [vuln("CVE-1", "a", "CRITICAL")])     # due Tue 00:00
    sc.registry_scan("A", D(3, 0), [vuln("CVE-1", "a", "LOW")])          # falls to LOW: due stays Tue 00:00
    k = sc.kpis(MON)
    assert k["sla"]["LOW"]["open_overdue"] == 1 and k["sla"]["LOW"]["open_within"] == 0


def test_unknown_to_anything_is_a_rise(sc):
    sc.registry_scan("A", D(2, 0), [vuln("CVE-1", "a", "UNKNOWN")])      # no SLA, no due
    sc.registry_scan("A", D(4, 0), [vuln("CVE-1", "a", "CRITICAL")])     # rise: due Wed 00:00 + 24 h = Thu 00:00
    k = sc.kpis(MON)
    assert k["sla"]["CRITICAL"]["open_overdue"] == 1
    assert finding(sc, "CVE-1")["due_at"] == "2026-03-05T00:00:00Z"


def test_due_exactly_at_T_is_within(sc):
    sc.registry_scan("A", D(2, 0), [vuln("CVE-1", "a", "HIGH")])         # due 03-02 + 168 h = 03-09 00:00 = T
    k = sc.kpis(MON)
    assert k["sla"]["HIGH"]["open_within"] == 1 and k["sla"]["HIGH"]["open_overdue"] == 0


def test_a_lapsed_exception_leaves_a_past_due_finding_overdue_at_once(sc):
    sc.exceptions("_global", date(2026, 3, 1), "CVE-1 exp:2026-03-06  # awaiting patch\n")
    sc.registry_scan("A", D(2, 2), [vuln("CVE-1", "a", "CRITICAL")])     # due Tue 02:00; excepted until Fri 00:00
    k = sc.kpis(MON)
    assert k["sla"]["CRITICAL"]["open_overdue"] == 1 and k["sla"]["CRITICAL"]["excepted"] == 0
    assert k["critical_in_prod"] == {"count": 1, "excepted": 0}
    assert k["exceptions"]["expired_listed"] == 1


# ---- MTTR statistics and counting ---------------------------------------------------------------

def test_mttr_mean_median_p90_max_over_several_fixes(sc):
    v = [vuln(f"CVE-{i}", f"p{i}", "HIGH") for i in range(1, 5)]
    sc.registry_scan("A", D(2, 0), v)
    # each deploy drops one more: fixes at 10 h, 20 h, 30 h and 100 h after Mon 00:00
    for img, t, keep in (("B", D(2, 10), v[1:]), ("C", D(2, 20), v[2:]), ("E", D(3, 6), v[3:]), ("F", D(6, 4), [])):
        sc.ci_run(img, t - (D(2, 1) - D(2, 0)), scan_t=t - (D(2, 0, 30) - D(2, 0)), vulns=keep,
                  push_t=t - (D(2, 0, 20) - D(2, 0)), deploy_t=t)
    k = sc.kpis(MON)
    # mean (10+20+30+100)/4 = 40; median (20+30)/2 = 25; p90 at rank 0.9*3 = 2.7: 30 + 0.7*70 = 79; max 100
    assert k["mttr_hours"]["HIGH"] == {"n": 4, "mean": 40.0, "median": 25.0, "p90": 79.0, "max": 100.0}


def test_a_finding_fixed_twice_in_the_week_counts_twice(sc):
    x = vuln("CVE-X", "a", "HIGH")
    sc.registry_scan("A", D(2, 0), [x])
    sc.ci_run("B", D(2, 9), scan_t=D(2, 9, 30), vulns=[], push_t=D(2, 9, 40), deploy_t=D(2, 10))     # fixed, 10 h
    sc.ci_run("C", D(2, 23), scan_t=D(2, 23, 30), vulns=[x], push_t=D(2, 23, 40), deploy_t=D(3, 0))  # reopened
    sc.ci_run("E", D(3, 23), scan_t=D(3, 23, 30), vulns=[], push_t=D(3, 23, 40), deploy_t=D(4, 0))   # fixed, 48 h
    k = sc.kpis(MON)
    assert k["remediated"]["HIGH"] == 2 and k["remediated"]["regressions"] == 1
    # both durations from the unchanged detected_at Mon 00:00: 10 h and 48 h
    assert k["mttr_hours"]["HIGH"] == {"n": 2, "mean": 29.0, "median": 29.0, "p90": 44.2, "max": 48.0}


def test_backlog_age_buckets_have_inclusive_lower_bounds(sc):
    sc.registry_scan("A", D(2, 0), [vuln("CVE-7D", "a", "LOW")])          # age at T exactly 168 h: 7-30d
    sc.registry_scan("A", D(8, 0), [vuln("CVE-7D", "a", "LOW"), vuln("CVE-1D", "b", "LOW")])  # exactly 24 h: 1-7d
    k = sc.kpis(MON)
    b = k["open_backlog"]["LOW"]
    assert (b["0-24h"], b["1-7d"], b["7-30d"], b["total"]) == (0, 1, 1, 2)


# ---- build-gate coverage ------------------------------------------------------------------------

def test_a_gate_failed_scan_still_covers_its_build(sc):
    sc.registry_scan("A", D(2, 2), [])
    sc.ci_run("B", D(3, 10), scan_t=D(3, 10, 5), vulns=[vuln("CVE-C", "a", "CRITICAL")], gate_failed=True)
    k = sc.kpis(MON)
    assert k["coverage"]["build_gate"] == {"builds": 1, "covered": 1, "pct": 100.0, "uncovered": []}


def test_scan_before_first_production_deploy_covers_an_unpushed_build(sc):
    sc.ci_run("B", D(2, 10))                   # run 1001: builds B; no scan, no push in the run
    sc.registry_scan("B", D(3, 2), [])         # Tue 02:00: scan of B (its RepoDigests tie manifest -> config)
    sc.deploy("B", D(3, 10))                   # Tue 10:00: B's manifest deployed to production
    sc.ci_run("Y", D(3, 9), push_t=D(3, 9, 5))  # pushed, never scanned
    sc.ci_run("Y2", D(4, 9))                   # neither pushed nor deployed, no scan in its run
    k = sc.kpis(MON)
    bg = k["coverage"]["build_gate"]
    # B: scanned Tue 02:00 < first production deploy Tue 10:00: covered. Y, Y2 uncovered: 1 of 3 = 33.33 %
    assert (bg["builds"], bg["covered"], bg["pct"]) == (3, 1, 33.33)
    assert sorted(u["reason"] for u in bg["uncovered"]) == ["no scan of this image completed before its push",
                                                          "no scan of this image in its run"]


# ---- as-of, observed_at, exceptions, stale images, cadence ----------------------------------------

def test_an_event_exactly_at_T_belongs_to_the_next_week(sc):
    sc.registry_scan("A", D(2, 2), [])
    sc.registry_scan("A", D(9, 0), [vuln("CVE-1", "a", "LOW")])          # exactly T of W10
    assert sc.kpis(MON)["new_findings"]["total"] == 0
    assert sc.kpis(NEXT)["new_findings"]["total"] == 1


def test_observed_at_falls_back_to_the_ci_step_then_to_the_mtime(sc):
    sc.registry_scan("A", D(2, 5), [vuln("CVE-M", "a", "LOW")], created_at=False)   # no CreatedAt: mtime 05:00
    sc.ci_run("B", D(3, 10), scan_t=D(3, 10, 7), vulns=[vuln("CVE-M", "a", "LOW")], push_t=D(3, 10, 9),
              deploy_t=D(3, 11))                                          # artifact without CreatedAt: step end
    sc.kpis(MON)
    assert finding(sc, "CVE-M")["detected_at"] == "2026-03-02T05:00:00Z"
    # one scan dated by the CI step, one by the file's mtime (the report's data-quality counts)
    assert (sc.result.data_quality["fallback_ci"], sc.result.data_quality["fallback_mtime"]) == (1, 1)
    # the CI artifact (image B) is dated by its step's completion, Tue 10:07
    assert finding_rows_of_scan_time(sc) == {"2026-03-03T10:07:00Z"}


def finding_rows_of_scan_time(sc) -> set:
    """observed_at of the CI artifacts, read back from the warehouse the scenario built."""
    from ifc_scan.lifecycle.observations import load
    with connect(sc.root / "w.duckdb", read_only=True) as con:
        return {iso_z(s.observed_at) for s in load(con, with_findings=False).scans if s.observed_at_source == "ci"}


def test_an_empty_snapshot_empties_the_scope(sc):
    x = vuln("CVE-X", "a", "HIGH")
    sc.exceptions("_global", date(2026, 3, 1), "CVE-X  # accepted\n")
    sc.exceptions("_global", date(2026, 3, 4), "")                        # emptied Wed
    sc.registry_scan("A", D(2, 2), [x])
    sc.ci_run("B", D(4, 10), scan_t=D(4, 10, 5), vulns=[], push_t=D(4, 10, 10), deploy_t=D(4, 12))
    k = sc.kpis(MON)
    # at Wed 12:00 no exception is in force: the absence on B is a fix (58 h), and nothing is active at T
    assert k["exceptions"]["active"] == 0 and k["remediated"]["HIGH"] == 1
    assert k["mttr_hours"]["HIGH"]["mean"] == 58.0


def test_stale_image_listed_with_its_build_time_source(sc):
    sc.registry_scan("A", D(2, 2), [], image_created="2025-11-01T00:00:00Z")   # T - 90 d = 2025-12-09
    k = sc.kpis(MON)
    assert k["stale_images"] == [{"lineage": "ghcr.io/acme/api", "digest": digest("cfg-A"),
                                  "built_at": "2025-11-01T00:00:00Z", "build_time_source": "image_config_created"}]


def test_a_gap_is_listed_in_every_week_it_overlaps(sc):
    sc.registry_scan("A", D(2, 2), [])
    sc.registry_scan("A", D(11, 2), [])
    w10 = sc.kpis(MON)["cadence"]["gaps"]
    # as of T = 03-09 the 03-11 scan is unknown: gap 03-02 02:00 -> T = 166 h, open
    assert w10 == [{"lineage": "ghcr.io/acme/api", "from": "2026-03-02T02:00:00Z", "to": "2026-03-09T00:00:00Z",
                    "hours": 166.0, "open_at_T": True}]
    w11 = sc.kpis(NEXT)["cadence"]["gaps"]
    # W11: the closed gap 03-02 02:00 -> 03-11 02:00 (216 h) overlaps it, then 03-11 02:00 -> T 03-16 (118 h)
    assert [(g["from"], g["hours"], g["open_at_T"]) for g in w11] == [
        ("2026-03-02T02:00:00Z", 216.0, False), ("2026-03-11T02:00:00Z", 118.0, True)]


def test_a_users_policy_file_overrides_the_sla_and_is_recorded(sc, tmp_path):
    from ifc_scan.policy import load_policy
    p = tmp_path / "policy.yaml"
    p.write_text("version: team-2026\nsla_hours:\n  HIGH: 24\n")
    sc.registry_scan("A", D(2, 2), [vuln("CVE-1", "a", "HIGH")])
    k = sc.kpis(MON, policy=load_policy(p))
    # HIGH due after 24 h instead of 168 h: Tue 02:00 < T, so overdue (with the default it would be within)
    assert k["sla"]["HIGH"]["open_overdue"] == 1
    assert k["policy"]["version"] == "team-2026" and k["policy"]["sla_hours"]["HIGH"] == 24.0
    assert k["policy"]["sla_hours"]["CRITICAL"] == 24.0 and k["policy"]["source"] == str(p)   # the rest: default
    # ISO 27001 8.8 fails on that overdue finding and names it
    iso88 = next(c for c in k["controls"] if c["id"] == "8.8")
    assert iso88["status"] == "fail"
    assert [(i["condition"], i["id"], i["due_at"]) for i in iso88["items"] if i["kind"] == "finding"] == [
        ("no open finding overdue", "CVE-1", "2026-03-03T02:00:00Z")]


def test_a_deploy_identified_only_after_T_is_not_known_at_T(sc):
    """KPIS.md: week W uses events before T only, aliases included. The cd run deploys manifest man-B on
    Wed 03-04 12:00; B's config digest is tied to man-B only by the registry scan of Tue 03-10 02:00."""
    cve1, cve2 = vuln("CVE-1", "openssl", "HIGH"), vuln("CVE-2", "zlib", "CRITICAL")
    sc.registry_scan("A", D(2, 2), [cve1, cve2])                 # A current: both onboarded Mon 02:00
    sc.ci_run("B", D(3, 10), scan_t=D(3, 10, 5), vulns=[cve1])   # B built and scanned (no manifest digest logged)
    sc.deploy("B", D(4, 12))                                     # deploys man-B
    sc.registry_scan("B", D(10, 2), [cve1])                      # W11: names man-B, so B = man-B from here on
    w10 = sc.kpis(MON)
    # as of T = Mon 03-09 the deployed image is unknown: no moment at the deploy, CVE-2 stays open on the
    # lineage and counts as CRITICAL in production; nothing was remediated
    assert w10["critical_in_prod"] == {"count": 1, "excepted": 0}
    assert w10["remediated"]["CRITICAL"] == 0
    w11 = sc.kpis(date(2026, 3, 9))
    # as of T = Mon 03-16 the deploy is of B, judged through B's CI scan (Tue 10:05, CVE-1 only): CVE-2
    # closed fixed at Wed 03-04 12:00, which lies in W10's period, so W11 counts no remediation
    assert w11["critical_in_prod"] == {"count": 0, "excepted": 0}
    assert w11["remediated"]["CRITICAL"] == 0 and w11["new_findings"]["total"] == 0


# ---- evidence behind the figures (findings.csv, deploys.csv, controls) --------------------------------

def test_findings_rows_say_what_closed_or_excepts_each_finding(sc):
    cve1, cve2 = vuln("CVE-1", "openssl", "HIGH", fixed="3.0.9"), vuln("CVE-2", "zlib", "CRITICAL", fixed="1.3.1")
    cve7 = vuln("CVE-7", "glibc", "MEDIUM", fixed=None)
    sc.exceptions("_global", date(2026, 3, 1), "# no patch upstream\nCVE-7 exp:2026-04-01\n")   # line 2
    sc.registry_scan("A", D(2, 2), [cve1, cve2, cve7])                       # 001-A.json: all three onboarded
    rid = sc.ci_run("B", D(2, 10), scan_t=D(2, 10, 5), vulns=[cve1], push_t=D(2, 10, 10), deploy_t=D(2, 15))
    sc.registry_scan("B", D(3, 2), [cve1])                                    # 002-B.json
    sc.kpis(MON)
    # CVE-2 closed fixed at Mon 15:00 by the deploy of B (deploy job's log, line 1), judged through B's
    # CI scan (the run's artifact): 02:00 -> 15:00 = 13 h
    c2 = finding(sc, "CVE-2")
    assert c2["state"] == "closed (fixed)" and c2["ttr_hours"] == 13.0
    assert c2["closed_by"] == (f"deploy ci/github-actions/{rid}/logs/deploy-production/1_Deploy to production.txt:1 "
                               f"judged by scan ci/github-actions/{rid}/artifacts/trivy-results.json")
    assert (c2["installed_version"], c2["fixed_version"]) == ("1.0", "1.3.1")   # as the scan that last showed it
    # CVE-7 is absent from B's scans but the exception (line 2 of the 03-01 snapshot) is in force: excepted
    c7 = finding(sc, "CVE-7")
    assert c7["state"] == "excepted" and c7["excepted_by"] == "exceptions/_global/2026-03-01/.trivyignore:2"
    assert c7["ttr_hours"] is None and c7["fixed_version"] is None
    # CVE-1 is still open on B, last shown by the registry scan of Tue 02:00
    c1 = finding(sc, "CVE-1")
    assert c1["state"] == "open" and c1["closed_by"] is None and c1["source_file"] == "trivy/registry/002-B.json"


def test_a_production_deploy_without_a_scan_fails_change_control_and_is_named(sc):
    sc.registry_scan("A", D(2, 2), [])
    rid = sc.ci_run("B", D(3, 10), push_t=D(3, 10, 10), deploy_t=D(3, 12))   # built, pushed, deployed: never scanned
    k = sc.kpis(MON)
    deploys = sc.result.populations["deploys"]
    assert [(d["run_id"], d["scanned_before"]) for d in deploys] == [(rid, False)]
    for framework, cid in (("ISO/IEC 27001", "8.32"), ("SOC 2", "CC8.1")):
        c = next(c for c in k["controls"] if c["framework"] == framework and c["id"] == cid)
        # no scan means no CRITICAL in a pre-deploy scan; that must not pass the gate vacuously
        assert c["status"] == "fail" and "every production deploy scanned (same digest) before it" in c["failed"]
        assert [i["run_id"] for i in c["items"]] == [rid]
        assert c["items"][0]["evidence"].startswith(f"ci/github-actions/{rid}/logs/")
    # ISO 27001 9.1 is not claimed at publication: only `ifc-scan verify` proves it
    iso91 = next(c for c in k["controls"] if c["id"] == "9.1")
    assert iso91["status"] == "no-data"


@pytest.mark.parametrize("text, key", [
    ("sla_hours:\n  CRITICAL: -4\n", "sla_hours.CRITICAL"),
    ("sla_hours:\n  CRITICAL: soon\n", "sla_hours.CRITICAL"),
    ("sla_hours: 5\n", "sla_hours"),
    ("targets:\n  coverage_pct: 120\n", "targets.coverage_pct"),
    ("scan_gap_hourz: 48\n", "scan_gap_hourz"),
])
def test_a_wrong_policy_file_is_an_error_naming_the_key(tmp_path, text, key):
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    with pytest.raises(ValueError) as err:
        load_policy(p)
    assert key in str(err.value) and str(p) in str(err.value)


def test_days_overdue_of_a_finding_past_its_due_time(sc):
    # CVE-O HIGH detected Mon 03-02 02:00 -> due +168 h = Mon 03-09 02:00. Week of 03-09: T = Mon 03-16 00:00,
    # 6 d 22 h past due -> 6 whole days. CVE-W LOW (due +2160 h, in May) is open within its SLA: none.
    sc.registry_scan("A", D(2, 2), [vuln("CVE-O", "a", "HIGH"), vuln("CVE-W", "b", "LOW")])
    sc.registry_scan("A", D(10, 2), [vuln("CVE-O", "a", "HIGH"), vuln("CVE-W", "b", "LOW")])
    sc.kpis(NEXT)
    assert (finding(sc, "CVE-O")["state"], finding(sc, "CVE-O")["days_overdue"]) == ("overdue", 6)
    assert (finding(sc, "CVE-W")["state"], finding(sc, "CVE-W")["days_overdue"]) == ("open", None)
