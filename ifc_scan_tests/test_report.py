import csv
import pytest
import json

from ifc_scan.report.writer import csv_safe
from ifc_scan_tests.scenario import Scenario, vuln
from datetime import date, datetime


def test_hostile_text_is_escaped_and_csv_cells_neutralised(tmp_path):
    from ifc_scan.pipeline import publish_weeks
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.policy import load_policy
    from ifc_scan.warehouse.db import connect
    from ifc_scan.ingest.runner import ingest
    sc = Scenario(tmp_path)
    evil = vuln("CVE-<script>alert(1)</script>", '"onerror=alert(1) x', "HIGH")
    evil["Title"] = "=cmd|' /C calc'!A0 <img src=x onerror=alert(1)> javascript:alert(1)"
    sc.registry_scan("A", datetime(2026, 3, 2, 2), [evil])
    ingest(sc.landing, tmp_path / "w.duckdb", progress=lambda m: None)
    policy = load_policy()
    with connect(tmp_path / "w.duckdb") as con:
        derive_lifecycle(con, policy)
        st = publish_weeks(con, policy, [date(2026, 3, 2)], tmp_path / "reports", landing=str(sc.landing))
    html = (tmp_path / "reports" / "2026-W10" / "report.html").read_text()
    # identifiers may wrap after separators (<wbr>, the only markup the page adds inside them)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html.replace("<wbr>", "")
    assert "<img src=x" not in html
    assert "Content-Security-Policy" in html
    csv_text = (tmp_path / "reports" / "2026-W10" / "findings.csv").read_text()
    assert ",'=cmd|" in csv_text
    k = json.loads((tmp_path / "reports" / "2026-W10" / "kpis.json").read_text())
    # the headline figure printed equals kpis.json
    assert f'{k["open_backlog"]["total"]} open' in html
    assert st[0]["status"] == "written"


def test_csv_safe():
    assert csv_safe("=1+1") == "'=1+1" and csv_safe("+x") == "'+x" and csv_safe("-x") == "'-x" and csv_safe("@x") == "'@x"
    assert csv_safe("CVE-1") == "CVE-1" and csv_safe(None) == ""


def test_misconfigurations_and_secrets_of_production_images_are_shown(tmp_path):
    import csv
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.policy import load_policy
    from ifc_scan.pipeline import publish_weeks
    from ifc_scan.warehouse.db import connect
    sc = Scenario(tmp_path)
    p = sc.registry_scan("A", datetime(2026, 3, 2, 2), [vuln("CVE-1", "a", "LOW")])
    doc = json.loads(p.read_text())
    doc["Results"] += [
        {"Target": "Dockerfile", "Class": "config", "Type": "dockerfile", "Misconfigurations": [
            {"ID": "DS002", "Title": "Image user should not be 'root'", "Severity": "HIGH", "Status": "FAIL"},
            {"ID": "DS026", "Title": "No HEALTHCHECK", "Severity": "LOW", "Status": "PASS"}]},
        {"Target": "app/.env", "Class": "secret", "Secrets": [{"RuleID": "aws-access-key-id", "Severity": "CRITICAL",
                                                             "Title": "AWS Access Key ID", "StartLine": 3, "Match": "AKIA****"}]}]
    p.write_text(json.dumps(doc))
    ingest(sc.landing, tmp_path / "w.duckdb", progress=lambda m: None)
    policy = load_policy()
    with connect(tmp_path / "w.duckdb") as con:
        derive_lifecycle(con, policy)
        publish_weeks(con, policy, [date(2026, 3, 2)], tmp_path / "reports", landing=str(sc.landing))
    week = tmp_path / "reports" / "2026-W10"
    with open(week / "config_and_secrets.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    # the failed check and the secret; the passed check is not a finding
    assert [(r["kind"], r["id"], r["severity"]) for r in rows] == [("secret", "aws-access-key-id", "CRITICAL"),
                                                                   ("misconfiguration", "DS002", "HIGH")]
    html = (week / "report.html").read_text()
    assert "1 failed configuration check(s), 1 exposed secret(s)" in html and "app/.env:3" in html


def test_numbers_durations_periods_and_identifiers_read_as_people_write_them():
    from ifc_scan.report.html import duration, fmt, period, wrapid
    # counts are integers; other figures one decimal at most; n/a is never 0
    assert [fmt(2), fmt(12345), fmt(100.0, " %"), fmt(87.5, " %"), fmt(66.666, " %"), fmt(None)] == [
        "2", "12,345", "100 %", "87.5 %", "66.7 %", "n/a"]
    # 1,176 h = 49 x 24 h; 30 h = 1 d 6 h; below a day, hours
    assert [duration(1176.0), duration(30.0), duration(5.25), duration(0.0), duration(None)] == [
        "49 d", "1 d 6 h", "5.2 h", "0 h", "n/a"]
    # W48 of 2026: Mon 23 Nov 00:00 to Mon 30 Nov 00:00 (end exclusive) is Mon 23 - Sun 29 Nov
    assert period("2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z") == "Mon 23 – Sun 29 Nov 2026 (UTC)"
    assert period("2026-12-28T00:00:00Z", "2027-01-04T00:00:00Z") == "Mon 28 Dec 2026 – Sun 3 Jan 2027 (UTC)"
    # wraps only after separators, and stays escaped
    assert str(wrapid("ghcr.io/acme/a<b")) == "ghcr.<wbr>io/<wbr>acme/<wbr>a&lt;b"


def test_findings_link_their_advisory_only_when_it_is_a_web_address(tmp_path):
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.policy import load_policy
    from ifc_scan.pipeline import publish_weeks
    from ifc_scan.warehouse.db import connect
    sc = Scenario(tmp_path)
    good, bad = vuln("CVE-2026-1", "openssl", "HIGH"), vuln("CVE-2026-2", "zlib", "HIGH")
    good["PrimaryURL"] = "https://avd.aquasec.com/nvd/cve-2026-1"
    bad["PrimaryURL"] = "javascript:alert(1)"
    sc.registry_scan("A", datetime(2026, 3, 2, 2), [good, bad])
    ingest(sc.landing, tmp_path / "w.duckdb", progress=lambda m: None)
    policy = load_policy()
    with connect(tmp_path / "w.duckdb") as con:
        derive_lifecycle(con, policy)
        publish_weeks(con, policy, [date(2026, 3, 2)], tmp_path / "reports", landing=str(sc.landing))
    html = (tmp_path / "reports" / "2026-W10" / "report.html").read_text()
    assert 'href="https://avd.aquasec.com/nvd/cve-2026-1"' in html
    assert "javascript:alert" not in html
    with open(tmp_path / "reports" / "2026-W10" / "findings.csv", newline="") as fh:
        rows = {r["vulnerability_id"]: r for r in csv.DictReader(fh)}
    assert rows["CVE-2026-1"]["advisory_url"] == "https://avd.aquasec.com/nvd/cve-2026-1"
    assert rows["CVE-2026-2"]["advisory_url"] == "" and rows["CVE-2026-1"]["image"].startswith("sha256:")


def test_groups_by_image_and_package_and_what_each_exception_covers():
    from ifc_scan.report.html import exception_details, finding_groups
    row = {"lineage": "ghcr.io/a/api", "pkg_name": "openssl", "severity": "HIGH", "state": "open",
           "fixed_version": "3.0.13", "excepted_by": None}
    findings = [
        row,
        {**row, "severity": "CRITICAL", "state": "overdue", "pkg_name": "openssl", "fixed_version": "3.0.14"},
        {**row, "lineage": "ghcr.io/a/web", "pkg_name": "zlib", "fixed_version": None, "state": "excepted",
         "excepted_by": "exceptions/web/2026-03-02/.trivyignore:2"},
        {**row, "state": "closed (fixed)"},                          # closed: in no group
    ]
    g = finding_groups(findings)
    # by image: api has 1 CRITICAL + 1 HIGH, 1 overdue, 2 fixable; web 1 HIGH, 0 fixable. CRITICAL sorts first
    assert [(i["lineage"], i["by_sev"]["CRITICAL"], i["by_sev"]["HIGH"], i["overdue"], i["fixable"], i["total"])
            for i in g["images"]] == [("ghcr.io/a/api", 1, 1, 1, 2, 2), ("ghcr.io/a/web", 0, 1, 0, 0, 1)]
    # by package: openssl (worst CRITICAL) 2 findings in 1 image, fixed in 3.0.13 and 3.0.14; zlib no fix
    assert [(p["pkg_name"], p["worst"], p["total"], p["fixed_versions"], p["fixable"], p["fixable_lineages"])
            for p in g["packages"]] == [("openssl", "CRITICAL", 2, ["3.0.13", "3.0.14"], 2, 1),
                                        ("zlib", "HIGH", 1, [], 0, 0)]
    entries = [{"scope": "web", "snapshot_date": "2026-03-02", "file": ".trivyignore", "line": 2, "id": "CVE-1",
                "reason": "false positive; approved by CTO, ticket SEC-42"},
               {"scope": "web", "snapshot_date": "2026-03-02", "file": ".trivyignore", "line": 3, "id": "CVE-2",
                "reason": "not reachable"}]
    d = exception_details(entries, findings)
    # line 2 covers the one excepted zlib finding (HIGH, web); its reason records an approval. Line 3: none
    assert [(x["covers"], x["severity"], x["covers_lineages"], x["approval"]) for x in d] == [
        (1, "HIGH", ["ghcr.io/a/web"], "approved by CTO"), (0, None, [], None)]


def test_a_weeks_inputs_are_read_from_the_catalog_and_a_late_file_makes_the_stored_week_stale(tmp_path):
    """A week's input list is not stored with every week (that grew with history: 311 MB of weekly_kpis on the
    100-image year); the report stage reads it from input_catalog and checks it against the hash the stored
    figures name. A file ingested after the week was computed, with evidence time inside the week, makes the
    stored week stale: rendering refuses it by name until the week is computed again."""
    import pytest

    from ifc_scan.ingest.runner import ingest
    from ifc_scan.kpis.stage import StaleWeek, compute_and_store, load_week, manifest_hash
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.policy import load_policy
    from ifc_scan.pipeline import publish_weeks
    from ifc_scan.report.run import render_stored_weeks
    from ifc_scan.warehouse.db import connect
    s = Scenario(tmp_path)
    monday = date(2026, 3, 2)
    s.registry_scan("v1", datetime(2026, 3, 3, 2), [vuln("CVE-2026-1", "openssl", "HIGH")])
    s.registry_scan("v1", datetime(2026, 3, 4, 2), [vuln("CVE-2026-1", "openssl", "HIGH")])
    wh, policy = tmp_path / "w.duckdb", load_policy()
    ingest(s.landing, wh, progress=lambda m: None)
    with connect(wh) as con:
        derive_lifecycle(con, policy)
        compute_and_store(con, policy, [monday])
        assert "inputs_json" not in {r[0] for r in con.execute("DESCRIBE weekly_kpis").fetchall()}
        r = load_week(con, "2026-W10", with_inputs=True)
        # the inventory and the two scans, in (path, sha256) order
        assert [e["path"] for e in r.inputs] == ["inventory/deployable.yaml", "trivy/registry/001-v1.json",
                                                 "trivy/registry/002-v1.json"]
        assert manifest_hash(r.inputs) == r.kpis["inputs_manifest_sha256"]
        assert load_week(con, "2026-W10").inputs is None
    s.registry_scan("v2", datetime(2026, 3, 5, 2), [])       # arrives late: Thursday of the same week, a fixed image
    ingest(s.landing, wh, progress=lambda m: None)
    with connect(wh) as con:
        derive_lifecycle(con, policy)
        compute_and_store(con, policy, [date(2026, 3, 9)])   # another week: the catalog now holds the late file
        with pytest.raises(StaleWeek, match="week 2026-W10: its stored figures rest on other inputs"):
            render_stored_weeks(con, [monday], tmp_path / "reports", landing=str(s.landing))
        publish_weeks(con, policy, [monday], tmp_path / "reports", landing=str(s.landing))  # computes it again
        r = load_week(con, "2026-W10", with_inputs=True)
        assert len(r.inputs) == 4
        assert r.view.remediated == 1     # by hand: CVE-2026-1 on image v1 Tuesday and Wednesday, v2 without it Thursday
    manifest = json.loads((tmp_path / "reports" / "2026-W10" / "manifest.json").read_text())
    assert manifest["inputs_count"] == 4


def test_a_warehouse_of_an_older_release_rebuilds_its_lifecycle_and_weeks(tmp_path):
    """When DERIVED_VERSION changes the derived tables are dropped; what they were built from must go with
    them, or the dropped lifecycle would pass for current and every week would count no finding."""
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.lifecycle.store import derive_lifecycle, lifecycle_is_current
    from ifc_scan.policy import load_policy
    from ifc_scan.pipeline import publish_weeks
    from ifc_scan.warehouse.db import connect
    s = Scenario(tmp_path)
    s.registry_scan("v1", datetime(2026, 3, 3, 2), [vuln("CVE-2026-1", "openssl", "HIGH")])
    wh, policy = tmp_path / "w.duckdb", load_policy()
    ingest(s.landing, wh, progress=lambda m: None)
    with connect(wh) as con:
        derive_lifecycle(con, policy)
        publish_weeks(con, policy, [date(2026, 3, 2)], tmp_path / "reports", landing=str(s.landing))
        assert lifecycle_is_current(con, policy)
        con.execute("UPDATE derived_meta SET value = 'an older release' WHERE key = 'version'")
    with connect(wh) as con:          # opened by this release: derived tables rebuilt
        assert con.execute("SELECT count(*) FROM findings").fetchone()[0] == 0
        assert not lifecycle_is_current(con, policy)
        assert con.execute("SELECT value FROM derived_meta WHERE key = 'ci_reader_version'").fetchone() is not None
        derive_lifecycle(con, policy)
        publish_weeks(con, policy, [date(2026, 3, 2)], tmp_path / "reports", landing=str(s.landing))
        kpis = json.loads(con.execute("SELECT kpis_json FROM weekly_kpis").fetchone()[0])
    assert kpis["new_findings"]["total"] == 1          # the one HIGH finding, detected Tuesday


# ---- signing keys and the publication log (issue 29, point 4): each attack an insider or a careless
# operator could try, on a 4-week demo landing zone published by the CLI with a signing key


def _cli(*args):
    from ifc_scan.cli import main
    return main([str(a) for a in args])


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """W08-W10 published with a key made for them (--new-key), then a late exception snapshot revises all
    three (r2): reports/revisions/ holds each week's r1, the publication log every record."""
    from ifc_scan.demo.generator import generate
    root = tmp_path_factory.mktemp("signed")
    land, wh, rep, key = root / "landing", root / "w.duckdb", root / "reports", root / "keys" / "k.pem"
    generate(land, weeks=4, seed=9, end=date(2026, 3, 9))
    args = ("--landing", land, "--warehouse", wh, "--reports", rep, "--signing-key", key)
    assert _cli("ingest", "--landing", land, "--warehouse", wh) == 0
    assert _cli("report", *args, "--week", "2026-W08", "--new-key") == 0
    assert _cli("report", *args, "--week", "2026-W09") == 0
    assert _cli("report", *args, "--week", "2026-W10") == 0
    snap = land / "exceptions" / "_global" / "2026-02-17"
    snap.mkdir(parents=True)
    (snap / ".trivyignore").write_text("CVE-2099-0001  # late, never matches\n")
    assert _cli("ingest", "--landing", land, "--warehouse", wh) == 0
    assert _cli("report", *args, "--week", "2026-W08") == 0
    return root


@pytest.fixture
def copy(signed, tmp_path):
    """A fresh copy of the signed publication (the manifests name the landing zone by its absolute path)."""
    import shutil
    shutil.copytree(signed / "reports", tmp_path / "reports")
    shutil.copytree(signed / "keys", tmp_path / "keys")
    return tmp_path / "reports"


def test_a_signing_key_is_never_created_or_replaced_silently(tmp_path, monkeypatch, capsys):
    from ifc_scan.demo.generator import generate
    from ifc_scan.settings import ENV
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    generate(land, weeks=2, seed=3, end=date(2026, 3, 9))
    assert _cli("ingest", "--landing", land, "--warehouse", wh) == 0
    args = ("report", "--landing", land, "--warehouse", wh, "--reports", rep)
    monkeypatch.chdir(tmp_path)          # the default key path is relative: data/signing/... here
    default = tmp_path / ENV["signing_key"][1]
    # a private key inside the reports folder or the landing zone is refused, and not created
    for inside in (rep / "keys" / "k.pem", land / "k.pem"):
        capsys.readouterr()
        assert _cli(*args, "--week", "2026-W09", "--signing-key", inside, "--new-key") == 2
        assert "refused" in capsys.readouterr().err and not inside.exists() and not rep.exists()
    # first use of the default path creates it (documented), while no published week is signed
    assert _cli(*args, "--week", "2026-W09") == 0 and default.is_file()
    first = json.loads((rep / "2026-W09" / "manifest.json").read_text())["signing_key"]["fingerprint"]
    # the default key lost: an error now that weeks are signed by it, not a new key and a rotation
    old_pub = tmp_path / "old.pub.pem"
    default.with_suffix(".pub.pem").rename(old_pub)          # the auditor's copy of the first public key
    default.unlink()
    capsys.readouterr()
    assert _cli(*args, "--week", "2026-W10") == 2
    assert "does not exist" in capsys.readouterr().err and not default.exists() and not (rep / "2026-W10").exists()
    # a new key asked for is still a rotation, so it needs --rotate-key too
    assert _cli(*args, "--week", "2026-W10", "--new-key") == 2 and not default.exists()
    assert _cli(*args, "--week", "2026-W10", "--new-key", "--rotate-key") == 0
    m = json.loads((rep / "2026-W10" / "manifest.json").read_text())
    assert m["key_rotated_from"] == first != m["signing_key"]["fingerprint"]
    log = [json.loads(x) for x in (rep / "publications.log.jsonl").read_text().splitlines()]
    assert [r.get("key_rotated_from") for r in log if r["kind"] == "week"] == [None, first]
    assert _cli(*args, "--week", "2026-W10") == 0        # publishing goes on with the new key, no flag needed
    # the key reached through a link inside the reports folder: published with it, so refused too
    (rep / "k-link.pem").symlink_to(default)
    capsys.readouterr()
    assert _cli(*args, "--week", "2026-W10", "--signing-key", rep / "k-link.pem") == 2
    assert "is inside the reports folder" in capsys.readouterr().err
    (rep / "k-link.pem").unlink()
    # a rotation record is written by whoever holds the new key: it counts only with --key naming both keys
    capsys.readouterr()
    assert _cli("verify", "--reports", rep, "--all") == 1
    assert "a rotation is accepted only with --key naming the new public key" in capsys.readouterr().err
    assert _cli("verify", "--reports", rep, "--all", "--key", old_pub, "--key", default.with_suffix(".pub.pem")) == 0, \
        capsys.readouterr().err


def test_verify_all_notices_a_deleted_newest_week_and_an_edited_index(copy, capsys):
    import shutil
    capsys.readouterr()
    assert _cli("verify", "--reports", copy, "--all") == 0, capsys.readouterr().err
    index = (copy / "index.html").read_bytes()
    (copy / "index.html").write_bytes(index.replace(b"NOT COMPLIANT", b"COMPLIANT", 1))
    assert index != (copy / "index.html").read_bytes()
    capsys.readouterr()
    assert _cli("verify", "--reports", copy, "--all") == 1
    err = capsys.readouterr().err
    assert "index.html is not the one recorded in publications.log.jsonl" in err
    assert "index.html differs from the index rendered again from the published weeks" in err
    (copy / "index.html").write_bytes(index)
    # the newest week deleted, and the index rendered again without it, as a careful insider would
    from ifc_scan.report.writer import write_index
    shutil.rmtree(copy / "2026-W10")
    write_index(copy)
    capsys.readouterr()
    assert _cli("verify", "--reports", copy, "--all") == 1
    err = capsys.readouterr().err
    assert "2026-W10 r2 is recorded in publications.log.jsonl but its folder is gone (deleted)" in err
    assert "index.html is not the one recorded" in err


def test_a_week_re_signed_by_another_key_fails_without_key(copy, capsys):
    """An insider edits the newest week and signs it with a key of their own, manifest and signature
    consistent: without --key the chain's key (the previous week's) still refuses it."""
    import hashlib

    from ifc_scan.report.signing import load_or_create
    w10 = copy / "2026-W10"
    k = json.loads((w10 / "kpis.json").read_text())
    k["critical_in_prod"]["count"] = 0
    (w10 / "kpis.json").write_text(json.dumps(k, indent=2) + "\n")
    m = json.loads((w10 / "manifest.json").read_text())
    m["outputs"]["kpis.json"] = hashlib.sha256((w10 / "kpis.json").read_bytes()).hexdigest()
    forger = load_or_create(copy.parent / "forger.pem")
    m["signing_key"] = forger.describe()
    data = (json.dumps(m, indent=1) + "\n").encode()
    (w10 / "manifest.json").write_bytes(data)
    (w10 / "manifest.sig.json").write_bytes(forger.sign(data))
    capsys.readouterr()
    assert _cli("verify", "--reports", copy, "--week", "2026-W10") == 1
    err = capsys.readouterr().err
    assert "signed by " + forger.fingerprint + ", but the chain's key (previous week 2026-W09)" in err
    assert "no rotation from it is recorded" in err
    # ... nor with a rotation written by the forger into the manifest and the publication log
    from ifc_scan.report.publications import PublicationLog
    m["key_rotated_from"] = json.loads((copy / "2026-W09" / "manifest.json").read_text())["signing_key"]["fingerprint"]
    data = (json.dumps(m, indent=1) + "\n").encode()
    (w10 / "manifest.json").write_bytes(data)
    (w10 / "manifest.sig.json").write_bytes(forger.sign(data))
    PublicationLog(copy, forger).record_week("2026-W10", m["revision"], data)
    capsys.readouterr()
    assert _cli("verify", "--reports", copy, "--week", "2026-W10") == 1
    err = capsys.readouterr().err
    assert f"signed by {forger.fingerprint} after a key rotation from {m['key_rotated_from']}" in err
    assert "rotates the key from" in err


def test_a_rolled_back_week_is_detected_from_the_publication_log(copy, tmp_path, capsys):
    """The older signed revision of W10 put back, the newer one deleted, nothing else touched: every
    signature and the chain behind it still hold; the publication log says r2 is the latest."""
    import shutil
    kept = tmp_path / "auditor-copy.jsonl"          # what the auditor kept at the last review
    shutil.copy(copy / "publications.log.jsonl", kept)
    shutil.rmtree(copy / "2026-W10")
    (copy / "revisions" / "2026-W10" / "r1").rename(copy / "2026-W10")
    capsys.readouterr()
    assert _cli("verify", "--reports", copy, "--week", "2026-W10") == 1
    assert "rolled back: publications.log.jsonl records r2" in capsys.readouterr().err
    # ... the insider also cuts the log back to before r2 was recorded: only the kept copy shows it
    lines = (copy / "publications.log.jsonl").read_bytes().splitlines(keepends=True)
    cut = next(i for i, x in enumerate(lines) if b'"2026-W10":{"manifest_sha256"' in x and b'"revision":2' in x)
    (copy / "publications.log.jsonl").write_bytes(b"".join(lines[:cut]))
    capsys.readouterr()
    assert _cli("verify", "--reports", copy, "--week", "2026-W10", "--log-copy", kept) == 1
    assert "no longer begins with the" in capsys.readouterr().err
    # ... or deletes the log: the signed manifests name it
    (copy / "publications.log.jsonl").unlink()
    assert _cli("verify", "--reports", copy, "--week", "2026-W10") == 1
    assert "publications.log.jsonl, which is missing" in capsys.readouterr().err
