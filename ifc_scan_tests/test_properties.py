"""Property-based tests (Hypothesis): for any input, a reader returns rows or rejects with a reason; it
never raises anything else. Examples Hypothesis finds are shrunk to the smallest failing input."""

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ifc_scan.ingest.model import Rejected
from ifc_scan.ingest.scan_files import read_scan_bytes
from ifc_scan.timeutil import BadTimestamp, parse_ts

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
                    max_leaves=30)
# JSON shaped like a Trivy report in places, so the generator reaches past the first checks
TRIVY_KEYS = ["SchemaVersion", "ArtifactName", "ArtifactType", "Metadata", "Results", "CreatedAt", "ImageID",
              "RepoTags", "RepoDigests", "Vulnerabilities", "VulnerabilityID", "PkgName", "Severity", "Target", "Class"]
TRIVYISH = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.text(max_size=30)
    | st.sampled_from(["2026-03-02T02:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "CRITICAL"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(TRIVY_KEYS) | st.text(max_size=8), inner,
                                                                 max_size=6),
    max_leaves=40)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40) | st.text(alphabet=string.digits + "-:T.Z+ ", max_size=40))
def test_parse_ts_returns_a_time_or_rejects(text):
    try:
        parse_ts(text)
    except BadTimestamp:
        pass


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?([+-]\d{2}:\d{2}|Z)\Z"))
def test_parse_ts_on_well_formed_strings(text):
    try:
        t = parse_ts(text)
    except BadTimestamp as exc:
        assert str(exc)            # a reason
        return
    assert t is None or t.tzinfo is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(JSON)
def test_scan_reader_on_any_json_returns_scans_or_rejects(doc):
    try:
        read_scan_bytes(json.dumps(doc).encode())
    except Rejected as exc:
        assert str(exc)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TRIVYISH, st.integers(min_value=0, max_value=3))
def test_scan_reader_on_trivy_shaped_json_returns_scans_or_rejects(doc, version):
    if isinstance(doc, dict):
        doc = {"SchemaVersion": version, **doc}
    try:
        read_scan_bytes(json.dumps(doc).encode())
    except Rejected as exc:
        assert str(exc)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_scan_reader_on_any_bytes_returns_scans_or_rejects(data):
    try:
        read_scan_bytes(data)
    except Rejected:
        pass


def test_offsets_outside_14_hours_and_overflow_are_rejected():
    # +99:99 used to move a scan by four days; 9999-12-31 23:59 at -01:00 is past datetime.max in UTC
    for bad in ("2026-03-02T02:00:00+99:99", "2026-03-02T02:00:00+14:01", "2026-03-02T02:00:00-15:00",
                "9999-12-31T23:59:59-01:00"):
        try:
            parse_ts(bad)
        except BadTimestamp:
            continue
        raise AssertionError(f"{bad} was accepted")
    # near year 1 nothing overflows: 0002-01-01 00:30 at +01:00 is 0001-12-31 23:30 UTC, and year 0001 is
    # Go's zero time, which Trivy writes for "unknown" (None)
    assert parse_ts("0002-01-01T00:30:00+01:00").isoformat() == "0001-12-31T23:30:00"
    assert parse_ts("0001-01-01T00:30:00+01:00") is None
    # the extremes that exist: +14:00 (Kiribati) and -12:00
    assert parse_ts("2026-03-02T14:00:00+14:00").isoformat() == "2026-03-02T00:00:00"
    assert parse_ts("2026-03-02T00:00:00-12:00").isoformat() == "2026-03-02T12:00:00"


# --- exception files and the inventory ---------------------------------------------------------------

YAML_KEYS = ["vulnerabilities", "misconfigurations", "secrets", "licenses", "id", "paths", "purls", "expired_at",
             "statement", "deployable", "retired", "lineage", "name", "at"]
YAMLISH = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.text(max_size=20)
    | st.sampled_from(["2026-03-02", "2026-02-30", "2026-03-02T00:00:00Z", "CVE-2026-1", "pkg:npm/a@1", "ghcr.io/a/b"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(YAML_KEYS) | st.text(max_size=6), inner,
                                                                 max_size=5),
    max_leaves=30)
IGNORE_LINE = st.one_of(st.text(max_size=40), st.sampled_from(["CVE-1", "CVE-1 exp:2026-03-01", "CVE-1 exp:2026-3-1",
                                                              "# Reason, Expiry: 2026-04-01", "", "exp:", "CVE-1 # x"]))


def as_yaml(doc) -> str:
    import yaml
    return yaml.safe_dump(doc, allow_unicode=True)


ENTRY = st.dictionaries(st.sampled_from(["id", "paths", "purls", "expired_at", "statement"]), YAMLISH, max_size=5)
IGNORE_YAML = st.dictionaries(st.sampled_from(["vulnerabilities", "misconfigurations", "secrets", "licenses"]),
                              st.lists(ENTRY | YAMLISH, max_size=4) | YAMLISH, max_size=3).map(as_yaml)
INVENTORY = st.dictionaries(st.sampled_from(["deployable", "retired"]),
                            st.lists(st.dictionaries(st.sampled_from(["name", "lineage", "at"]), YAMLISH, max_size=3)
                                     | YAMLISH, max_size=4) | YAMLISH, max_size=2).map(as_yaml)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), st.lists(IGNORE_LINE, max_size=12).map("\n".join), IGNORE_YAML,
                 YAMLISH.map(as_yaml), JSON.map(json.dumps)),
       st.sampled_from([".trivyignore", ".trivyignore.yaml", "vex.openvex.json"]))
def test_exception_reader_returns_entries_or_refuses_the_file(text, name):
    from ifc_scan.ingest.exceptions import FileRejected, parse_exception_file
    try:
        fmt, entries = parse_exception_file(name, text)
    except FileRejected as exc:
        assert str(exc) and all(not e.valid for e in exc.entries)
        return
    for e in entries:
        assert e.valid or e.invalid_reason                      # an entry Trivy drops says why
        assert e.expiry is None or e.valid                      # only a valid entry enforces an expiry
        assert e.vuln_id is None or isinstance(e.vuln_id, str)
        assert all(isinstance(p, str) for p in e.paths + e.purls)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=300), YAMLISH.map(as_yaml), INVENTORY))
def test_inventory_reader_returns_lineages_or_rejects(text):
    from ifc_scan.ingest.inventory import parse_inventory
    try:
        deployable, retired = parse_inventory(text)
    except Rejected as exc:
        assert str(exc)
        return
    assert all(isinstance(lin, str) and lin for _name, lin in deployable)
    assert all(at is not None for _lin, at in retired)
