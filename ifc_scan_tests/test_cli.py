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
    assert sorted(p.name for p in week.iterdir()) == ["attestation.dsse.json", "config_and_secrets.csv", "coverage.csv",
                                                      "deploys.csv", "exceptions.csv", "findings.csv", "kpis.json",
                                                      "manifest.json", "manifest.sig.json", "oscal", "report.html",
                                                      "tickets.csv"]
    assert (rep / "index.html").is_file()
    capsys.readouterr()
    assert main(["verify", "--reports", str(rep), "--week", "2026-W09", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verified"] is True and [c["name"] for c in doc["weeks"][0]["checks"]] == [
        "signature", "outputs", "attestation", "chain", "revision", "published", "inputs", "recomputed"]

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


def _resign(folder, m: dict, key=None):
    """Write the manifest `m` into the week's folder and, as an insider holding the signing key, sign it (and
    its attestation, ifc_scan/report/attestation.py) again and record it in the publication log, as a
    publication would."""
    from ifc_scan.report.attestation import envelope
    from ifc_scan.report.publications import PublicationLog
    from ifc_scan.report.signing import load_key
    data = (json.dumps(m, indent=1) + "\n").encode()
    (folder / "manifest.json").write_bytes(data)
    if key is not None:
        signer = load_key(key)
        (folder / "manifest.sig.json").write_bytes(signer.sign(data))
        files = {"manifest.json": data, **{n: (folder / n).read_bytes() for n in m["outputs"]}}
        (folder / "attestation.dsse.json").write_bytes(envelope(m, files, signer))
        PublicationLog(folder.parent, signer).record_week(folder.name, m["revision"], data)
    return data


def _rehash(folder, name, key=None):
    """What a careful forger does after editing an output: update its hash in the manifest and re-sign it."""
    import hashlib
    m = json.loads((folder / "manifest.json").read_text())
    m["outputs"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    return _resign(folder, m, key)


def test_verify_detects_tampering_that_rewrites_the_manifest(tmp_path, capsys, monkeypatch):
    import shutil
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    key = tmp_path / "keys" / "signing.pem"
    generate(land, weeks=4, seed=9, end=date(2026, 3, 9))
    args = ["--landing", str(land), "--warehouse", str(wh)]
    assert main(["ingest", *args]) == 0
    for week in ("2026-W08", "2026-W09", "2026-W10"):
        assert main(["report", *args, "--reports", str(rep), "--week", week, "--signing-key", str(key)]
                    + (["--new-key"] if week == "2026-W08" else [])) == 0
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
        _rehash(w09, "findings.csv", key)
    attack(edit_csv, "2026-W09", "recomputed findings.csv differs")

    def edit_kpis():          # "0 CRITICAL in production" written into kpis.json, manifest rehashed
        k = json.loads((w09 / "kpis.json").read_text())
        k["critical_in_prod"]["count"] += 1
        (w09 / "kpis.json").write_text(json.dumps(k, indent=2) + "\n")
        _rehash(w09, "kpis.json", key)
    attack(edit_kpis, "2026-W09", "recomputed kpis.json differs in: critical_in_prod")

    def edit_html():          # "0 CRITICAL" written into the page by an insider who re-signs
        (w09 / "report.html").write_text((w09 / "report.html").read_text().replace("CRITICAL", "LOW", 1))
        _rehash(w09, "report.html", key)
    attack(edit_html, "2026-W09", "report.html re-rendered from the recomputed figures differs")
    # ... and the edited week's manifest changed, so the next week's chain breaks too
    attack(edit_html, "2026-W10", "manifest chain broken")

    def other_renderer():     # the page edited and the manifest made to name another renderer, re-signed
        (w09 / "report.html").write_text((w09 / "report.html").read_text().replace("CRITICAL", "LOW", 1))
        _rehash(w09, "report.html", key)
        m = json.loads((w09 / "manifest.json").read_text())
        m["render"]["renderer"] = "0" * 64
        _resign(w09, m, key)
    attack(other_renderer, "2026-W09", "rendered by another release of ifc_scan")

    def swap_weeks():
        w09.rename(rep / "swap")
        (rep / "2026-W08").rename(w09)
        (rep / "swap").rename(rep / "2026-W08")
    attack(swap_weeks, "2026-W09", "holds another week's files")

    def outside_input():      # an input path that leaves the landing zone (re-signed by an insider)
        m = json.loads((rep / "2026-W08" / "manifest.json").read_text())
        m["inputs_added"][0]["path"] = "../../etc/passwd"
        _resign(rep / "2026-W08", m, key)
    attack(outside_input, "2026-W08", "outside the landing zone")


def test_verify_follows_revisions_and_detects_rollback_and_deletion(tmp_path, capsys):
    import shutil
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    generate(land, weeks=3, seed=9, end=date(2026, 3, 9))
    args = ["--landing", str(land), "--warehouse", str(wh)]
    main(["ingest", *args])
    for week in ("2026-W08", "2026-W09"):
        main(["report", *args, "--reports", str(rep), "--week", week])
    # a late snapshot revises W08 (and W09 along with it, or W09 keeps naming W08's first revision)
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


def test_revising_a_week_republishes_the_later_weeks_it_changes(tmp_path, capsys):
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    generate(land, weeks=4, seed=9, end=date(2026, 3, 9))
    args = ["--landing", str(land), "--warehouse", str(wh)]
    main(["ingest", *args])
    for week in ("2026-W08", "2026-W09", "2026-W10"):
        main(["report", *args, "--reports", str(rep), "--week", week])
    # a late snapshot dated Tue 2026-02-17 (W08) stays in force for W09 and W10 too: all three change
    snap = land / "exceptions" / "_global" / "2026-02-17"
    snap.mkdir(parents=True)
    (snap / ".trivyignore").write_text("CVE-2099-0001  # late, never matches\n")
    main(["ingest", *args])
    capsys.readouterr()
    assert main(["report", *args, "--reports", str(rep), "--week", "2026-W08"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [(o["week"], o["status"], o["revision"]) for o in out] == [
        ("2026-W08", "revised", 2), ("2026-W09", "revised", 2), ("2026-W10", "revised", 2)]
    for week in ("2026-W09", "2026-W10"):
        k = json.loads((rep / week / "kpis.json").read_text())
        assert k["exceptions"]["active"] >= 1 and k["exceptions"]["unmatched"] >= 1, week
    capsys.readouterr()
    assert main(["verify", "--reports", str(rep), "--all"]) == 0, capsys.readouterr().err


def test_signed_manifests_resist_a_rewritten_chain_and_record_key_rotation(tmp_path, capsys):
    from ifc_scan.report.signing import load_or_create
    land, wh, rep = tmp_path / "landing", tmp_path / "w.duckdb", tmp_path / "reports"
    key, other = tmp_path / "keys" / "k1.pem", tmp_path / "keys" / "k2.pem"
    generate(land, weeks=3, seed=9, end=date(2026, 3, 9))
    args = ["--landing", str(land), "--warehouse", str(wh)]
    main(["ingest", *args])
    # a configured key that does not exist is an error, never a silent new key
    assert main(["report", *args, "--reports", str(rep), "--week", "2026-W08", "--signing-key", str(key)]) == 2
    assert "does not exist" in capsys.readouterr().err and not key.exists() and not rep.exists()
    assert main(["report", *args, "--reports", str(rep), "--week", "2026-W08", "--signing-key", str(key),
                 "--new-key"]) == 0
    assert key.is_file() and oct(key.stat().st_mode & 0o777) == "0o600" and not str(key).startswith(str(rep))
    pub = str(key.with_suffix(".pub.pem"))
    fp = load_or_create(key).fingerprint
    html = (rep / "2026-W08" / "report.html").read_text()
    assert fp in html and f"--key {pub}" in html                     # the report prints the key and the command
    assert load_or_create(key).public_key_b64 in html
    capsys.readouterr()
    assert main(["verify", "--reports", str(rep), "--week", "2026-W08", "--key", pub]) == 0
    assert "pinned with --key" in capsys.readouterr().out

    # a forger edits kpis.json, rehashes it in the manifest and signs with a key of their own
    w08 = rep / "2026-W08"
    k = json.loads((w08 / "kpis.json").read_text())
    k["critical_in_prod"]["count"] = 0
    (w08 / "kpis.json").write_text(json.dumps(k, indent=2) + "\n")
    _rehash(w08, "kpis.json")
    forger = load_or_create(other)
    m = json.loads((w08 / "manifest.json").read_text())
    m["signing_key"] = forger.describe()
    data = (json.dumps(m, indent=1) + "\n").encode()
    (w08 / "manifest.json").write_bytes(data)
    (w08 / "manifest.sig.json").write_bytes(forger.sign(data))
    capsys.readouterr()
    assert main(["verify", "--reports", str(rep), "--week", "2026-W08", "--key", pub]) == 1
    assert "not the key given with --key" in capsys.readouterr().err
    # an edit without signing again
    (w08 / "manifest.json").write_bytes(data.replace(b'"revision": 1', b'"revision": 1 '))
    assert main(["verify", "--reports", str(rep), "--week", "2026-W08"]) == 1
    assert "signature does not match" in capsys.readouterr().err

    # the next week signed with a new key: the rotation is in the signed manifest, both keys verify it
    r2 = ["--reports", str(tmp_path / "r2")]
    assert main(["report", *args, *r2, "--week", "2026-W08", "--signing-key", str(key)]) == 0
    capsys.readouterr()
    # another key is refused unless the rotation is asked for
    assert main(["report", *args, *r2, "--week", "2026-W09", "--signing-key", str(other)]) == 2
    assert "pass --rotate-key" in capsys.readouterr().err and not (tmp_path / "r2" / "2026-W09").exists()
    assert main(["report", *args, *r2, "--week", "2026-W09", "--signing-key", str(other), "--rotate-key"]) == 0
    m9 = json.loads((tmp_path / "r2" / "2026-W09" / "manifest.json").read_text())
    assert m9["key_rotated_from"] == fp and m9["signing_key"]["fingerprint"] == forger.fingerprint
    capsys.readouterr()
    assert main(["verify", "--reports", str(tmp_path / "r2"), "--all", "--key", pub,
                 "--key", str(other.with_suffix(".pub.pem"))]) == 0, capsys.readouterr().err
    assert main(["verify", "--reports", str(tmp_path / "r2"), "--all", "--key", pub]) == 1     # W09 not by k1


def test_os_errors_and_a_missing_warehouse_are_one_line_messages(tmp_path, capsys):
    import os
    land = tmp_path / "landing"
    generate(land, weeks=1, seed=9, end=date(2026, 3, 9))
    # report with a mistyped warehouse: an error, not an empty warehouse publishing "0 CRITICAL"
    assert main(["report", "--landing", str(land), "--warehouse", str(tmp_path / "typo.duckdb"), "--reports",
                 str(tmp_path / "r"), "--all"]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "typo.duckdb").exists()
    # a reports folder that cannot be written (a file stands where the folder should be)
    wh = tmp_path / "w.duckdb"
    assert main(["ingest", "--landing", str(land), "--warehouse", str(wh)]) == 0
    (tmp_path / "blocked").write_text("not a folder")
    capsys.readouterr()
    rc = main(["report", "--landing", str(land), "--warehouse", str(wh), "--reports", str(tmp_path / "blocked"),
               "--week", "2026-W10"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) >= 1 and err[-1].startswith("ifc-scan report: ") and "Traceback" not in "".join(err)
    assert os.path.isfile(tmp_path / "blocked")
