"""Every KPI rule of design/KPIS.md on a hand-built scenario; expected figures worked out by hand in
the comments (not copied from the code's output)."""

from datetime import date, datetime

import pytest

from ifc_scan_tests.scenario import Scenario, vuln

MON = date(2026, 3, 2)          # week 2026-W10: [Mon 03-02 00:00, Mon 03-09 00:00)


def D(day, h=0, m=0):
    return datetime(2026, 3, day, h, m)


@pytest.fixture
def sc(tmp_path):
    return Scenario(tmp_path)


def test_worked_example_of_kpis_md(sc):
    cve1, cve2, cve3 = vuln("CVE-1", "openssl", "HIGH"), vuln("CVE-2", "zlib", "CRITICAL"), vuln("CVE-3", "expat", "MEDIUM")
    sc.registry_scan("A", D(2, 2), [cve1, cve2])                          # 1. A current; CVE-1, CVE-2 onboarded
    sc.ci_run("B", D(2, 10), scan_t=D(2, 10, 5), vulns=[cve1], push_t=D(2, 10, 10), deploy_t=D(2, 15))  # 2-3.
    sc.registry_scan("B", D(3, 2), [cve1, cve3])                          # 4. CVE-3 disclosed on B
    sc.ci_run("C", D(4, 9), scan_t=D(4, 9, 5), vulns=[], severity="HIGH,CRITICAL", push_t=D(4, 9, 10),
              deploy_t=D(4, 12))                                          # 5. partial scan: CVE-3 not looked at
    sc.registry_scan("C", D(5, 2), [])                                    # 6. CVE-3 closes fixed
    k = sc.kpis(MON)
    nf = k["new_findings"]
    assert (nf["CRITICAL"]["onboarded"], nf["HIGH"]["onboarded"], nf["MEDIUM"]["disclosed"]) == (1, 1, 1)
    assert nf["total"] == 3 and nf["by_cause"] == {"introduced": 0, "disclosed": 1, "onboarded": 2}
    rem = k["remediated"]
    assert (rem["CRITICAL"], rem["HIGH"], rem["MEDIUM"], rem["total"]) == (1, 1, 1, 3)
    # CVE-2: Mon 02:00 -> Mon 15:00 = 13 h; CVE-1: Mon 02:00 -> Wed 12:00 = 58 h; CVE-3: Tue 02:00 -> Thu 02:00 = 48 h
    assert k["mttr_hours"]["CRITICAL"] == {"n": 1, "mean": 13.0, "median": 13.0, "p90": 13.0, "max": 13.0}
    assert k["mttr_hours"]["HIGH"]["mean"] == 58.0
    assert k["mttr_hours"]["MEDIUM"]["mean"] == 48.0
    assert k["mttr_hours"]["LOW"] == {"n": 0, "mean": None, "median": None, "p90": None, "max": None}
    assert k["open_backlog"]["total"] == 0
    # all three fixed within SLA (13 <= 24, 58 <= 168, 48 <= 720)
    assert k["sla"]["CRITICAL"]["closed_within"] == 1 and k["sla"]["HIGH"]["closed_within"] == 1
    assert k["sla"]["MEDIUM"]["closed_late"] == 0
    # scans on Mon, Tue, Wed (CI scan of C at 09:05), Thu; none Fri-Sun: 4/7 = 57.14
    assert k["coverage"]["nightly"]["pct"] == 57.14
    assert k["coverage"]["nightly"]["days_with_scan"] == 4 and k["coverage"]["nightly"]["lineage_days"] == 7
    # both builds were scanned before their push
    assert k["coverage"]["build_gate"] == {"builds": 2, "covered": 2, "pct": 100.0, "uncovered": []}
    # one gap: Thu 02:00 to T = 3 days + 22 h = 94 h, open at T
    assert k["cadence"]["gaps"] == [{"lineage": "ghcr.io/acme/api", "from": "2026-03-05T02:00:00Z",
                                     "to": "2026-03-09T00:00:00Z", "hours": 94.0, "open_at_T": True}]
    assert k["critical_in_prod"] == {"count": 0, "excepted": 0}


def test_withdrawn_is_not_a_remediation_and_reopen_keeps_detected_at(sc):
    x = vuln("CVE-9", "curl", "HIGH")
    sc.registry_scan("A", D(2, 2), [x])          # detected Mon 02:00
    sc.registry_scan("A", D(3, 2), [])           # same image: withdrawn Tue 02:00
    sc.registry_scan("A", D(4, 2), [x])          # present again: reopen, regression 1
    k = sc.kpis(MON)
    assert k["remediated"]["HIGH"] == 0 and k["remediated"]["withdrawn"] == 1
    assert k["remediated"]["regressions"] == 1
    assert k["mttr_hours"]["HIGH"]["n"] == 0 and k["mttr_hours"]["HIGH"]["mean"] is None
    # detected_at stays Mon 02:00: at T it is 166 h old (1-7d bucket), and counted new once
    assert k["new_findings"]["HIGH"]["total"] == 1
    assert k["open_backlog"]["HIGH"]["1-7d"] == 1
    # KPIS.md: the SLA close columns count fixed closes only; the Tue withdrawn close is neither
    # within nor late (it is in remediated.withdrawn above)
    assert k["sla"]["HIGH"]["closed_late"] == 0 and k["sla"]["HIGH"]["closed_within"] == 0
    # due Mon 02:00 + 168 h = next Mon 02:00 > T: open within
    assert k["sla"]["HIGH"]["open_within"] == 1


def test_excepted_absence_is_not_a_fix_until_the_exception_lapses(sc):
    x = vuln("CVE-7", "glibc", "HIGH")
    sc.exceptions("_global", date(2026, 3, 1), "# no patch upstream\nCVE-7 exp:2026-03-05\n")
    sc.registry_scan("A", D(2, 2), [x])                 # shown (scanner did not apply the file): detected
    sc.ci_run("B", D(2, 9), scan_t=D(2, 9, 5), vulns=[], push_t=D(2, 9, 10), deploy_t=D(2, 10))
    # B deployed: CVE-7 absent, but the exception is in force at the scan's time: excepted, not fixed
    sc.registry_scan("B", D(4, 2), [])                  # Wed: still in force (expires Thu 00:00): excepted
    sc.registry_scan("B", D(6, 2), [])                  # Fri: lapsed -> closes fixed Fri 02:00
    k = sc.kpis(MON)
    assert k["remediated"]["HIGH"] == 1
    # time to remediate includes the wait: Mon 02:00 -> Fri 02:00 = 96 h
    assert k["mttr_hours"]["HIGH"]["mean"] == 96.0
    # the entry expired 03-05 and is still listed at T
    assert k["exceptions"]["expired_listed"] == 1 and k["exceptions"]["active"] == 0


def test_exception_counts_and_expiry_on_its_date(sc):
    sc.registry_scan("A", D(2, 2), [vuln("CVE-1", "a", "CRITICAL"), vuln("CVE-2", "b", "LOW")])
    sc.exceptions("api", date(2026, 1, 1), "CVE-1 exp:2026-04-01\n")   # first listed 01-01
    sc.exceptions("api", date(2026, 3, 1), "\n".join([
        "# accepted: not reachable",
        "CVE-1 exp:2026-04-01",         # active, CRITICAL, 01-01 -> 04-01 = 90 days: not over 90
        "CVE-2 exp:2026-03-09",         # expires exactly at T: expired on its date -> expired_listed
        "CVE-3 exp:2026-03-20",         # active, T < 03-20 <= T+14d: expiring_14d; matches nothing: unmatched
        "",
        "CVE-4",                        # active, no expiry, no reason, unmatched
        "CVE-5 exp:2026-13-01",         # invalid date: Trivy drops the line
    ]) + "\n")
    k = sc.kpis(MON)
    e = k["exceptions"]
    assert e["active"] == 3            # CVE-1, CVE-3, CVE-4
    assert e["expired_listed"] == 1    # CVE-2
    assert e["expiring_14d"] == 1      # CVE-3
    assert e["no_expiry"] == 1 and e["no_reason"] == 2   # CVE-4; CVE-3 and CVE-4 have no comment
    assert e["unmatched"] == 2         # CVE-3, CVE-4
    assert e["invalid"] == 1           # CVE-5
    assert e["critical_over_90d"] == 0  # exactly 90 days is not over 90
    # CVE-1 is open and excepted at T: critical_in_prod counts it as excepted
    assert k["critical_in_prod"] == {"count": 0, "excepted": 1}
    assert k["sla"]["CRITICAL"]["excepted"] == 1


def test_critical_exception_over_90_days(sc):
    sc.registry_scan("A", D(2, 2), [vuln("CVE-1", "a", "CRITICAL")])
    sc.exceptions("_global", date(2026, 3, 1), "CVE-1 exp:2026-06-01\n")   # 03-01 -> 06-01 = 92 days
    k = sc.kpis(MON)
    assert k["exceptions"]["critical_over_90d"] == 1


def test_severity_rise_pulls_due_in_and_unknown_has_no_sla(sc):
    sc.registry_scan("A", D(2, 0), [vuln("CVE-1", "a", "MEDIUM"), vuln("CVE-U", "u", "UNKNOWN")])
    sc.registry_scan("A", D(3, 0), [vuln("CVE-1", "a", "CRITICAL"), vuln("CVE-U", "u", "UNKNOWN")])
    for day in range(4, 9):
        sc.registry_scan("A", D(day, 0), [vuln("CVE-1", "a", "CRITICAL"), vuln("CVE-U", "u", "UNKNOWN")])
    k = sc.kpis(MON)
    # due = min(Mon + 720 h, Tue 00:00 + 24 h) = Wed 00:00 < T: overdue, counted as CRITICAL (last presence)
    assert k["sla"]["CRITICAL"]["open_overdue"] == 1
    assert k["critical_in_prod"]["count"] == 1
    assert k["new_findings"]["CRITICAL"]["total"] == 1 and k["new_findings"]["MEDIUM"]["total"] == 0
    u = k["sla"]["UNKNOWN"]
    assert u == {"closed_within": None, "closed_late": None, "open_within": None, "open_overdue": None, "excepted": 0}
    assert k["open_backlog"]["UNKNOWN"]["total"] == 1


def test_build_never_deployed_and_build_without_scan(sc):
    sc.registry_scan("A", D(2, 2), [])
    sc.ci_run("B", D(3, 10), scan_t=D(3, 10, 5))                 # scanned in its run, neither pushed nor deployed
    sc.ci_run("C", D(4, 10), push_t=D(4, 10, 10))                # pushed, never scanned: uncovered
    k = sc.kpis(MON)
    bg = k["coverage"]["build_gate"]
    assert (bg["builds"], bg["covered"], bg["pct"]) == (2, 1, 50.0)
    assert len(bg["uncovered"]) == 1 and bg["uncovered"][0]["reason"].startswith("no scan of this image completed")
    # the CI builds never reached production: the current image stays A, no findings move
    assert k["open_backlog"]["total"] == 0


def test_ci_scan_of_undeployed_build_does_not_move_lifecycle(sc):
    x = vuln("CVE-1", "a", "HIGH")
    sc.registry_scan("A", D(2, 2), [x])
    sc.ci_run("B", D(2, 10), scan_t=D(2, 10, 5), vulns=[])     # B lacks CVE-1 but is never deployed
    k = sc.kpis(MON)
    assert k["remediated"]["total"] == 0 and k["open_backlog"]["HIGH"]["total"] == 1


def test_empty_week_gives_nulls_not_zeros(sc):
    sc.registry_scan("A", datetime(2026, 2, 20, 2), [])
    k = sc.kpis(MON)
    assert k["coverage"]["build_gate"]["pct"] is None and k["coverage"]["build_gate"]["builds"] == 0
    assert all(k["mttr_hours"][s]["mean"] is None for s in ("CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"))
    # the lineage exists but had no scan all week: 0 of 7 days
    assert k["coverage"]["nightly"]["pct"] == 0.0 and len(k["coverage"]["nightly"]["gaps"]) == 7


def test_retirement_closes_open_findings_and_stops_counting(sc):
    sc.registry_scan("A", D(2, 2), [vuln("CVE-1", "a", "CRITICAL")])
    sc.retire(D(4, 0))
    k = sc.kpis(MON)
    assert k["remediated"]["retired"] == 1 and k["remediated"]["CRITICAL"] == 0
    assert k["critical_in_prod"]["count"] == 0
    # retired Wed 03-04 00:00: lineage days are Mon and Tue only; a scan on Mon only
    assert k["coverage"]["nightly"]["lineage_days"] == 2 and k["coverage"]["nightly"]["days_with_scan"] == 1


def test_stale_image_and_stale_evidence(sc):
    sc.registry_scan("A", datetime(2026, 3, 2, 2), [vuln("CVE-1", "a", "LOW")])
    k = sc.kpis(MON)
    # image built 2026-01-01 (ImageConfig.created) < T - 90 d = 2025-12-09? no: 2026-01-01 is after: not stale
    assert k["stale_images"] == []
    # no scan in [T-48h, T): the open finding is stale evidence
    assert k["cadence"]["stale_evidence"] == 1


def test_recomputing_a_week_is_byte_identical(sc):
    sc.registry_scan("A", D(2, 2), [vuln("CVE-1", "a", "HIGH")])
    sc.kpis(MON)
    first = sc.result.kpis_json
    sc.kpis(MON)
    assert sc.result.kpis_json == first


def test_kpis_json_follows_the_published_schema_and_is_range_independent(tmp_path):
    """The contract: every demo week validates against ifc_scan/kpis/kpis.schema.json, and a week computed
    alone is byte-identical to the same week computed inside a range."""
    import json
    from importlib import resources

    import jsonschema

    from ifc_scan.demo.generator import generate
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.kpis.stage import WeeklyStage
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.policy import load_policy
    from ifc_scan.warehouse.db import connect
    schema = json.loads(resources.files("ifc_scan.kpis").joinpath("kpis.schema.json").read_text())
    generate(tmp_path / "landing", weeks=8, seed=4, end=date(2026, 3, 9))
    ingest(tmp_path / "landing", tmp_path / "w.duckdb", progress=lambda m: None)
    policy = load_policy()
    mondays = [date(2026, 1, 12) + __import__("datetime").timedelta(weeks=i) for i in range(8)]
    with connect(tmp_path / "w.duckdb") as con:
        derive_lifecycle(con, policy)
        in_range = [WeeklyStage(con, policy).compute(m) for m in mondays]
        alone = WeeklyStage(con, policy).compute(mondays[5])
    for r in in_range:
        jsonschema.validate(json.loads(r.kpis_json), schema)
        # requirements, then controls: every failing control is named by a requirement, and a requirement
        # names only failing controls, each once
        failing = {f"{c['framework']} {c['id']}" for c in r.kpis["controls"] if c["status"] == "fail"}
        named = [n for q in r.kpis["requirements"] for n in q["controls"]]
        assert set(named) == failing and all(len(q["controls"]) == len(set(q["controls"])) for q in r.kpis["requirements"])
    assert alone.kpis_json == in_range[5].kpis_json
    bad = json.loads(in_range[0].kpis_json)
    bad["coverage"]["nightly"]["pct"] = 0 if bad["coverage"]["nightly"]["pct"] is None else None
    bad["mttr_hours"]["HIGH"]["n"] = None
    try:
        jsonschema.validate(bad, schema)
        raise AssertionError("schema accepted a null count")
    except jsonschema.ValidationError:
        pass


def test_every_demo_week_from_the_persisted_lifecycle_equals_the_as_of_T_recomputation(tmp_path):
    """The weekly stage reads the lifecycle built once; KPIS.md defines each week from the observations
    before T. Over the whole demo year both give byte-identical kpis.json and populations."""
    from ifc_scan.demo.generator import generate
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.kpis.stage import WeeklyStage, data_weeks, oracle_week
    from ifc_scan.lifecycle.observations import load
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.policy import load_policy
    from ifc_scan.warehouse.db import connect
    generate(tmp_path / "landing")
    ingest(tmp_path / "landing", tmp_path / "w.duckdb", progress=lambda m: None)
    policy = load_policy()
    with connect(tmp_path / "w.duckdb") as con:
        derive_lifecycle(con, policy)
        weeks = data_weeks(con, policy)
        stage, full = WeeklyStage(con, policy), load(con)
        assert len(weeks) == 52
        expected = {}
        for monday in weeks:     # ascending: the reader carries state forward, reading each event once
            stored, oracle = stage.compute(monday), oracle_week(con, policy, monday, full)
            assert stored.kpis_json == oracle.kpis_json, monday
            assert stored.populations == oracle.populations, monday
            expected[monday] = stored.kpis_json
        for monday in (weeks[40], weeks[3], weeks[3], weeks[51], weeks[10]):   # back, same week, jumps
            assert stage.compute(monday).kpis_json == expected[monday], monday
