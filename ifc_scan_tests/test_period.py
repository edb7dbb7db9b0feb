"""The audit-period evidence pack on a hand-built three-week scenario; figures worked out by hand.

Lineage api: image A scanned Mon 2026-03-02 02:00 lists CVE-C (CRITICAL) and CVE-H (HIGH); image B
scanned Mon 22:00 lists only CVE-H (CVE-C fixed after 20 h, SLA 24 h: within); image C scanned Tue
2026-03-10 02:00 lists neither (CVE-H fixed after 8 days = 192 h, SLA 168 h: late). An exception snapshot of 2026-03-02 lists CVE-X until
2026-03-09 (nothing matches it). Weeks published: 2026-W10, W11, W12 (Thursdays 5, 12, 19 March)."""

import json
import zipfile
from datetime import date, datetime

import pytest

from ifc_scan.cli import main
from ifc_scan.report.period import build_period, period_bounds, period_mondays
from ifc_scan_tests.scenario import Scenario, vuln


WEEKS = [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16)]


def publish(sc: Scenario, root, mondays=WEEKS):
    """Ingest the scenario, build its lifecycle and publish the weeks, as the weekly job does."""
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.policy import load_policy
    from ifc_scan.report.run import publish_weeks
    from ifc_scan.warehouse.db import connect
    ingest(sc.landing, root / "w.duckdb", progress=lambda m: None)
    policy = load_policy()
    with connect(root / "w.duckdb") as con:
        derive_lifecycle(con, policy)
        publish_weeks(con, policy, mondays, root / "reports", landing=str(sc.landing))
    return root / "reports"


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("period")
    sc = Scenario(tmp)
    c, h = vuln("CVE-C", "openssl", "CRITICAL"), vuln("CVE-H", "zlib", "HIGH")
    sc.registry_scan("A", datetime(2026, 3, 2, 2), [c, h])
    sc.registry_scan("B", datetime(2026, 3, 2, 22), [h])      # a new image without CVE-C: fixed
    sc.registry_scan("C", datetime(2026, 3, 10, 2), [])       # a new image without CVE-H: fixed
    sc.exceptions("api", date(2026, 3, 2), "# accepted: vendor fix pending, approved SEC-7\nCVE-X exp:2026-03-09\n")
    return publish(sc, tmp)


def test_a_period_is_the_iso_weeks_whose_thursday_it_holds():
    # March 2026: Thursdays 5, 12, 19, 26 -> the weeks of Mondays 2, 9, 16, 23
    assert period_mondays(*period_bounds("2026-03", "2026-03")) == [date(2026, 3, d) for d in (2, 9, 16, 23)]
    # November 2026 ends on Monday 30: that week's Thursday (3 Dec) is December's
    assert period_mondays(*period_bounds("2026-11", "2026-11"))[-1] == date(2026, 11, 23)
    assert period_bounds("2026-W10", "2026-W12") == (date(2026, 3, 2), date(2026, 3, 22))
    with pytest.raises(ValueError, match="ends"):
        period_bounds("2026-05", "2026-04")


def test_period_figures_worked_by_hand(reports):
    pack = build_period(reports, date(2026, 3, 2), date(2026, 3, 22), sample_size=1, seed=1)
    f = pack.figures
    assert f["period"]["weeks"] == 3 and f["period"]["weeks_missing"] == []
    # SLA over the period: CRITICAL fixed within (W10), HIGH fixed late (W11)
    assert (f["sla"]["CRITICAL"], f["sla"]["HIGH"]) == ({"closed_within": 1, "closed_late": 0},
                                                      {"closed_within": 0, "closed_late": 1})
    # time to remediate: CRITICAL 20 h (under 1 d), HIGH 192 h (7-30 d)
    crit, high = f["time_to_remediate"]["CRITICAL"], f["time_to_remediate"]["HIGH"]
    assert (crit["n"], crit["mean"], crit["max"], crit["histogram"]["under 1 d"]) == (1, 20.0, 20.0, 1)
    assert (high["n"], high["median"], high["histogram"]["7-30 d"]) == (1, 192.0, 1)
    # nightly continuity of the one image, first seen 03-02: W10 scanned on 03-02 (1 of 7 days), W11 on 03-10
    # (1 of 7), W12 never (0 of 7): 2 of 21 image-days, 9.52 %, 19 days without a scan
    assert f["nightly"]["by_image"] == [{"lineage": "ghcr.io/acme/api", "days_with_scan": 2, "lineage_days": 21,
                                         "pct": 9.52, "gap_days": 19}]
    assert (f["nightly"]["days_with_scan"], f["nightly"]["lineage_days"]) == (2, 21)
    # the exception line: listed W10 to W12, past its expiry from W11 on; its approval is in its reason
    (e,) = pack.populations["exceptions"]
    assert (e["id"], e["first_week"], e["last_week"]) == ("CVE-X", "2026-W10", "2026-W12")
    # W10 ends Mon 03-09 00:00, the expiry instant itself: Trivy counts the entry expired on its date
    assert "expired_listed" in e["flags"] and "listed past its expiry from 2026-W10" in e["life"]
    # never in force at a week's end, so no week judged its approval chain
    assert e.get("chain_complete") is None and f["exceptions_with_incomplete_chain"] == 0
    # each strip cell is the week's own status
    for row in f["controls"]:
        for week, status in row["cells"]:
            k = json.loads((reports / week / "kpis.json").read_text())
            c = next(c for c in k["controls"] if f"{c['framework']} {c['id']}" == row["control"])
            assert status == c["status"], (row["control"], week)
    # the sample is reproducible from its seed, and another seed may differ only in order/choice
    again = build_period(reports, date(2026, 3, 2), date(2026, 3, 22), sample_size=1, seed=1)
    assert again.sample == pack.sample and len(pack.sample["remediations"]) == 1


def test_the_pack_is_written_verified_and_zipped(reports, capsys):
    assert main(["period", "--reports", str(reports), "--from", "2026-W10", "--to", "2026-W12", "--seed", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    folder = reports / "periods" / "2026-03-02_2026-03-22"
    assert out["folder"] == str(folder) and out["sample_seed"] == 5
    names = {"period.html", "README.txt", "manifest.json", "verification.txt", "sample.json", "figures.json",
             "remediations.csv", "exceptions.csv", "deploys.csv", "nightly_gaps.csv", "uncovered_builds.csv",
             "weeks_x_controls.csv", "lineage_days.csv"}
    assert names <= {p.name for p in folder.iterdir()}
    verification = (folder / "verification.txt").read_text()
    assert verification.count("VERIFIED") == 3 and "NOT VERIFIED" not in verification
    manifest = json.loads((folder / "manifest.json").read_text())
    import hashlib
    for name, sha in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha, name
    assert [w["week"] for w in manifest["weeks"]] == ["2026-W10", "2026-W11", "2026-W12"]
    with zipfile.ZipFile(folder.with_suffix(".zip")) as zf:
        assert {n.split("/", 1)[1] for n in zf.namelist()} == set(manifest["files"]) | {"manifest.json"}
    html = (folder / "period.html").read_text()
    assert 'href="../../2026-W10/report.html"' in html or "No published week had a failing control" in html


def test_a_period_without_published_weeks_is_an_error(reports):
    assert main(["period", "--reports", str(reports), "--from", "2025-01", "--to", "2025-02"]) == 2


def test_an_exception_renewed_in_a_later_snapshot_is_one_exception_with_its_renewal(tmp_path):
    """Snapshot 2026-03-02 lists CVE-R until 03-12; snapshot 2026-03-10 renews it until 04-30; snapshot
    2026-03-17 no longer lists it. At the week ends (Mondays 9, 16, 23 March, 00:00) the snapshots in force
    are those of 03-02, 03-10 and 03-17: one exception, renewed in W11, gone after W11."""
    sc = Scenario(tmp_path)
    sc.registry_scan("A", datetime(2026, 3, 2, 2), [vuln("CVE-R", "zlib", "HIGH")])
    sc.exceptions("api", date(2026, 3, 2), "# risk accepted\nCVE-R exp:2026-03-12\n")
    sc.exceptions("api", date(2026, 3, 10), "# risk accepted, renewed\nCVE-R exp:2026-04-30\n")
    sc.exceptions("api", date(2026, 3, 17), "# nothing excepted any more\n")
    pack = build_period(publish(sc, tmp_path), date(2026, 3, 2), date(2026, 3, 22))
    (e,) = pack.populations["exceptions"]
    assert (e["id"], e["first_week"], e["last_week"], e["expiry"]) == ("CVE-R", "2026-W10", "2026-W11",
                                                                     "2026-04-30T00:00:00Z")
    assert e["life"] == ("listed from 2026-W10; renewed in 2026-W11: expiry 2026-03-12T00:00:00Z -> "
                         "2026-04-30T00:00:00Z; no longer listed after 2026-W11")
    # hand-copied snapshots, no version-control history: in force at the ends of W10 and W11 with no approval
    # at all; CVE-R was HIGH when scanned (03-02), so the chain needed a security engineer and a lead
    assert (e["chain_complete"], e["incomplete_weeks"], e["missing_roles"]) == (
        "False", 2, "security-engineer, engineering-lead")
    assert pack.figures["exceptions_with_incomplete_chain"] == 1
