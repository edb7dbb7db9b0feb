import json
from datetime import date

from ifc_scan.cli import main
from ifc_scan.demo.generator import generate


def test_ingest_report_verify_tamper_and_revise(tmp_path, capsys):
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    generate(land, weeks=3, seed=9, end=date(2026, 3, 9))
    assert main(["ingest", "--landing", str(land), "--warehouse", str(wh)]) == 0
    assert main(["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(rep), "--week", "2026-W09"]) == 0
    week = rep / "2026-W09"
    assert sorted(p.name for p in week.iterdir()) == ["config_and_secrets.csv", "coverage.csv", "deploys.csv",
                                                      "exceptions.csv", "findings.csv", "kpis.json", "manifest.json",
                                                      "report.html"]
    assert (rep / "index.html").is_file()
    capsys.readouterr()
    assert main(["verify", "--reports", str(rep), "--week", "2026-W09", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is True and [c["name"] for c in doc["weeks"][0]["checks"]] == [
        "outputs", "chain", "revision", "inputs", "recomputed"]

    # one byte changed in a published file is detected
    f = week / "findings.csv"
    data = bytearray(f.read_bytes())
    data[-2] = ord("x") if data[-2] != ord("x") else ord("y")
    f.write_bytes(bytes(data))
    assert main(["verify", "--reports", str(rep), "--week", "2026-W09"]) == 1
    assert "findings.csv was modified" in capsys.readouterr().err

    # an input changed after publication is detected too
    manifest = json.loads((week / "manifest.json").read_text())
    some_input = land / next(i["path"] for i in manifest["inputs_added"] if i["kind"] == "scan")
    some_input.write_text(some_input.read_text().replace('"Severity": "LOW"', '"Severity": "HIGH"', 1) + " ")
    assert main(["verify", "--reports", str(rep), "--week", "2026-W09"]) == 1
    assert "changed since the report" in capsys.readouterr().err


def test_a_changed_week_becomes_a_new_revision_and_keeps_the_old(tmp_path):
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    generate(land, weeks=3, seed=9, end=date(2026, 3, 9))
    args = ["--landing", str(land), "--warehouse", str(wh)]
    main(["ingest", *args])
    main(["report", *args, "--reports", str(rep), "--week", "2026-W09"])
    first = (rep / "2026-W09" / "manifest.json").read_bytes()
    main(["report", *args, "--reports", str(rep), "--week", "2026-W09"])           # same inputs: untouched
    assert (rep / "2026-W09" / "manifest.json").read_bytes() == first
    # a late exception snapshot changes the week's figures
    snap = land / "exceptions" / "_global" / "2026-02-24"
    snap.mkdir(parents=True)
    (snap / ".trivyignore").write_text("CVE-2099-0001  # late, never matches\n")
    main(["ingest", *args])
    main(["report", *args, "--reports", str(rep), "--week", "2026-W09"])
    new = json.loads((rep / "2026-W09" / "manifest.json").read_text())
    assert new["revision"] == 2 and new["supersedes"]["path"] == "revisions/2026-W09/r1"
    assert (rep / "revisions" / "2026-W09" / "r1" / "manifest.json").read_bytes() == first
    assert "1 earlier revision" in (rep / "2026-W09" / "report.html").read_text()
    assert not [p for p in rep.iterdir() if p.name.startswith(".")]                # no temp folder left

    # a writer killed between its two renames leaves the week absent, never half-written; the next run
    # continues the numbering from the archive
    import os
    os.rename(rep / "2026-W09", rep / "revisions" / "2026-W09" / "r2")
    (snap / ".trivyignore").write_text("CVE-2099-0002  # later still\n")
    main(["ingest", *args])
    main(["report", *args, "--reports", str(rep), "--week", "2026-W09"])
    third = json.loads((rep / "2026-W09" / "manifest.json").read_text())
    assert third["revision"] == 3 and third["supersedes"]["path"] == "revisions/2026-W09/r2"


def test_kpis_json_is_identical_across_processes_and_hash_seeds(tmp_path):
    import os
    import subprocess
    import sys
    land = tmp_path / "landing"
    generate(land, weeks=6, seed=5, end=date(2026, 3, 9))
    outs = []
    for hash_seed in ("1", "2"):
        wh, rep = tmp_path / f"w{hash_seed}.duckdb", tmp_path / f"r{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        for cmd in (["ingest", "--landing", str(land), "--warehouse", str(wh)],
                    ["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(rep), "--week", "2026-W09"]):
            subprocess.run([sys.executable, "-m", "ifc_scan.cli", *cmd], check=True, capture_output=True, env=env)
        outs.append((rep / "2026-W09" / "kpis.json").read_bytes())
    assert outs[0] == outs[1]


def _rehash(folder, name):
    """What a careful forger does after editing an output: update its hash in the manifest."""
    import hashlib
    m = json.loads((folder / "manifest.json").read_text())
    m["outputs"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(m, indent=1) + "\n")


def test_verify_detects_tampering_that_rewrites_the_manifest(tmp_path, capsys, monkeypatch):
    import shutil
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    generate(land, weeks=4, seed=9, end=date(2026, 3, 9))
    args = ["--landing", str(land), "--warehouse", str(wh)]
    assert main(["ingest", *args]) == 0
    for week in ("2026-W08", "2026-W09", "2026-W10"):
        assert main(["report", *args, "--reports", str(rep), "--week", week]) == 0
    pristine = tmp_path / "pristine"
    shutil.copytree(rep, pristine)
    # untouched weeks verify, also from another working directory with the reports folder given relatively
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["verify", "--reports", "reports", "--all"]) == 0
    assert "3/3 weeks verified" in capsys.readouterr().out

    def attack(fn, week, expected):
        shutil.rmtree(rep)
        shutil.copytree(pristine, rep)
        fn()
        capsys.readouterr()
        assert main(["verify", "--reports", str(rep), "--week", week]) == 1, expected
        assert expected in capsys.readouterr().err, expected

    w09 = rep / "2026-W09"

    def edit_csv():           # a finding row deleted, the manifest's hash of the CSV updated
        lines = (w09 / "findings.csv").read_text().splitlines(keepends=True)
        (w09 / "findings.csv").write_text("".join(lines[:1] + lines[2:]))
        _rehash(w09, "findings.csv")
    attack(edit_csv, "2026-W09", "recomputed findings.csv differs")

    def edit_kpis():          # "0 CRITICAL in production" written into kpis.json, manifest rehashed
        k = json.loads((w09 / "kpis.json").read_text())
        k["critical_in_prod"]["count"] += 1
        (w09 / "kpis.json").write_text(json.dumps(k, indent=2) + "\n")
        _rehash(w09, "kpis.json")
    attack(edit_kpis, "2026-W09", "recomputed kpis.json differs in: critical_in_prod")

    def edit_html_then_check_next_week():   # the edited week's manifest changes, so the next week's chain breaks
        (w09 / "report.html").write_text((w09 / "report.html").read_text().replace("CRITICAL", "LOW", 1))
        _rehash(w09, "report.html")
    attack(edit_html_then_check_next_week, "2026-W10", "manifest chain broken")

    def swap_weeks():
        w09.rename(rep / "swap")
        (rep / "2026-W08").rename(w09)
        (rep / "swap").rename(rep / "2026-W08")
    attack(swap_weeks, "2026-W09", "holds another week's files")

    def outside_input():      # an input path that leaves the landing zone, with a consistent chain hash
        m = json.loads((rep / "2026-W08" / "manifest.json").read_text())
        m["inputs_added"][0]["path"] = "../../etc/passwd"
        (rep / "2026-W08" / "manifest.json").write_text(json.dumps(m, indent=1) + "\n")
    attack(outside_input, "2026-W08", "outside the landing zone")


def test_verify_follows_revisions_and_detects_rollback_and_deletion(tmp_path, capsys):
    import shutil
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    generate(land, weeks=3, seed=9, end=date(2026, 3, 9))
    args = ["--landing", str(land), "--warehouse", str(wh)]
    main(["ingest", *args])
    for week in ("2026-W08", "2026-W09"):
        main(["report", *args, "--reports", str(rep), "--week", week])
    # a late snapshot revises W08; W09's manifest still names W08's first revision, now in revisions/
    snap = land / "exceptions" / "_global" / "2026-02-17"
    snap.mkdir(parents=True)
    (snap / ".trivyignore").write_text("CVE-2099-0001  # late, never matches\n")
    main(["ingest", *args])
    main(["report", *args, "--reports", str(rep), "--week", "2026-W08"])
    assert json.loads((rep / "2026-W08" / "manifest.json").read_text())["revision"] == 2
    capsys.readouterr()
    assert main(["verify", "--reports", str(rep), "--all"]) == 0, capsys.readouterr().err
    saved = tmp_path / "saved"
    shutil.copytree(rep, saved)
    # rollback: the old revision put back in place of the current one
    shutil.rmtree(rep / "2026-W08")
    (rep / "revisions" / "2026-W08" / "r1").rename(rep / "2026-W08")
    shutil.copytree(saved / "2026-W08", rep / "revisions" / "2026-W08" / "r2")
    capsys.readouterr()
    assert main(["verify", "--reports", str(rep), "--week", "2026-W08"]) == 1
    assert "rolled back" in capsys.readouterr().err
    # deletion of the superseded revision
    shutil.rmtree(rep)
    shutil.copytree(saved, rep)
    shutil.rmtree(rep / "revisions" / "2026-W08" / "r1")
    capsys.readouterr()
    assert main(["verify", "--reports", str(rep), "--week", "2026-W08"]) == 1
    assert "superseded revision r1" in capsys.readouterr().err
