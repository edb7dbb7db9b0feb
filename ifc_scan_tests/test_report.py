import json

from ifc_scan.report.writer import csv_safe
from ifc_scan_tests.scenario import Scenario, vuln
from datetime import date, datetime


def test_hostile_text_is_escaped_and_csv_cells_neutralised(tmp_path):
    from ifc_scan.report.run import publish_weeks
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
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
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
    from ifc_scan.report.run import publish_weeks
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
