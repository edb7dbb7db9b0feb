"""The attacks of issue 27: exception files that a person (and an earlier ifc_scan) reads one way and
Trivy 0.59.1 another. Each expected answer is what the real Trivy does with the same bytes (checked with
`trivy convert --ignorefile`; ifc_scan_tests/test_trivy_differential.py repeats every one of them against
the binary when it is present). The instant judged is 2026-03-04T12:00Z; CRITICALs block."""

import json
import os
import stat
from datetime import date, datetime

import pytest

from ifc_scan.cli import main
from ifc_scan.gate import UnusableInput, judge, lint, prune
from ifc_scan.ingest.exceptions import SCANNER_MAX_LINE, FileRejected, parse_exception_file
from ifc_scan.policy import load_policy
from ifc_scan_tests.scenario import Scenario, vuln

AT = datetime(2026, 3, 4, 12, 0)
POLICY = load_policy(None)
TWO_CRITICALS = [vuln("CVE-2026-1001", "openssl", "CRITICAL"), vuln("CVE-2026-1002", "zlib", "CRITICAL")]


def report(tmp_path, vulns=TWO_CRITICALS):
    p = tmp_path / "r.json"
    p.write_text(json.dumps(Scenario(tmp_path / "sc").report("1.0", AT, vulns)))
    return p


def ignorefile(tmp_path, data: bytes, name=".trivyignore"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def blocking(tmp_path, data: bytes, name=".trivyignore"):
    r = judge(report(tmp_path), [ignorefile(tmp_path, data, name)], POLICY, AT)
    return sorted(f.vulnerability_id for f in r.blocking)


# Go's bufio.Scanner splits at LF only and Go's Fields splits on unicode.IsSpace: each of these characters
# between two IDs leaves ONE entry (the first ID) where a person, and Python's splitlines, sees two lines.
GO_BLANKS = ["\r", "\v", "\f", "\x85", "\u2028", "\u2029", "\xa0"]
# 0x1C-0x1F are blanks to Python's str.split but not to Go: the whole run is one ID that matches nothing.
NOT_GO_BLANKS = ["\x1c", "\x1d", "\x1e", "\x1f"]


@pytest.mark.parametrize("sep", GO_BLANKS, ids=[f"U+{ord(c):04X}" for c in GO_BLANKS])
def test_a_separator_that_looks_like_a_line_break_hides_the_second_entry(tmp_path, sep):
    data = f"CVE-2026-1001 exp:2026-06-01{sep}CVE-2026-1002\n".encode()
    # Trivy: one line, fields [CVE-2026-1001, exp:2026-06-01, CVE-2026-1002]: only CVE-2026-1001 is excepted
    assert blocking(tmp_path, data) == ["CVE-2026-1002"]
    out = lint([tmp_path / ".trivyignore"], POLICY, AT)
    assert any(p["rule"] == "misleading" and p["line"] == 1 for p in out["problems"]), out["problems"]
    assert main(["exceptions", "lint", str(tmp_path / ".trivyignore"), "--at", "2026-03-04"]) == 1


@pytest.mark.parametrize("sep", NOT_GO_BLANKS, ids=[f"U+{ord(c):04X}" for c in NOT_GO_BLANKS])
def test_an_ascii_separator_glues_both_ids_into_one_that_matches_nothing(tmp_path, sep):
    data = f"CVE-2026-1001{sep}CVE-2026-1002 exp:2026-06-01\n".encode()
    # Trivy's ID is "CVE-2026-1001<sep>CVE-2026-1002": neither finding is excepted
    assert blocking(tmp_path, data) == ["CVE-2026-1001", "CVE-2026-1002"]


def test_the_first_exp_field_is_the_one_trivy_enforces(tmp_path):
    # first exp: 2026-01-01 (expired at T): Trivy drops the entry although a later exp: says 2099
    assert blocking(tmp_path, b"CVE-2026-1001 exp:2026-01-01 exp:2099-01-01\n") == ["CVE-2026-1001", "CVE-2026-1002"]
    # the other order: in force until 2099
    assert blocking(tmp_path, b"CVE-2026-1001 exp:2099-01-01 exp:2026-01-01\n") == ["CVE-2026-1002"]
    problems = lint([tmp_path / ".trivyignore"], POLICY, AT)["problems"]
    assert any(p["rule"] == "misleading" and "only the first" in p["message"] for p in problems)


def test_a_line_past_the_scanners_limit_ends_the_reading(tmp_path):
    long_line = b"# " + b"x" * SCANNER_MAX_LINE + b"\n"      # 64 KiB + 2 bytes: bufio.ErrTooLong
    data = b"CVE-2026-1001\n" + long_line + b"CVE-2026-1002\n"
    # Trivy applies line 1 and stops at line 2: CVE-2026-1002 on line 3 is never read
    assert blocking(tmp_path, data) == ["CVE-2026-1002"]
    problems = lint([tmp_path / ".trivyignore"], POLICY, AT)["problems"]
    assert any(p["rule"] == "misleading" and p["line"] == 2 for p in problems)
    # one byte shorter (65,535 bytes before the LF) is still read whole: both excepted
    ok = b"#" * (SCANNER_MAX_LINE - 1) + b"\n"
    assert blocking(tmp_path, b"CVE-2026-1001\n" + ok + b"CVE-2026-1002\n") == []


def test_a_bom_is_part_of_the_first_id_and_invalid_bytes_stay_in_the_id(tmp_path):
    # Trivy does not strip a BOM from .trivyignore: the first ID is "\ufeffCVE-2026-1001" and matches nothing
    assert blocking(tmp_path, b"\xef\xbb\xbfCVE-2026-1001\nCVE-2026-1002\n") == ["CVE-2026-1001"]
    assert blocking(tmp_path, b"CVE-2026-1001\xff\nCVE-2026-1002\n") == ["CVE-2026-1001"]


@pytest.mark.parametrize("digits", ["\uff12\uff10\uff19\uff19", "\u0662\u0660\u0669\u0669"],
                         ids=["fullwidth", "arabic-indic"])
def test_non_ascii_digits_in_a_date(tmp_path, digits):
    # plain: Go's time.Parse refuses the expiry, so Trivy drops the whole line
    assert blocking(tmp_path, f"CVE-2026-1001 exp:{digits}-01-01\n".encode()) == ["CVE-2026-1001", "CVE-2026-1002"]
    # YAML: no timestamp, no RFC 3339 string: Trivy refuses the file (FATAL), the gate cannot judge (exit 2)
    ig = ignorefile(tmp_path, f"vulnerabilities:\n  - id: CVE-2026-1001\n    expired_at: {digits}-01-01\n".encode(),
                    ".trivyignore.yaml")
    with pytest.raises(UnusableInput):
        judge(report(tmp_path), [ig], POLICY, AT)


@pytest.mark.parametrize("body", [
    'vulnerabilities:\n  - id: CVE-2026-1001\n  - id: CVE-2026-1002\n    paths: ["[a"]\n',          # invalid glob
    'vulnerabilities:\n  - id: CVE-2026-1001\n  - id: CVE-2026-1002\n    purls: ["notapurl"]\n',    # invalid purl
    'vulnerabilities:\n  - id: CVE-2026-1001\n    id: CVE-2026-1002\n',                              # duplicate key
    'vulnerabilities:\n  - id: CVE-2026-1001\nvulnerabilities:\n  - id: CVE-2026-1002\n',            # duplicate section
    'vulnerabilities:\n  - id: CVE-2026-1001\n    x: 1\n    x: 2\n',                                  # duplicate unknown key
    'secrets:\n  - id: s\n    paths: ["a/{b"]\nvulnerabilities:\n  - id: CVE-2026-1001\n',           # another section
    'vulnerabilities:\n  - id: CVE-2026-1001\n    expired_at: "2099-01-01"\n',                       # quoted date only
    'filepath: [1]\nvulnerabilities:\n  - id: CVE-2026-1001\n',                                      # struct field shape
], ids=["glob", "purl", "dup-key", "dup-section", "dup-unknown", "other-section", "quoted-date", "filepath"])
def test_a_yaml_file_trivy_refuses_is_refused_whole(tmp_path, body):
    ig = ignorefile(tmp_path, body.encode(), ".trivyignore.yaml")
    with pytest.raises(FileRejected):
        parse_exception_file(ig.name, ig.read_bytes())
    assert main(["gate", str(report(tmp_path)), "--ignorefile", str(ig), "--at", "2026-03-04"]) == 2
    problems = lint([ig], POLICY, AT)["problems"]
    assert problems[0]["rule"] == "refused"


def test_an_expiry_through_a_merge_key_applies_and_is_shown(tmp_path):
    data = (b"defaults: &old\n  expired_at: 2026-01-01\n"
            b"vulnerabilities:\n  - <<: *old\n    id: CVE-2026-1001\n    statement: looks permanent\n")
    # yaml.v3 honours the merge key: the entry expired on 2026-01-01, so CVE-2026-1001 blocks
    assert blocking(tmp_path, data, ".trivyignore.yaml") == ["CVE-2026-1001", "CVE-2026-1002"]
    problems = lint([tmp_path / ".trivyignore.yaml"], POLICY, AT)["problems"]
    assert any(p["rule"] == "misleading" and "merge key" in p["message"] and p["line"] == 4 for p in problems)
    # the entry's own key wins over the merged one, wherever it stands
    data = (b"defaults: &old\n  expired_at: 2026-01-01\n"
            b"vulnerabilities:\n  - expired_at: 2099-01-01\n    <<: *old\n    id: CVE-2026-1001\n")
    assert blocking(tmp_path, data, ".trivyignore.yaml") == ["CVE-2026-1002"]


def test_yaml_extension_is_case_sensitive_as_go_filepath_ext(tmp_path):
    # Trivy reads "x.YAML" as a plain file: its lines are IDs like "vulnerabilities:", nothing is excepted
    data = b"vulnerabilities:\n  - id: CVE-2026-1001\n"
    assert blocking(tmp_path, data, "ignore.YAML") == ["CVE-2026-1001", "CVE-2026-1002"]
    assert blocking(tmp_path, data, "ignore.yaml") == ["CVE-2026-1002"]


def test_purl_and_path_semantics(tmp_path):
    r = tmp_path / "r.json"
    r.write_text(json.dumps({"SchemaVersion": 2, "ArtifactName": "img:1", "ArtifactType": "container_image",
                             "Results": [{"Target": "app/package-lock.json", "Class": "lang-pkgs", "Type": "npm",
                                          "Vulnerabilities": [
                                              {"VulnerabilityID": "CVE-1", "PkgName": "lodash", "Severity": "CRITICAL",
                                               "PkgPath": "app/node_modules/lodash/package.json",
                                               "PkgIdentifier": {"PURL": "pkg:npm/lodash@4.17.20"}, "InstalledVersion": "4.17.20"},
                                              {"VulnerabilityID": "CVE-2", "PkgName": "nopurl", "Severity": "CRITICAL",
                                               "InstalledVersion": "1"}]}]}))

    def left(yaml_text):
        ig = ignorefile(tmp_path, yaml_text.encode(), ".trivyignore.yaml")
        return sorted(f.vulnerability_id for f in judge(r, [ig], POLICY, AT).blocking)
    assert left('vulnerabilities:\n  - id: CVE-1\n    purls: ["pkg:npm/Lodash"]\n') == ["CVE-2"]       # npm names fold
    assert left('vulnerabilities:\n  - id: CVE-1\n    purls: ["pkg:npm/lodash@4.17.21"]\n') == ["CVE-1", "CVE-2"]
    # a finding without a purl: Trivy skips the purl test, so the entry applies
    assert left('vulnerabilities:\n  - id: CVE-2\n    purls: ["pkg:npm/other"]\n') == ["CVE-1"]
    assert left('vulnerabilities:\n  - id: CVE-1\n    paths: ["app/**"]\n') == ["CVE-2"]
    assert left('vulnerabilities:\n  - id: CVE-1\n    paths: ["app"]\n') == ["CVE-1", "CVE-2"]
    assert left('vulnerabilities:\n  - id: CVE-1\n    paths: ["app/{x,package-lock.json}"]\n') == ["CVE-2"]


def test_gate_refuses_what_is_not_a_scan_report(tmp_path):
    for text in ("[]", "null", '[{"foo": 1}]'):
        p = tmp_path / "x.json"
        p.write_text(text)
        assert main(["gate", str(p)]) == 2, text


def test_sarif_severity_from_security_severity_when_the_message_has_none(tmp_path):
    sarif = {"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": [{
        "tool": {"driver": {"name": "Trivy", "version": "0.59.1", "rules": [
            {"id": "CVE-2026-9", "name": "OsPackageVulnerability", "properties": {"security-severity": "9.8"}}]}},
        "results": [{"ruleId": "CVE-2026-9", "ruleIndex": 0, "level": "error",
                     "message": {"text": "Package: openssl\nInstalled Version: 3.0\nVulnerability CVE-2026-9"},
                     "locations": [{"physicalLocation": {"artifactLocation": {"uri": "img (debian 12)"}}}]}]}]}
    p = tmp_path / "r.sarif"
    p.write_text(json.dumps(sarif))
    # level "error" alone would read HIGH and pass; security-severity 9.8 is CRITICAL: blocked (exit 1)
    assert main(["gate", str(p), "--at", "2026-03-04"]) == 1


def test_weekly_kpis_count_a_critical_hidden_behind_a_lone_cr(tmp_path):
    """The KPI half of the attack: a snapshot whose only line is 'CVE-A exp:..<CR>CVE-B' excepts CVE-A only.
    CVE-B (CRITICAL, in production since Monday) stays counted: critical_in_prod 1, excepted 1."""
    sc = Scenario(tmp_path)
    sc.registry_scan("A", datetime(2026, 3, 2, 2), [vuln("CVE-A", "a", "CRITICAL"), vuln("CVE-B", "b", "CRITICAL")])
    sc.exceptions("api", date(2026, 3, 1), "CVE-A exp:2026-05-01\rCVE-B\n")
    k = sc.kpis(date(2026, 3, 2))
    assert k["critical_in_prod"] == {"count": 1, "excepted": 1}


def test_prune_refuses_a_flow_list_it_cannot_split_and_leaves_the_file(tmp_path):
    text = b'vulnerabilities: [{id: CVE-1, expired_at: 2026-01-01}, {id: CVE-2, expired_at: 2099-01-01}]\n'
    ig = ignorefile(tmp_path, text, ".trivyignore.yaml")
    with pytest.raises(UnusableInput, match="unchanged"):
        prune(ig, AT)
    assert ig.read_bytes() == text
    assert main(["exceptions", "prune", str(ig), "--at", "2026-03-04"]) == 2


def test_prune_takes_the_dash_line_with_an_item_and_keeps_the_reading(tmp_path):
    text = (b"vulnerabilities:\n  -\n    id: CVE-1\n    expired_at: 2026-01-01\n"
            b"  - id: CVE-2\n    expired_at: 2099-01-01\n")
    ig = ignorefile(tmp_path, text, ".trivyignore.yaml")
    assert [r["id"] for r in prune(ig, AT)] == ["CVE-1"]
    _, entries = parse_exception_file(ig.name, ig.read_bytes())
    assert [(e.vuln_id, e.valid) for e in entries] == [("CVE-2", True)]     # no null item left behind


def test_prune_keeps_a_plain_line_trivy_reads_as_one_entry_and_writes_atomically(tmp_path, monkeypatch):
    data = b"# why: pending\nCVE-1 exp:2026-01-01\r\nCVE-2 exp:2099-01-01\n"
    ig = ignorefile(tmp_path, data)
    os.chmod(ig, 0o640)
    # a failed write (the disk fills while syncing) leaves the file as it was
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        prune(ig, AT)
    assert ig.read_bytes() == data and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    assert [r["id"] for r in prune(ig, AT)] == ["CVE-1"]
    assert ig.read_bytes() == b"CVE-2 exp:2099-01-01\n"
    assert stat.S_IMODE(ig.stat().st_mode) == 0o640


@pytest.mark.parametrize("body,left", [
    (b"vulnerabilities:\n  - id:\tCVE-2026-1001\n", ["CVE-2026-1002"]),           # a tab after ':' separates
    (b"vulnerabilities:\n  - id: CVE-2026-1001\t\n", ["CVE-2026-1002"]),          # a trailing tab is blank
    (b"vulnerabilities:\n  - id: CVE-2026-1001\tx\n", ["CVE-2026-1001", "CVE-2026-1002"]),   # inside the ID
    (b"a: &x {id: CVE-2026-1001}\nb: &x {id: CVE-2026-1002}\nvulnerabilities: [*x]\n", ["CVE-2026-1001"]),  # anchor again
], ids=["tab-after-colon", "trailing-tab", "tab-inside", "anchor-redefined"])
def test_yaml_tabs_and_anchors_as_libyaml_reads_them(tmp_path, body, left):
    # yaml.v3 is a port of libyaml: tabs are blanks after an indicator, and a later anchor replaces an earlier
    # one (PyYAML's own scanner refused the first two files and its composer the last)
    assert blocking(tmp_path, body, ".trivyignore.yaml") == left


def test_openvex_speaks_only_of_the_packages_it_names(tmp_path):
    r = tmp_path / "r.json"
    r.write_text(json.dumps({"SchemaVersion": 2, "ArtifactName": "img:1", "ArtifactType": "container_image",
                             "Results": [{"Target": "img:1 (debian 12)", "Class": "os-pkgs", "Type": "debian",
                                          "Vulnerabilities": [
                                              {"VulnerabilityID": "CVE-1", "PkgName": "openssl", "Severity": "CRITICAL",
                                               "PkgIdentifier": {"PURL": "pkg:deb/debian/openssl@3.0.11-1?arch=amd64"},
                                               "InstalledVersion": "3.0.11-1"},
                                              {"VulnerabilityID": "CVE-1", "PkgName": "libssl3", "Severity": "CRITICAL",
                                               "InstalledVersion": "3.0.11-1"}]}]}))
    vex = tmp_path / "img.openvex.json"
    vex.write_text(json.dumps({"@context": "https://openvex.dev/ns/v0.2.0", "statements": [
        {"vulnerability": {"name": "CVE-1"}, "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path",
         "products": [{"@id": "pkg:deb/debian/openssl@3.0.11-1"}]}]}))
    # openssl's purl is covered (version given, qualifiers not): excepted; libssl3 has no purl: a VEX statement
    # names packages, so it is not excepted (unlike a .trivyignore.yaml purls entry, which Trivy skips then)
    res = judge(r, [vex], POLICY, AT)
    assert [f.pkg_name for f in res.excepted] == ["openssl"] and [f.pkg_name for f in res.blocking] == ["libssl3"]


@pytest.mark.parametrize("body,left", [
    (b"# note\n\xef\xbb\xbfvulnerabilities:\n  - id: CVE-2026-1001\n", ["CVE-2026-1001", "CVE-2026-1002"]),
    (b"vulnerabilities:\n  - id: CVE-2026-1001\n\xef\xbb\xbf  - id: CVE-2026-1002\n", ["CVE-2026-1002"]),
    (b"\xef\xbb\xbfvulnerabilities:\n  - id: CVE-2026-1001\n", ["CVE-2026-1002"]),
], ids=["bom-before-the-section", "bom-before-an-item", "bom-at-the-start"])
def test_a_bom_inside_a_yaml_file_is_an_ordinary_character(tmp_path, body, left):
    # yaml.v3 skips a BOM only at the very start: later, "<BOM>vulnerabilities" and "<BOM>  - id" are unknown
    # top-level keys, so their entries are not applied (libyaml would skip the BOM at any line's start)
    assert blocking(tmp_path, body, ".trivyignore.yaml") == left
