"""The audit-period evidence pack on a hand-built three-week scenario; figures worked out by hand.

Lineage api: image A scanned Mon 2026-03-02 02:00 lists CVE-C (CRITICAL) and CVE-H (HIGH); image B
scanned Mon 22:00 lists only CVE-H (CVE-C fixed after 20 h, SLA 24 h: within); image C scanned Tue
2026-03-10 02:00 lists neither (CVE-H fixed after 8 days = 192 h, SLA 168 h: late). An exception snapshot of 2026-03-02 lists CVE-X until
2026-03-09 (nothing matches it). Weeks published: 2026-W10, W11, W12 (Thursdays 5, 12, 19 March)."""

import json
import re
from pathlib import Path
import zipfile
from datetime import date, datetime

import pytest

from ifc_scan.cli import main
from ifc_scan.report.period import build_period, period_mondays
from ifc_scan.report.period_figures import period_bounds
from ifc_scan_tests.scenario import Scenario, vuln


WEEKS = [date(2026, 3, 2), date(2026, 3, 9), date(2026, 3, 16)]


def publish(sc: Scenario, root, mondays=WEEKS, key=None):
    """Ingest the scenario, build its lifecycle and publish the weeks, as the weekly job does (signed with
    `key`, created for them, when given)."""
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.pipeline import publish_weeks
    from ifc_scan.policy import load_policy
    from ifc_scan.warehouse.db import connect
    ingest(sc.landing, root / "w.duckdb", progress=lambda m: None)
    policy = load_policy()
    with connect(root / "w.duckdb") as con:
        derive_lifecycle(con, policy)
        publish_weeks(con, policy, mondays, root / "reports", landing=str(sc.landing),
                      signing_key=str(key) if key else None, new_key=bool(key))
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
    return publish(sc, tmp, key=tmp / "keys" / "k.pem")


def key_of(reports):
    return str(reports.parent / "keys" / "k.pem")


def period(reports, *extra, to="2026-W12"):
    return main(["period", "--reports", str(reports), "--from", "2026-W10", "--to", to, "--signing-key",
                 key_of(reports), *map(str, extra)])


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
    assert period(reports, "--seed", "5") == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["evidence_grade"] is True and out["weeks_failed_verification"] == []
    # progress on stderr while it verifies: week n of m and the time left at the pace so far
    assert "period: verifying week 1 of 3 (2026-W10); time left: estimating after the first week" in captured.err
    assert re.search(r"period: verifying week 3 of 3 \(2026-W12\); about (\d+ s|\d+ min \d\d s) left", captured.err)
    assert re.search(r"period: 3 week\(s\) verified in .*, 0 failed; writing the pack", captured.err)
    folder = reports / "periods" / "2026-03-02_2026-03-22"
    assert out["folder"] == str(folder) and out["sample_seed"] == 5
    names = {"period.html", "README.txt", "manifest.json", "verification.txt", "sample.json", "figures.json",
             "remediations.csv", "exceptions.csv", "deploys.csv", "nightly_gaps.csv", "uncovered_builds.csv",
             "weeks_x_controls.csv", "lineage_days.csv", "sample.csv"}
    assert names <= {p.name for p in folder.iterdir()}
    # every week verified: ISO/IEC 27001 9.1 passes in each (D25), recorded in the signed manifest
    figures = json.loads((folder / "figures.json").read_text())
    (iso91,) = [r for r in figures["controls"] if r["control"] == "ISO/IEC 27001 9.1"]
    assert [s for _, s in iso91["cells"]] == ["pass", "pass", "pass"]
    verification = (folder / "verification.txt").read_text()
    assert verification.count("VERIFIED") == 3 and "NOT VERIFIED" not in verification
    manifest = json.loads((folder / "manifest.json").read_text())
    import hashlib
    for name, sha in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha, name
    assert [w["week"] for w in manifest["weeks"]] == ["2026-W10", "2026-W11", "2026-W12"]
    with zipfile.ZipFile(folder.with_suffix(".zip")) as zf:
        assert {n.split("/", 1)[1] for n in zf.namelist()} == set(manifest["files"]) | {
            "manifest.json", "manifest.sig.json", "attestation.dsse.json"}     # the pack's own signature and attestation
    pub = str(reports.parent / "keys" / "k.pub.pem")
    for where in (folder, folder.with_suffix(".zip")):      # verify accepts the folder and the zip
        capsys.readouterr()
        assert main(["verify", "--pack", str(where), "--key", pub]) == 0, capsys.readouterr().err
        assert "VERIFIED" in capsys.readouterr().out


def test_a_period_without_published_weeks_is_an_error(reports):
    assert main(["period", "--reports", str(reports), "--from", "2025-01", "--to", "2025-02", "--signing-key",
                 key_of(reports)]) == 2


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


# ---- the pack as evidence (issue 29, point 3): each attack on a copy of the published weeks

@pytest.fixture
def copied(reports, tmp_path):
    """A copy of the published weeks and their key (the manifests name the landing zone absolutely)."""
    import shutil
    shutil.copytree(reports, tmp_path / "reports", ignore=shutil.ignore_patterns("periods"))
    shutil.copytree(reports.parent / "keys", tmp_path / "keys")
    return tmp_path / "reports"


def test_the_zip_is_self_contained(reports, tmp_path, capsys):
    """Unzipped in a new folder, far from the reports: every href and src of every page, and every file the
    sample cites, resolves inside it (web addresses of advisories aside)."""
    import hashlib
    import re
    from urllib.parse import unquote
    assert period(reports, "--seed", "5") == 0
    zpath = reports / "periods" / "2026-03-02_2026-03-22.zip"
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(tmp_path / "elsewhere")
    root = tmp_path / "elsewhere" / "2026-03-02_2026-03-22"
    pages = sorted(root.rglob("*.html"))
    assert [p.relative_to(root).as_posix() for p in pages] == [       # weeks/index.html: the weeks' own index
        "period.html", "weeks/2026-W10/report.html", "weeks/2026-W11/report.html", "weeks/2026-W12/report.html",
        "weeks/index.html"]
    followed = 0
    for page in pages:
        for link in re.findall(r'(?:href|src)="([^"]*)"', page.read_text()):
            if link.startswith(("https://", "#", "data:")):     # a web address, an anchor, data inside the page
                continue
            target = (page.parent / unquote(link.split("#")[0])).resolve()
            assert target.is_file() and target.is_relative_to(root), (page.name, link)
            followed += 1
    # the weeks that failed (W10, W11, W12 each fail a control) link their reports; each report its files
    assert followed >= 3 + 3 * 9
    # by hand: the sample is 10 of each, so all of them: 2 fixes (CVE-C in scan B's, CVE-H in scan C's
    # file), 1 exception (the api snapshot), no deploy; each cited file is inside with its sha256
    sample = json.loads((root / "sample.json").read_text())
    cites = json.loads((root / "sample_evidence.json").read_text())
    assert [(c["kind"], c["index"]) for c in cites] == [("remediations", 0), ("remediations", 1), ("exceptions", 0)]
    assert len(sample["remediations"]) == 2 and len(sample["exceptions"]) == 1 and sample["deploys"] == []
    for c in cites:
        assert hashlib.sha256((root / c["file"]).read_bytes()).hexdigest() == c["sha256"]
    assert {c["path"] for c in cites} == {r["source_file"] for r in sample["remediations"]} | {
        "exceptions/api/2026-03-02/.trivyignore"}
    html = (root / "period.html").read_text()
    assert all(f'href="{c["file"]}"' in html for c in cites)
    # sample.csv: what an auditor opens; each row's weekly report and input file open from the unzipped pack
    import csv
    rows = list(csv.DictReader((root / "sample.csv").open(encoding="utf-8")))
    assert [r["kind"] for r in rows] == ["remediation", "remediation", "exception"]
    assert sorted(r["item"].split(" in ")[0] + "@" + r["week"] for r in rows if r["kind"] == "remediation") == [
        "CVE-C@2026-W10", "CVE-H@2026-W11"]
    for r in rows:
        assert (root / r["weekly_report"]).is_file() and (root / r["input_file"]).is_file(), r
        assert hashlib.sha256((root / r["input_file"]).read_bytes()).hexdigest() == r["input_sha256"]
    (exc,) = [r for r in rows if r["kind"] == "exception"]
    # the snapshot's line 2 (line 1 is its comment), as written by the scenario
    assert (exc["input_file"], exc["line"], exc["line_text"]) == (
        "inputs/exceptions/api/2026-03-02/.trivyignore", "2", "CVE-X exp:2026-03-09")
    # dates as a reader writes them in the page; full precision stays in the CSVs
    assert "2026-03-09T00:00:00Z" not in html and "<td>2026-03-09</td>" in html and "2026-03-09T00:00:00Z" in exc["time"]
    assert not re.search(r">\s*(True|False)\s*<", html)


def _forge_w11(reports):
    """An insider writes a better SLA into W11's kpis.json (the HIGH fix of W11 'within' its SLA)."""
    k11 = reports / "2026-W11" / "kpis.json"
    k = json.loads(k11.read_text())
    assert k["sla"]["HIGH"]["closed_late"] == 1
    k["sla"]["HIGH"].update(closed_late=0, closed_within=1)
    k11.write_text(json.dumps(k, indent=2) + "\n")


def test_a_week_that_fails_verification_is_left_out_and_every_page_says_so(copied, capsys):
    _forge_w11(copied)
    capsys.readouterr()
    assert period(copied) == 1
    out, err = capsys.readouterr()
    assert "2026-W11 failed verification: output kpis.json was modified" in err
    folder = Path(json.loads(out)["folder"])
    figures = json.loads((folder / "figures.json").read_text())
    # no figure rests on W11: its HIGH fix (late or, forged, within) is not counted at all
    assert figures["sla"]["HIGH"] == {"closed_within": 0, "closed_late": 0}
    assert figures["period"]["weeks_left_out_unverified"] == ["2026-W11"] and figures["verdict"] != "COMPLIANT"
    assert not (folder / "weeks" / "2026-W11").exists()
    (iso91,) = [r for r in figures["controls"] if r["control"] == "ISO/IEC 27001 9.1"]
    assert [s for _, s in iso91["cells"]] == ["pass", "fail", "pass"]      # W11 did not reproduce (D25)
    stamp = "NOT VERIFIED: 1 week(s) failed verification and are left out of every figure (2026-W11)"
    _every_page_starts_with(folder, stamp)
    capsys.readouterr()
    assert main(["verify", "--pack", str(folder)]) == 1
    assert "the pack is not audit evidence: NOT VERIFIED" in capsys.readouterr().err

    # asked for explicitly: the forged week is used, and every page says the pack is not evidence
    assert period(copied, "--allow-unverified") == 0
    figures = json.loads((folder / "figures.json").read_text())
    assert figures["sla"]["HIGH"] == {"closed_within": 1, "closed_late": 0}
    _every_page_starts_with(folder, "UNVERIFIED PACK (--allow-unverified): built from 1 week(s) that failed "
                                    "verification (2026-W11)")
    capsys.readouterr()
    assert main(["verify", "--pack", str(folder.with_suffix(".zip"))]) == 1


def _every_page_starts_with(folder, stamp):
    html = (folder / "period.html").read_text()
    body = html[html.index("<body>") + len("<body>"):].lstrip()
    assert body.startswith(f'<div class="stamp" id="stamp">{stamp}')
    assert f'@top-center{{content:"{stamp}' in html          # on each printed page too
    assert (folder / "README.txt").read_text().startswith(f"*** {stamp}")
    assert (folder / "verification.txt").read_text().startswith(stamp)
    assert json.loads((folder / "manifest.json").read_text())["evidence_grade"] is False


def test_period_pins_the_weeks_key_and_signs_with_it(copied, tmp_path, capsys):
    from ifc_scan.report.signing import load_or_create
    other = load_or_create(tmp_path / "other" / "k.pem")
    capsys.readouterr()
    # pinned to another key, no week verifies: no pack at all
    assert period(copied, "--key", tmp_path / "other" / "k.pub.pem") == 2
    assert "no published week between 2026-03-02 and 2026-03-22" in capsys.readouterr().err
    assert not (copied / "periods").exists()
    # the pack is signed with the weeks' key only
    assert main(["period", "--reports", str(copied), "--from", "2026-W10", "--to", "2026-W12", "--signing-key",
                 str(other.path)]) == 2
    assert "is not the key that signed the weeks" in capsys.readouterr().err


def test_verify_pack_detects_an_edited_pack_even_re_signed(copied, tmp_path, capsys):
    import shutil

    from ifc_scan.report.signing import load_key
    assert period(copied) == 0
    folder = copied / "periods" / "2026-03-02_2026-03-22"
    pristine = tmp_path / "pristine"
    shutil.copytree(folder, pristine)

    def attack(edit, expected, where=folder):
        shutil.rmtree(folder)
        shutil.copytree(pristine, folder)
        edit()
        capsys.readouterr()
        assert main(["verify", "--pack", str(where)]) == 1, expected
        assert expected in capsys.readouterr().err, expected

    def edit_page():        # the verdict rewritten, its hash updated and the manifest signed again by an insider
        import hashlib
        page = folder / "period.html"
        page.write_text(page.read_text().replace("NOT COMPLIANT", "COMPLIANT"))
        m = json.loads((folder / "manifest.json").read_text())
        m["files"]["period.html"] = hashlib.sha256(page.read_bytes()).hexdigest()
        data = (json.dumps(m, indent=1, sort_keys=True) + "\n").encode()
        (folder / "manifest.json").write_bytes(data)
        (folder / "manifest.sig.json").write_bytes(load_key(key_of(copied)).sign(data))
    attack(edit_page, "period.html computed again from weeks/ differs from the pack's")
    attack(lambda: (folder / "remediations.csv").write_text("week\n"), "remediations.csv is missing or was modified")
    attack(lambda: (folder / "weeks" / "2026-W10" / "report.html").unlink(),
           "weeks/2026-W10/report.html is missing")

    def zip_slip():         # a member that leaves the pack's folder
        with zipfile.ZipFile(folder.with_suffix(".zip"), "a") as zf:
            zf.writestr("2026-03-02_2026-03-22/../../evil.txt", b"x")
    attack(zip_slip, "is outside the pack's one folder: refused", where=folder.with_suffix(".zip"))


def test_a_failed_or_killed_run_leaves_the_old_pack_or_none(copied, tmp_path, monkeypatch, capsys):
    """The pack is built in a temporary folder beside it and renamed: a run that fails writing (disk full)
    leaves the old pack; a run killed at each of its fault points leaves a whole pack or none."""
    import os
    import signal
    import subprocess
    import sys

    from ifc_scan.report import period as period_module
    from ifc_scan.report.period import verify_pack
    assert period(copied, "--seed", "1") == 0
    folder = copied / "periods" / "2026-03-02_2026-03-22"
    old = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    old_zip = folder.with_suffix(".zip").read_bytes()

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(period_module.zipfile.ZipFile, "writestr", disk_full)
    capsys.readouterr()
    assert period(copied, "--seed", "2") == 2
    assert "No space left on device" in capsys.readouterr().err
    assert {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == old
    assert folder.with_suffix(".zip").read_bytes() == old_zip
    assert [p.name for p in folder.parent.iterdir()] in (["2026-03-02_2026-03-22", "2026-03-02_2026-03-22.zip"],
                                                          ["2026-03-02_2026-03-22.zip", "2026-03-02_2026-03-22"])
    monkeypatch.undo()
    cmd = [sys.executable, "-m", "ifc_scan.cli", "period", "--reports", str(copied), "--from", "2026-W10", "--to",
           "2026-W12", "--signing-key", key_of(copied), "--no-verify"]
    count = tmp_path / "faults"
    subprocess.run(cmd + ["--seed", "3"], check=True, capture_output=True, env={**os.environ, "IFC_SCAN_FAULT_LOG": str(count)})
    points = int(count.read_text())
    assert points == 4
    for n in range(1, points + 1):
        r = subprocess.run(cmd + ["--seed", str(10 + n)], capture_output=True,
                           env={**os.environ, "IFC_SCAN_FAULT_AT": str(n)})
        assert r.returncode == -signal.SIGKILL, (n, r.stderr[-300:])
        for where in (folder, folder.with_suffix(".zip")):
            if where.exists():        # whole: every file its manifest lists, unchanged
                v = verify_pack(where)
                assert [c.name for c in v.checks if not c.ok] == ["status"], (n, where, v.problems)
        assert folder.exists() or n == 2, n       # only between the two renames is there no folder
    subprocess.run(cmd, check=True, capture_output=True)      # the next run clears what the killed ones left
    assert sorted(p.name for p in folder.parent.iterdir()) == ["2026-03-02_2026-03-22", "2026-03-02_2026-03-22.zip"]


# ---- a pack that stands alone (issue 30, point 6)

def test_weeks_that_failed_give_each_condition_once_with_its_value_against_its_target(reports):
    """W11 by hand: the one image was scanned on 03-10 only (1 of 7 image-days, 14.3 %; target 100 %), a
    condition that fails seven controls and is listed once; CVE-X (expiry 03-09) still listed; the HIGH fix
    took 03-02 02:00 -> 03-10 02:00 = 192 h = 8 d against its 168 h = 7 d SLA; the longest scan gap is
    03-02 22:00 -> 03-10 02:00 = 172 h = 7 d 4 h against the policy's 48 h = 2 d."""
    from ifc_scan.report.period import render_pack_pages
    pack = build_period(reports, date(2026, 3, 2), date(2026, 3, 22), seed=1)
    w11 = next(w for w in pack.figures["failing_weeks"] if w["week"] == "2026-W11")
    facts = {c["condition"]: (c["value"], c["target"], len(c["controls"])) for c in w11["conditions"]}
    assert facts == {
        "nightly coverage 100 %": ("14.3 % (1 of 7 image-days scanned)", ">= 100 %", 7),
        "exceptions valid (no invalid line, no expired entry still listed)": ("0 invalid, 1 expired still listed",
                                                                              "0 and 0", 1),
        "MTTR within the SLA for every severity with fixes": ("HIGH mean 192 h (8 d)", "HIGH <= 168 h (7 d)", 1),
        "no scan gap over the tolerance": ("1 image(s), longest gap 172 h (7 d 4 h)", "no gap over 48 h (2 d)", 1)}
    # W12: no scan at all (0 of 7 image-days); its open gap runs from 03-10 02:00 to T (03-23 00:00): 310 h
    w12 = next(w for w in pack.figures["failing_weeks"] if w["week"] == "2026-W12")
    values = {c["condition"]: c["value"] for c in w12["conditions"]}
    assert values["nightly coverage 100 %"] == "0 % (0 of 7 image-days scanned)"
    assert values["no scan gap over the tolerance"] == "1 image(s), longest gap 310 h (12 d 22 h)"
    html = render_pack_pages(pack, [], None, "2026-03-23T00:00:00Z", {})["period.html"].decode()
    failed = html[html.index('<section id="failed">'):html.index('<section id="sla">')]
    assert ('MTTR within the SLA for every severity with fixes: <b class="v">HIGH mean 192 h (8 d)</b> '
            '(target HIGH &lt;= 168 h (7 d))') in failed
    # once per failing week (3), and once in the list of conditions with the controls each makes fail
    assert failed.count("nightly coverage 100 %") == 4 and failed.count("SOC 2 CC6.6") == 1
    assert "no open finding overdue" not in failed                 # no rule that did not fail
    assert [(c["condition"], len(c["weeks"]), len(c["controls"])) for c in pack.figures["failing_conditions"]] == [
        ("exceptions valid (no invalid line, no expired entry still listed)", 3, 1),
        ("nightly coverage 100 %", 3, 7), ("no scan gap over the tolerance", 3, 1),
        ("MTTR within the SLA for every severity with fixes", 1, 1)]


def test_iso_27001_9_1_is_judged_from_the_packs_verification(reports):
    """Published, 9.1 is no data in every week (D14). The pack judges it (D25): pass for a week its
    verification recomputed and found equal, fail for one that failed, as published when it did not verify."""
    from ifc_scan.report.period_figures import REPRODUCED_CONDITION
    span = (reports, date(2026, 3, 2), date(2026, 3, 22))
    assert all(c["status"] == "no-data" for w in ("2026-W10", "2026-W11", "2026-W12")
               for c in json.loads((reports / w / "kpis.json").read_text())["controls"] if c["id"] == "9.1")

    def row(pack):
        return next(r for r in pack.figures["controls"] if r["control"] == "ISO/IEC 27001 9.1")
    every = build_period(*span, verification={"2026-W10": True, "2026-W11": True, "2026-W12": True})
    assert row(every)["cells"] == [("2026-W10", "pass"), ("2026-W11", "pass"), ("2026-W12", "pass")]
    assert row(every)["verdict"] == "pass"
    # W11 used although it failed (--allow-unverified): fail that week, and it is named among the failures
    used = build_period(*span, verification={"2026-W10": True, "2026-W11": False, "2026-W12": True})
    assert row(used)["cells"][1] == ("2026-W11", "fail") and row(used)["verdict"] == "fail"
    w11 = next(w for w in used.figures["failing_weeks"] if w["week"] == "2026-W11")
    assert (REPRODUCED_CONDITION, ["ISO/IEC 27001 9.1"]) in [(c["condition"], c["controls"]) for c in w11["conditions"]]
    # W11 left out: no figure rests on it, but the pack still states that it did not reproduce
    out = build_period(*span, left_out={"2026-W11": "modified"},
                       verification={"2026-W10": True, "2026-W11": False, "2026-W12": True})
    assert row(out)["cells"] == [("2026-W10", "pass"), ("2026-W11", "fail"), ("2026-W12", "pass")]
    other = next(r for r in out.figures["controls"] if r["control"] == "SOC 2 CC7.1")
    assert other["cells"][1] == ("2026-W11", "no data")
    # not verified (--no-verify): as published
    assert {s for _, s in row(build_period(*span))["cells"]} == {"no-data"}


def test_the_strips_are_equal_columns_with_symbols_readable_without_colour(reports):
    """Every week column has the same width, whatever its status; a period of one failing week gives it
    0.9 cm (not a third of an A4 landscape page); each cell carries its status as a symbol."""
    import re
    from ifc_scan.report.period import render_pack_pages
    seen = set()
    for start, weeks in ((date(2026, 3, 9), 1), (date(2026, 3, 2), 3)):
        pack = build_period(reports, start, date(2026, 3, 22) if weeks == 3 else date(2026, 3, 15),
                            verification={})
        html = render_pack_pages(pack, [], None, "2026-03-23T00:00:00Z", {})["period.html"].decode()
        widths = re.findall(r'<col style="width:([\d.]+)cm">', html)
        assert len(widths) == 2 * weeks and set(widths) == {"0.900"}
        assert f'style="width:calc(27em + {0.9 * weeks:.3f}cm)"' in html
        cells = re.findall(r'<td class="s s-(\w+)" title="[^"]*: ([^"]*)">(.)</td>', html)
        assert len(cells) == (len(pack.figures["controls"]) + len(pack.figures["targets"])) * weeks
        symbol = {"pass": "✓", "fail": "✗", "partial": "◐", "nodata": "–"}
        assert all(symbol[cls] == sym for cls, _status, sym in cells), cells
        seen |= {cls for cls, _, _ in cells}
    assert seen >= {"pass", "fail", "nodata"}         # each status met at least once over the two periods


def test_tables_show_dates_and_booleans_as_a_reader_writes_them():
    from ifc_scan.report.period import human_times, yesno
    assert human_times("renewed in 2026-W11: expiry 2026-03-12T00:00:00Z -> 2026-04-30T00:00:00Z") == \
        "renewed in 2026-W11: expiry 2026-03-12 -> 2026-04-30"
    assert human_times("2026-11-20T05:09:04.234148Z") == "2026-11-20 05:09 UTC"
    assert human_times("2026-11-20T00:00:30Z") == "2026-11-20 00:00 UTC"     # not midnight: the time stays
    assert human_times("2026-11-20T00:00:00+00:00") == "2026-11-20"
    assert [yesno(v) for v in ("True", "False", "", None, True)] == ["yes", "no", "–", "–", "yes"]


def test_time_left_is_the_mean_pace_of_the_weeks_done():
    from ifc_scan.report.period import elapsed_text, time_left
    # 2 of 5 weeks in 60 s: 30 s a week, 3 weeks left: 90 s
    assert time_left(2, 5, 60.0) == "about 1 min 30 s left"
    assert time_left(0, 5, 0.0) == "time left: estimating after the first week"
    assert (elapsed_text(45.4), elapsed_text(3725)) == ("45 s", "1 h 02 min")


def test_the_dagster_asset_logs_the_same_progress(copied):
    """Launched from Dagster, the pack's progress (week n of m, time left) goes to the run's log."""
    import dagster as dg

    from ifc_scan.defs.period import audit_period_pack, period_job
    from ifc_scan.defs.resources import IfcScanSettings, resources_for
    landing = json.loads((copied / "2026-W10" / "manifest.json").read_text())["landing_zone"]
    settings = IfcScanSettings(landing=landing, warehouse=str(copied.parent / "w.duckdb"), reports=str(copied),
                               signing_key=key_of(copied))
    instance = dg.DagsterInstance.ephemeral()
    d = dg.Definitions(assets=[audit_period_pack], jobs=[period_job], resources=resources_for(settings))
    result = d.resolve_job_def("period_job").execute_in_process(instance=instance, run_config={"ops": {
        "audit_period_pack": {"config": {"period_from": "2026-W10", "period_to": "2026-W12", "seed": 3}}}})
    assert result.success
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("period: verifying week 1 of 3 (2026-W10); time left: estimating after the first week" in m
               for m in logged)
    assert any(re.search(r"period: verifying week 2 of 3 \(2026-W11\); about .* left", m) for m in logged)
