"""`ifc-scan gate`, `exceptions lint` and `exceptions prune` on hand-built reports and ignore files.
Each expected verdict is worked out by hand in the comments. The policy: blocking CRITICAL,
CRITICAL exceptions at most 90 days. Instant judged: 2026-03-04T12:00:00Z unless said."""

import json
from datetime import date, datetime
from pathlib import Path

import pytest

from ifc_scan.cli import main
from ifc_scan.gate import judge, lint, load_kev, prune, summary_lines
from ifc_scan.policy import load_policy
from ifc_scan_tests.scenario import Scenario, vuln

AT = datetime(2026, 3, 4, 12, 0)
POLICY = load_policy(None)


def report(tmp_path, vulns, name="r.json", suppressed=None):
    sc = Scenario(tmp_path / "sc")
    p = tmp_path / name
    p.write_text(json.dumps(sc.report("1.0", AT, vulns, suppressed=suppressed)))
    return p


def ignore(tmp_path, text, name=".trivyignore"):
    p = tmp_path / name
    p.write_text(text)
    return p


def ids(findings):
    return [f.vulnerability_id for f in findings]


def test_a_critical_blocks_and_a_high_does_not(tmp_path):
    r = report(tmp_path, [vuln("CVE-1", "openssl", "CRITICAL"), vuln("CVE-2", "zlib", "HIGH")])
    res = judge(r, [], POLICY, AT)
    # blocking severity CRITICAL: CVE-1 blocks, CVE-2 (HIGH) does not
    assert (res.passed, ids(res.blocking), ids(res.excepted)) == (False, ["CVE-1"], [])
    assert main(["gate", str(r), "--at", "2026-03-04T12:00:00Z"]) == 1


def test_policy_blocking_high_blocks_both(tmp_path):
    r = report(tmp_path, [vuln("CVE-1", "openssl", "CRITICAL"), vuln("CVE-2", "zlib", "HIGH"),
                          vuln("CVE-3", "bash", "MEDIUM")])
    res = judge(r, [], {**POLICY, "blocking_severity": "HIGH"}, AT)
    assert ids(res.blocking) == ["CVE-1", "CVE-2"]           # CRITICAL and HIGH; MEDIUM never


def test_exception_in_force_covers_and_one_expiring_on_the_day_does_not(tmp_path):
    r = report(tmp_path, [vuln("CVE-1", "openssl", "CRITICAL"), vuln("CVE-2", "libc", "CRITICAL")])
    ig = ignore(tmp_path, "# vendor fix pending\nCVE-1 exp:2026-03-05\n# accepted\nCVE-2 exp:2026-03-04\n")
    res = judge(r, [ig], POLICY, AT)
    # CVE-1 expires 2026-03-05T00:00Z, after AT: in force. CVE-2 expired at 2026-03-04T00:00Z, before
    # AT (Trivy: an entry is already expired on its date): CVE-2 blocks, and its entry is reported
    assert ids(res.excepted) == ["CVE-1"] and res.excepted[0].excepted_by == [f"{ig}:2"]
    assert ids(res.blocking) == ["CVE-2"]
    assert [(p["line"], p["rule"]) for p in res.exception_problems] == [(4, "expired_listed")]
    # one second before the day CVE-2's entry still holds
    early = judge(r, [ig], POLICY, datetime(2026, 3, 3, 23, 59, 59))
    assert early.passed and ids(early.excepted) == ["CVE-1", "CVE-2"]


def test_ninety_days_is_allowed_ninety_one_is_not(tmp_path):
    r = report(tmp_path, [vuln("CVE-1", "openssl", "CRITICAL"), vuln("CVE-2", "libc", "CRITICAL")])
    # AT 2026-03-04T12:00: exactly 90 days later is 2026-06-02T12:00. exp:2026-06-02 (00:00) is 89.5
    # days: allowed; exp:2026-06-03 (00:00) is 90.5 days: over the limit
    ig = ignore(tmp_path, "# ok\nCVE-1 exp:2026-06-02\n# too long\nCVE-2 exp:2026-06-03\n")
    res = judge(r, [ig], POLICY, AT)
    assert res.passed                                        # both suppress (Trivy's semantics)
    assert [(p["id"], p["rule"]) for p in res.exception_problems] == [("CVE-2", "critical_over_90d")]
    assert main(["gate", str(r), "--ignorefile", str(ig), "--at", "2026-03-04T12:00:00Z"]) == 0
    assert main(["gate", str(r), "--ignorefile", str(ig), "--at", "2026-03-04T12:00:00Z", "--strict"]) == 1


def test_yaml_paths_and_purls_follow_trivy(tmp_path):
    r = report(tmp_path, [vuln("CVE-1", "lodash", "CRITICAL", cls="lang-pkgs")])
    ig = ignore(tmp_path, "vulnerabilities:\n  - id: CVE-1\n    paths:\n      - \"other/**\"\n"
                          "    expired_at: 2026-04-01\n    statement: not reachable\n", name=".trivyignore.yaml")
    # the path does not match the finding's target (Node.js): it still blocks
    assert ids(judge(r, [ig], POLICY, AT).blocking) == ["CVE-1"]
    ig.write_text("vulnerabilities:\n  - id: CVE-1\n    expired_at: 2026-04-01\n    statement: not reachable\n")
    assert judge(r, [ig], POLICY, AT).passed


def test_findings_suppressed_in_the_report_do_not_block(tmp_path):
    r = report(tmp_path, [vuln("CVE-2", "zlib", "HIGH")], suppressed=[vuln("CVE-1", "openssl", "CRITICAL")])
    res = judge(r, [], POLICY, AT)
    assert res.passed and res.suppressed_in_report == 1


def test_unusable_inputs_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    sbom = tmp_path / "sbom.json"
    sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}))
    assert main(["gate", str(bad)]) == 2
    assert main(["gate", str(sbom)]) == 2
    assert main(["gate", str(tmp_path / "missing.json")]) == 2
    assert main(["gate", str(report(tmp_path, [])), "--at", "2026-02-30"]) == 2


def test_gate_json_names_package_versions_and_fix(tmp_path, capsys):
    r = report(tmp_path, [vuln("CVE-1", "openssl", "CRITICAL", fixed="3.0.13")])
    assert main(["gate", str(r), "--json", "--at", "2026-03-04"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["passed"] is False
    assert [(f["vulnerability_id"], f["pkg_name"], f["installed_version"], f["fixed_version"]) for f in out["blocking"]] == [
        ("CVE-1", "openssl", "1.0", "3.0.13")]


def test_the_gate_agrees_with_the_weekly_kpis_on_the_same_scan(tmp_path):
    """The same report and ignore file, once through the gate, once through ingest and the weekly
    stage: the CRITICAL findings the KPIs leave open and unexcepted are the ones the gate blocks."""
    sc = Scenario(tmp_path / "w")
    vulns = [vuln("CVE-1", "openssl", "CRITICAL"), vuln("CVE-2", "libc", "CRITICAL"),
             vuln("CVE-3", "zlib", "HIGH")]
    # the registry scan at 2026-03-03T02:00; exceptions snapshot of 2026-03-02 lists CVE-2 until 03-20
    scan = sc.registry_scan("B", datetime(2026, 3, 3, 2), vulns)
    sc.exceptions("api", date(2026, 3, 2), "# accepted risk\nCVE-2 exp:2026-03-20\n")
    week_end = datetime(2026, 3, 9)
    sc.kpis(date(2026, 3, 2))
    rows = [f for f in sc.result.populations["findings"]
            if f["severity"] == "CRITICAL" and f["state"] != "closed" and not f["excepted_by"]]
    res = judge(scan, [sc.landing / "exceptions" / "api" / "2026-03-02" / ".trivyignore"], POLICY, week_end)
    # by hand: CVE-1 open and unexcepted (both say block); CVE-2 excepted at T (both); CVE-3 HIGH (neither)
    assert sorted(f["vulnerability_id"] for f in rows) == ids(res.blocking) == ["CVE-1"]
    assert ids(res.excepted) == ["CVE-2"]


# --- exceptions lint ------------------------------------------------------------------------------

LINT_FILE = """# Reason: vendor fix pending
CVE-2026-0001 exp:2026-05-01
CVE-2026-0002
# expired, still listed
CVE-2026-0003 exp:2026-03-01
# bad date
CVE-2026-0004 exp:2026-13-01
# long
CVE-2026-0005 exp:2026-12-31
# Reason: vendor fix pending
CVE-2026-0001 exp:2026-05-01
"""


def test_lint_names_each_violation_with_file_and_line(tmp_path):
    ig = ignore(tmp_path, LINT_FILE)
    out = lint([ig], POLICY, AT)
    got = [(p["line"], p["rule"]) for p in out["problems"]]
    # by hand: line 3 no expiry and no reason; line 5 expired on 03-01; line 7 a date Trivy drops;
    # line 9 expires 302 days ahead, severity unknown without a report (a warning); line 11 repeats line 2
    assert got == [(3, "no_expiry"), (3, "no_reason"), (5, "expired_listed"), (7, "invalid"),
                   (9, "unknown_severity"), (11, "duplicate")]
    assert out["violations"] == 5
    assert main(["exceptions", "lint", str(ig), "--at", "2026-03-04T12:00:00Z"]) == 1


def test_lint_with_a_report_knows_which_entries_are_critical(tmp_path):
    ig = ignore(tmp_path, "# a\nCVE-2026-0005 exp:2026-12-31\n# b\nCVE-2026-0006 exp:2026-12-31\n")
    r = report(tmp_path, [vuln("CVE-2026-0005", "openssl", "CRITICAL"), vuln("CVE-2026-0006", "zlib", "HIGH")])
    out = lint([ig], POLICY, AT, r)
    # 0005 is CRITICAL and 302 days long: over 90; 0006 is HIGH: no limit
    assert [(p["id"], p["rule"]) for p in out["problems"]] == [("CVE-2026-0005", "critical_over_90d")]
    clean = ignore(tmp_path, "# a\nCVE-2026-0006 exp:2026-12-31\n", name="clean.trivyignore")
    assert main(["exceptions", "lint", str(clean), "--report", str(r), "--at", "2026-03-04"]) == 0


# --- exceptions prune -----------------------------------------------------------------------------

def test_prune_plain_file_keeps_comments_and_order(tmp_path):
    ig = ignore(tmp_path, "# header: owned by the security team\n\n# Reason: fix pending\nCVE-1 exp:2026-05-01\n\n"
                          "# Reason: expired\n# second line\nCVE-2 exp:2026-03-01\nCVE-3 exp:2026-02-01 # inline\n\nCVE-4\n")
    removed = prune(ig, AT)
    # CVE-2 (with its two comment lines) and CVE-3 expired; header, blank lines and order stay
    assert [(r["line"], r["id"]) for r in removed] == [(8, "CVE-2"), (9, "CVE-3")]
    assert ig.read_text() == ("# header: owned by the security team\n\n# Reason: fix pending\nCVE-1 exp:2026-05-01\n\n"
                              "\nCVE-4\n")


def test_prune_yaml_removes_whole_items_and_stays_valid(tmp_path):
    text = ("# exceptions for api\nvulnerabilities:\n  # fix pending\n  - id: CVE-1\n    expired_at: 2026-05-01\n"
            "    statement: pending\n  # expired\n  - id: CVE-2\n    paths:\n      - \"usr/lib/**\"\n"
            "    expired_at: 2026-03-01\n  - id: CVE-3\n    expired_at: 2026-06-01\nmisconfigurations:\n"
            "  - id: AVD-DS-0002\n    expired_at: 2026-01-01\n")
    ig = ignore(tmp_path, text, name=".trivyignore.yaml")
    removed = prune(ig, AT)
    assert [r["id"] for r in removed] == ["CVE-2", "AVD-DS-0002"]
    assert ig.read_text() == ("# exceptions for api\nvulnerabilities:\n  # fix pending\n  - id: CVE-1\n"
                              "    expired_at: 2026-05-01\n    statement: pending\n  - id: CVE-3\n"
                              "    expired_at: 2026-06-01\nmisconfigurations:\n")
    assert main(["exceptions", "lint", str(ig), "--at", "2026-03-04"]) == 1     # CVE-3 has no reason


@pytest.mark.parametrize("args", [["exceptions", "prune"], ["exceptions", "lint"]])
def test_exception_commands_on_a_missing_file_exit_2(tmp_path, args):
    assert main([*args, str(tmp_path / "nope")]) == 2


# --- --block-kev (issue 31) -------------------------------------------------------------------------
# The KEV fixture (ifc_scan_tests/fixtures/intel/known_exploited_vulnerabilities.json, released 2026-11-27)
# lists CVE-2021-44228 (added 2021-12-10, due 2021-12-24, ransomware Known), CVE-2024-3094 (added 2026-11-20,
# due 2026-12-11) and CVE-2023-2975 (added 2026-11-25, due 2026-12-16).
KEV_FILE = Path(__file__).parent / "fixtures" / "intel" / "known_exploited_vulnerabilities.json"
KEV_AT = datetime(2026, 12, 1, 12, 0)


def kev_report(tmp_path):
    # log4j LOW (KEV, by its id), openSUSE advisory MEDIUM (KEV through its SUSE CVE page: CVE-2023-2975),
    # a GHSA HIGH naming no CVE record (not KEV), a CRITICAL not in KEV (blocks by severity)
    return report(tmp_path, [
        vuln("CVE-2021-44228", "log4j-core", "LOW"),
        {**vuln("openSUSE-SU-2024:13065-1", "libopenssl3", "MEDIUM"),
         "References": ["https://www.suse.com/security/cve/CVE-2023-2975/", "https://www.suse.com/support/security/rating/"]},
        {**vuln("GHSA-5crp-9r3c-p9vr", "Newtonsoft.Json", "HIGH"), "References": ["https://github.com/advisories/GHSA-5crp-9r3c-p9vr"]},
        vuln("CVE-2026-0001", "openssl", "CRITICAL")])


def test_block_kev_blocks_kev_listed_findings_whatever_their_severity(tmp_path):
    r = kev_report(tmp_path)
    without = judge(r, [], POLICY, KEV_AT)
    assert ids(without.blocking) == ["CVE-2026-0001"]                     # severity alone
    res = judge(r, [], POLICY, KEV_AT, load_kev(KEV_FILE, None, KEV_AT))
    # KEV-listed first (by severity among them: MEDIUM, LOW), then by severity; the GHSA (HIGH, no CVE) does not block
    assert ids(res.blocking) == ["openSUSE-SU-2024:13065-1", "CVE-2021-44228", "CVE-2026-0001"]
    log4j = res.blocking[1].kev
    assert (log4j.cve_id, log4j.date_added, log4j.due_date, log4j.known_ransomware_campaign_use) == (
        "CVE-2021-44228", "2021-12-10", "2021-12-24", "Known")
    assert res.blocking[0].kev.cve_id == "CVE-2023-2975" and res.blocking[2].kev is None
    lines = "\n".join(summary_lines(res))
    assert "in CISA KEV: CVE-2021-44228 added 2021-12-10, due 2021-12-24, known ransomware use: Known" in lines
    assert "KEV catalog " + str(KEV_FILE) + " (version 2026.11.27, released 2026-11-27T17:02:40.046200Z, 3 entries)" in lines


def test_an_entry_added_after_the_instant_judged_does_not_block(tmp_path):
    # judged at 2026-11-24: CVE-2023-2975 (added 11-25) is not yet listed, so the openSUSE advisory passes
    at = datetime(2026, 11, 24, 12, 0)
    res = judge(kev_report(tmp_path), [], POLICY, at, load_kev(KEV_FILE, None, at))
    assert ids(res.blocking) == ["CVE-2021-44228", "CVE-2026-0001"]


def test_an_exception_in_force_covers_a_kev_finding_and_says_so(tmp_path):
    r = report(tmp_path, [vuln("CVE-2021-44228", "log4j-core", "LOW")])
    ig = ignore(tmp_path, "# compensating control: JNDI lookups disabled\nCVE-2021-44228 exp:2026-12-15\n")
    res = judge(r, [ig], POLICY, KEV_AT, load_kev(KEV_FILE, None, KEV_AT))
    assert res.passed and ids(res.excepted) == ["CVE-2021-44228"] and res.excepted[0].kev.cve_id == "CVE-2021-44228"


def test_cli_block_kev_uses_the_landing_zones_newest_catalog_and_the_policy_setting(tmp_path, capsys):
    r = report(tmp_path, [vuln("CVE-2021-44228", "log4j-core", "LOW")])
    landing = tmp_path / "landing"
    at = "2026-12-01T12:00:00Z"
    assert main(["gate", str(r), "--at", at, "--landing", str(landing)]) == 0          # a LOW: passes
    # no catalog anywhere: exit 2 with the reason
    assert main(["gate", str(r), "--at", at, "--landing", str(landing), "--block-kev"]) == 2
    assert "no KEV catalog dated on or before 2026-12-01" in capsys.readouterr().err
    older = landing / "enrichment" / "kev" / "2021-12-09" / "known_exploited_vulnerabilities.json"
    older.parent.mkdir(parents=True)
    older.write_text(json.dumps({**json.loads(KEV_FILE.read_text()), "dateReleased": "2021-12-09T10:00:00Z",
                                 "count": 0, "vulnerabilities": []}))
    assert main(["gate", str(r), "--at", at, "--landing", str(landing), "--block-kev"]) == 0   # newest: 2021-12-09
    newest = landing / "enrichment" / "kev" / "2026-11-27" / "known_exploited_vulnerabilities.json"
    newest.parent.mkdir(parents=True)
    newest.write_bytes(KEV_FILE.read_bytes())
    later = landing / "enrichment" / "kev" / "2026-12-02" / "known_exploited_vulnerabilities.json"   # after --at
    later.parent.mkdir(parents=True)
    later.write_text("not json")
    capsys.readouterr()
    assert main(["gate", str(r), "--at", at, "--landing", str(landing), "--block-kev", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["kev_catalog"]["path"] == str(newest) and out["blocking"][0]["kev"]["due_date"] == "2021-12-24"
    pol = tmp_path / "policy.yaml"
    pol.write_text("gate:\n  block_kev: true\n")
    assert main(["gate", str(r), "--at", at, "--landing", str(landing), "--policy", str(pol)]) == 1


def test_a_bad_kev_catalog_is_exit_2_with_the_reason(tmp_path, capsys):
    r = report(tmp_path, [vuln("CVE-2021-44228", "log4j-core", "LOW")])
    bad = tmp_path / "kev.json"
    doc = json.loads(KEV_FILE.read_text())
    doc["vulnerabilities"][1]["cveID"] = "CVE-2024-30"
    bad.write_text(json.dumps(doc))
    assert main(["gate", str(r), "--at", "2026-12-01T12:00:00Z", "--block-kev", "--kev", str(bad)]) == 2
    assert (f"KEV catalog {bad}: vulnerabilities[1].cveID 'CVE-2024-30' is not a CVE id (CVE-YYYY-NNNN)"
            in capsys.readouterr().err)
