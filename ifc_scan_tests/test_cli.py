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
    assert main(["verify", "--reports", str(rep), "--week", "2026-W09"]) == 0
    assert json.loads(capsys.readouterr().out)["verified"] is True

    # one byte changed in a published file is detected
    f = week / "findings.csv"
    data = bytearray(f.read_bytes())
    data[-2] = ord("x") if data[-2] != ord("x") else ord("y")
    f.write_bytes(bytes(data))
    assert main(["verify", "--reports", str(rep), "--week", "2026-W09"]) == 1
    assert "findings.csv was modified" in capsys.readouterr().err

    # an input changed after publication is detected too
    manifest = json.loads((week / "manifest.json").read_text())
    some_input = land / next(i["path"] for i in manifest["inputs"] if i["kind"] == "scan")
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
