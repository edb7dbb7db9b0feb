import json
import os
from datetime import datetime

import duckdb
import pytest

from ifc_scan.ingest.exceptions import FileRejected, parse_exception_file
from ifc_scan.ingest.model import Rejected
from ifc_scan.ingest.runner import ingest
from ifc_scan.ingest.scan_files import read_scan_bytes
from ifc_scan.lineage import lineage_of
from ifc_scan.timeutil import parse_ts


def count_vuln_entries(doc) -> int:
    """Entries in the file's vulnerability lists, counted independently of the reader."""
    if isinstance(doc, dict):
        n = 0
        for k, v in doc.items():
            if k in ("Vulnerabilities", "vulnerabilities") and isinstance(v, list):
                # a trivy k8s report lists resources (with Results) under Vulnerabilities: recurse into those
                n += sum(count_vuln_entries(x) if isinstance(x, dict) and "Results" in x else 1 for x in v)
            else:
                n += count_vuln_entries(v)
        return n
    if isinstance(doc, list):
        return sum(count_vuln_entries(x) for x in doc)
    return 0


@pytest.mark.corpus
def test_every_real_trivy_report_is_ingested_with_all_rows_or_rejected(corpus):
    files = sorted(p for d in ("trivy-json", "defectdojo-trivy", "trivy-sarif") for p in (corpus / d).iterdir())
    assert len(files) > 100
    ingested = rejected = 0
    for p in files:
        try:
            scans = read_scan_bytes(p.read_bytes())
        except Rejected as exc:
            rejected += 1
            assert str(exc), p
            continue
        ingested += 1
        rows = sum(1 for s in scans for v in s.vulnerabilities if not v[17])
        doc = json.loads(p.read_text())
        if p.suffix == ".sarif":
            expected = sum(1 for run in doc["runs"] for r in run["results"]
                           if "Vulnerab" in str(run["tool"]["driver"]["rules"][r.get("ruleIndex", 0)].get("name", ""))
                           or "Package" in str(run["tool"]["driver"]["rules"][r.get("ruleIndex", 0)].get("name", "")))
        else:
            expected = count_vuln_entries(doc)
        assert rows == expected, p.name
    assert ingested >= 120 and rejected <= 5


@pytest.mark.corpus
def test_real_ignore_files_follow_trivy(corpus):
    d = corpus / "trivyignore"
    _, n3dr = parse_exception_file(".trivyignore", (d / "real__030-n3dr.trivyignore").read_text())
    assert [(e.line_no, e.vuln_id, e.expiry) for e in n3dr] == [
        (2, "CVE-2019-14697", datetime(2024, 1, 1)), (3, "CVE-2019-14697", datetime(2023, 1, 1))]
    _, altinn = parse_exception_file("x.yaml", (d / "real__Altinn-altinn-events.trivyignore.yaml").read_text())
    assert altinn[0].valid and altinn[0].expiry is None        # `expires:` is unknown to Trivy: never expires
    _, quoted = parse_exception_file("x.yaml", (d / "real__1121citrus-mdless.trivyignore.yaml").read_text())
    assert quoted[0].expiry == datetime(2026, 6, 17)            # quoted RFC 3339 works
    _, idless = parse_exception_file("x.yaml", (d / "trivy-pr10613__trivyignore-id-optional.yaml").read_text())
    assert [e.valid for e in idless][:3] == [False, False, True]
    for p in sorted(d.iterdir()):
        try:
            parse_exception_file(p.name, p.read_text(encoding="utf-8-sig"))
        except FileRejected:
            pass


def test_quoted_date_only_yaml_is_refused_like_trivy():
    with pytest.raises(FileRejected) as ei:
        parse_exception_file(".trivyignore.yaml", 'vulnerabilities:\n  - id: CVE-1\n    expired_at: "2099-06-17"\n')
    assert not ei.value.entries[0].valid and "FATAL" in str(ei.value)


def test_plain_trivyignore_reasons_and_invalid_dates():
    _, es = parse_exception_file(".trivyignore", "# Reason A, Expiry: 2026-01-31\nCVE-1\n\nCVE-2 exp:2026-1-1\nCVE-3  # inline why\n")
    assert [(e.vuln_id, e.valid, e.reason) for e in es] == [("CVE-1", True, "Reason A"), ("CVE-2", False, None),
                                                             ("CVE-3", True, "inline why")]
    assert es[0].expiry is None and es[0].declared_expiry == datetime(2026, 1, 31)


def test_timestamps_and_lineages():
    assert parse_ts("2021-08-25T12:20:30.000000005Z") == datetime(2021, 8, 25, 12, 20, 30)
    assert parse_ts("2024-01-02T23:40:12.036390+06:00") == datetime(2024, 1, 2, 17, 40, 12, 36390)
    assert parse_ts("0001-01-01T00:00:00Z") is None
    assert lineage_of("nginx:1.25") == "docker.io/library/nginx"
    assert lineage_of("GHCR.io/Acme/API:1@sha256:" + "a" * 64) == "ghcr.io/acme/api"


def test_bad_inputs_are_rejected_with_reasons_and_the_rest_is_ingested(tmp_path):
    t = tmp_path / "landing" / "trivy"
    t.mkdir(parents=True)
    good = {"SchemaVersion": 2, "CreatedAt": "2026-03-02T02:00:00Z", "ArtifactName": "ghcr.io/a/b:1",
            "ArtifactType": "container_image", "Metadata": {"ImageID": "sha256:" + "1" * 64, "RepoTags": ["ghcr.io/a/b:1"]},
            "Results": [{"Target": "x", "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "p", "Severity": "HIGH"}]}]}
    (t / "good.json").write_text(json.dumps(good))
    (t / "copy-of-good.json").write_text(json.dumps(good))
    (t / "truncated.json").write_text(json.dumps(good)[:50])
    (t / "empty.json").write_bytes(b"")
    (t / "latin1.json").write_bytes(b'{"SchemaVersion": 2, "ArtifactName": "caf\xe9"}')
    (t / "future.json").write_text(json.dumps({**good, "CreatedAt": "2099-01-01T00:00:00Z"}))
    (t / "ancient.json").write_text(json.dumps({**good, "CreatedAt": "1999-12-31T00:00:00Z"}))
    (t / "deep.json").write_text("[" * 100000 + "]" * 100000)
    (t / "sbom.json").write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5"}))
    (t / "utf16.json").write_bytes(json.dumps(good).encode("utf-16"))
    wh = tmp_path / "w.duckdb"
    s = ingest(tmp_path / "landing", wh, progress=lambda m: None)
    reasons = dict(s.rejections)
    assert s.ingested == 2 and s.duplicates == 1      # good.json and the UTF-16 copy; copy-of-good is a duplicate
    assert "truncated" in reasons["trivy/truncated.json"] or "broken JSON" in reasons["trivy/truncated.json"]
    assert "empty" in reasons["trivy/empty.json"]
    assert "UTF-8" in reasons["trivy/latin1.json"]
    assert "future" in reasons["trivy/future.json"] and "before 2000" in reasons["trivy/ancient.json"]
    assert "nested too deeply" in reasons["trivy/deep.json"]
    assert "CycloneDX" in reasons["trivy/sbom.json"]
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("select count(*) from ingest_errors").fetchone()[0] == 7
    assert con.execute("select count(*) from scan_vulnerabilities").fetchone()[0] == 2   # good.json + its UTF-16 form
    con.close()
    again = ingest(tmp_path / "landing", wh, progress=lambda m: None)     # idempotent
    assert again.new_files == 0 and again.ingested == 0


def test_demo_landing_zone_ingests_with_ci_events(tmp_path):
    from ifc_scan.demo.generator import generate
    stats = generate(tmp_path / "landing", weeks=6, seed=3)
    s = ingest(tmp_path / "landing", tmp_path / "w.duckdb", progress=lambda m: None)
    assert s.rejected == 0 and s.ingested == s.files_seen
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    kinds = dict(con.execute("select kind, count(*) from ci_events group by 1").fetchall())
    # one production deploy event (and one verify) per production deploy the generator made
    assert kinds["deploy"] >= stats["deploys"] and kinds.get("verify") == stats["deploys"]
    assert kinds["build"] == 2 * stats["builds"] - con.execute(
        "select count(*) from ci_runs where conclusion='failure'").fetchone()[0]
    assert con.execute("select count(*) from ci_events where kind='build' and image_id is null").fetchone()[0] == 0


def test_demo_is_deterministic_for_a_seed_whatever_the_hash_seed(tmp_path):
    import hashlib
    import subprocess
    import sys
    digests = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"demo-{hash_seed}"
        subprocess.run([sys.executable, "-m", "ifc_scan.cli", "demo", "--out", str(out), "--weeks", "8", "--seed", "3"],
                       check=True, capture_output=True, env={**__import__("os").environ, "PYTHONHASHSEED": hash_seed})
        h = hashlib.sha256()
        for p in sorted(out.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(out).as_posix().encode() + b"\0" + p.read_bytes())
        digests.append(h.hexdigest())
    assert digests[0] == digests[1]


def _both_readers(data: bytes):
    import io

    from ifc_scan.ingest.trivy_json_stream import read_trivy_json_stream
    whole = read_scan_bytes(data)
    streamed = read_trivy_json_stream(io.BytesIO(data))
    return whole, streamed


def _same(whole, streamed):
    assert len(whole) == len(streamed) == 1
    a, b = whole[0], streamed[0]
    for field in ("vulnerabilities", "misconfigurations", "secrets", "licenses"):
        assert getattr(a, field) == getattr(b, field), field
    for field in ("lineage", "image_id", "repo_digests", "repo_tags", "created_at", "artifact_name", "artifact_type",
                  "trivy_version", "image_created", "os_family", "lists_suppressed"):
        assert getattr(a, field) == getattr(b, field), field


@pytest.mark.corpus
def test_streaming_reader_equals_whole_file_reader_on_real_reports(corpus):
    n = 0
    for p in sorted((corpus / "trivy-json").glob("*.json")) + sorted((corpus / "defectdojo-trivy").glob("*.json")):
        doc = json.loads(p.read_text())
        if isinstance(doc, dict) and doc.get("SchemaVersion") == 2:
            _same(*_both_readers(p.read_bytes()))
            n += 1
    assert n > 60


def test_streaming_reader_equals_whole_file_reader_on_all_lists():
    v = {"VulnerabilityID": "CVE-1", "PkgName": "p", "Severity": "HIGH", "PublishedDate": "2024-01-01T00:00:00Z",
         "CVSS": {"ghsa": {"V3Score": 7.5}}, "PkgIdentifier": {"PURL": "pkg:npm/p@1"}}
    doc = {"SchemaVersion": 2, "CreatedAt": "2026-03-02T02:00:00.123456789+01:00", "ArtifactName": "nginx:1",
           "ArtifactType": "container_image", "Metadata": {"ImageID": "sha256:" + "a" * 64, "RepoTags": ["nginx:1"]},
           "Results": [
               {"Vulnerabilities": [v], "Target": "late-context (debian 12)", "Class": "os-pkgs", "Type": "debian"},
               {"Target": "Dockerfile", "Class": "config", "Misconfigurations": [{"ID": "DS002", "Type": "Dockerfile Security Check",
                "Severity": "HIGH", "CauseMetadata": {"StartLine": 3}}]},
               {"Target": "app/.env", "Class": "secret", "Secrets": [{"RuleID": "aws-key", "Severity": "CRITICAL"}]},
               {"Target": "OS Packages", "Class": "license", "Licenses": [{"Name": "GPL-2.0", "Confidence": 1}]},
               {"Target": "x", "Class": "lang-pkgs", "Type": "npm", "ExperimentalModifiedFindings": [
                   {"Type": "vulnerability", "Status": "not_affected", "Statement": "vex", "Source": "a.vex", "Finding": v}]}]}
    whole, streamed = _both_readers(json.dumps(doc).encode())
    _same(whole, streamed)
    assert streamed[0].vulnerabilities[0][0] == "late-context (debian 12)"    # context given after the list
    assert streamed[0].lists_suppressed and streamed[0].vulnerabilities[1][17] is True


def test_broken_large_report_is_rejected_by_the_streaming_reader():
    import io

    from ifc_scan.ingest.trivy_json_stream import read_trivy_json_stream
    with pytest.raises(Rejected, match="broken JSON"):
        read_trivy_json_stream(io.BytesIO(b'{"SchemaVersion": 2, "Results": [{"Target": "x", "Vulnerabilities": [{"Vul'))


def test_deep_nesting_in_an_unused_key_is_rejected_by_the_streaming_reader_at_once():
    """ijson's prefix grows with the depth, so a deeply nested unused key once cost O(depth^2)
    (23 GB for a 34 MB file): the stream is refused at 65 levels, after reading only that far."""
    import io
    import time

    from ifc_scan.ingest.trivy_json_stream import MAX_NESTING, read_trivy_json_stream
    depth = 2_000_000
    doc = b'{"SchemaVersion": 2, "Junk": ' + b"[" * depth + b"]" * depth + b', "Results": []}'
    started = time.perf_counter()
    with pytest.raises(Rejected, match=f"nested more than {MAX_NESTING} levels"):
        read_trivy_json_stream(io.BytesIO(doc))
    assert time.perf_counter() - started < 5       # generous on a loaded machine: it reads ~65 levels, not 2 M
    # 63 levels of an unused key are a report like any other
    ok = b'{"SchemaVersion": 2, "Junk": ' + b"[" * 62 + b"]" * 62 + b', "Results": []}'
    assert read_trivy_json_stream(io.BytesIO(ok))[0].schema_version == 2


def trivy_plain_rules(text: str):
    """An independent rendering of Trivy's pkg/result/ignore.go for plain files (NOTES.md §2):
    trim; skip empty and '#' lines; ID = first field; any field starting 'exp:' must parse as
    2006-01-02, else the whole line is dropped."""
    from datetime import datetime as dt
    kept = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        exp, ok = None, True
        for f in fields[1:]:
            if f.startswith("exp:"):
                try:
                    if len(f[4:]) != 10:
                        raise ValueError
                    exp = dt.strptime(f[4:], "%Y-%m-%d")
                except ValueError:
                    ok = False
        kept.append((fields[0], exp, ok))
    return kept


@pytest.mark.corpus
def test_every_real_plain_trivyignore_parses_as_trivy_would(corpus):
    files = [p for p in sorted((corpus / "trivyignore").iterdir())
             if not p.name.endswith((".yaml", ".yml", ".json"))]
    assert len(files) >= 10
    for p in files:
        text = p.read_text(encoding="utf-8-sig")
        _, entries = parse_exception_file(p.name, text)
        assert [(e.vuln_id, e.expiry, e.valid) for e in entries] == \
            [(i, (e if ok else None), ok) for i, e, ok in trivy_plain_rules(text)], p.name


def test_the_same_report_re_uploaded_with_a_new_mtime_adds_nothing(tmp_path):
    t = tmp_path / "landing" / "trivy"
    t.mkdir(parents=True)
    p = t / "r.json"
    p.write_text(json.dumps({"SchemaVersion": 2, "ArtifactName": "ghcr.io/a/b:1", "ArtifactType": "container_image",
                             "Metadata": {"ImageID": "sha256:" + "3" * 64}, "Results": []}))
    wh = tmp_path / "w.duckdb"
    assert ingest(tmp_path / "landing", wh, progress=lambda m: None).ingested == 1
    import os
    os.utime(p, (1_800_000_000, 1_800_000_000))          # re-uploaded: same bytes, new mtime
    again = ingest(tmp_path / "landing", wh, progress=lambda m: None)
    assert again.new_files == 0 and again.ingested == 0


def test_fifo_and_symlinked_folder_are_refused_without_stopping_the_batch(tmp_path):
    """A FIFO in the landing zone used to block ingest forever (it was opened to be hashed); a symlinked
    folder used to vanish without a row. Both are refused with a reason and the good file is ingested."""
    import os
    import threading

    import duckdb

    from ifc_scan.ingest.runner import ingest
    land = tmp_path / "landing"
    (land / "trivy").mkdir(parents=True)
    good = {"SchemaVersion": 2, "ArtifactName": "ghcr.io/acme/api:1", "ArtifactType": "container_image",
            "CreatedAt": "2026-03-02T02:00:00Z", "Metadata": {"ImageID": "sha256:" + "a" * 64}, "Results": []}
    (land / "trivy" / "good.json").write_text(json.dumps(good))
    os.mkfifo(land / "trivy" / "pipe.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.json").write_text(json.dumps(good))
    os.symlink(elsewhere, land / "trivy" / "linked")
    result = {}
    t = threading.Thread(target=lambda: result.update(s=ingest(land, tmp_path / "w.duckdb", progress=lambda m: None)),
                         daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "ingest blocked on the FIFO"
    s = result["s"]
    assert s.ingested == 1 and s.rejected == 2
    reasons = dict(duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True).execute(
        "SELECT path, reason FROM ingest_errors").fetchall())
    assert "not a regular file" in reasons["trivy/pipe.json"]
    assert "symbolic link" in reasons["trivy/linked"]


def test_a_run_that_cannot_be_stored_is_rejected_alone(tmp_path):
    """Two run folders claiming one run id (a primary-key violation at insert) and a run id over 2^63
    (not a BIGINT) used to abort the whole ingest, on every later ingest too. Now each is rejected with
    its reason (the id's range by the run.json model, the duplicate by one run, one folder) and the
    rest is stored."""
    import duckdb

    from ifc_scan.ingest.runner import ingest
    land = tmp_path / "landing"

    def run(folder, run_id):
        d = land / "ci" / "github-actions" / folder
        (d / "logs" / "build").mkdir(parents=True)
        (d / "run.json").write_text(json.dumps({"id": run_id, "name": "ci", "status": "completed",
                                                "conclusion": "success", "created_at": "2026-03-02T10:00:00Z"}))
        (d / "logs" / "build" / "1_Build.txt").write_text("2026-03-02T10:00:00.0000000Z hello\n")
    run("100", 100)
    run("100-copy", 100)                 # the same run id again
    run("200", 2**64)                    # does not fit a BIGINT
    (land / "trivy").mkdir()
    (land / "trivy" / "good.json").write_text(json.dumps({
        "SchemaVersion": 2, "ArtifactName": "ghcr.io/acme/api:1", "ArtifactType": "container_image",
        "CreatedAt": "2026-03-02T02:00:00Z", "Metadata": {"ImageID": "sha256:" + "a" * 64}, "Results": []}))
    s = ingest(land, tmp_path / "w.duckdb", progress=lambda m: None)
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM scans").fetchone()[0] == 1
    assert con.execute("SELECT list(run_id) FROM ci_runs").fetchone()[0] == [100]
    stored = dict(con.execute("SELECT path, reason FROM ingest_errors").fetchall())
    assert any(p.startswith("ci/github-actions/200/") and "field id" in r and "outside 0..2^63-1" in r
               for p, r in stored.items())
    assert any(p.startswith("ci/github-actions/100-copy/") for p in stored)
    con.close()
    again = ingest(land, tmp_path / "w.duckdb", progress=lambda m: None)     # no poison pill
    assert again.new_files == 0 and s.ingested >= 3


def test_a_file_that_could_not_be_read_is_read_again_on_the_next_ingest(tmp_path, monkeypatch):
    """A read failure is the machine's (moved, unmounted, I/O error), not the file's: unlike a rejection,
    it is retried, and once read the file counts once, with no error left behind."""
    import ifc_scan.ingest.scan_files as scan_files
    land = tmp_path / "landing"
    rep = land / "trivy" / "registry" / "api.json"
    rep.parent.mkdir(parents=True)
    rep.write_text(json.dumps({"SchemaVersion": 2, "ArtifactName": "ghcr.io/acme/api:1", "ArtifactType": "container_image",
                               "CreatedAt": "2026-03-02T10:00:00Z", "Metadata": {"ImageID": "sha256:" + "a" * 64},
                               "Results": []}))
    real = scan_files.read_scan_file_hashed

    def failing(path, size, *a, **kw):
        raise OSError(5, "Input/output error", str(path))

    monkeypatch.setattr(scan_files, "read_scan_file_hashed", failing)
    wh = tmp_path / "w.duckdb"
    first = ingest(land, wh, progress=lambda m: None)
    assert first.rejected == 1 and "read again on the next ingest" in first.rejections[0][1]
    monkeypatch.setattr(scan_files, "read_scan_file_hashed", real)
    second = ingest(land, wh, progress=lambda m: None)
    assert (second.new_files, second.ingested, second.rejected) == (1, 1, 0)
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("SELECT status FROM source_files WHERE path = 'trivy/registry/api.json'").fetchall() == [("ingested",)]
    assert con.execute("SELECT count(*) FROM ingest_errors").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM scans").fetchone()[0] == 1
    con.close()
    # nothing changed since: the third ingest reads nothing
    assert ingest(land, wh, progress=lambda m: None).new_files == 0


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + "vulnerabilities: *i\n"


def test_yaml_alias_bombs_are_refused_before_they_expand(tmp_path):
    """9^9 = 387 M list items from 700 bytes (73 aliases): every YAML reader refuses it unexpanded, naming
    the reason."""
    import time

    from ifc_scan.ingest.inventory import parse_inventory
    from ifc_scan.policy import load_policy
    started = time.perf_counter()
    with pytest.raises(FileRejected, match="aliases"):
        parse_exception_file(".trivyignore.yaml", ALIAS_BOMB)
    with pytest.raises(Rejected, match="aliases"):
        parse_inventory(ALIAS_BOMB.replace("vulnerabilities", "deployable"))
    p = tmp_path / "policy.yaml"
    p.write_text(ALIAS_BOMB.replace("vulnerabilities", "sla_hours"))
    with pytest.raises(ValueError, match="aliases"):
        load_policy(p)
    assert time.perf_counter() - started < 5
    # a few aliases, as a person might write, are fine
    ok = "base: &b {lineage: ghcr.io/acme/api}\ndeployable:\n  - *b\n"
    assert parse_inventory(ok)[0] == [("api", "ghcr.io/acme/api")]


@pytest.mark.parametrize("streamed", [False, True])
def test_a_report_rewritten_while_ingest_reads_it_is_stored_only_as_the_bytes_hashed(tmp_path, monkeypatch, streamed):
    """A new report is read once: its sha256 is taken from the bytes its rows come from. A report already
    loaded whose size or mtime changed is hashed first (is it new?); rewritten by a writer between that
    hash and the parse, its rows would belong to other bytes than its sha256: it is recorded unreadable
    and read again next time, then stored once, as it is."""
    import ifc_scan.ingest.runner as runner
    import ifc_scan.ingest.scan_files as scan_files
    if streamed:
        monkeypatch.setattr(scan_files, "STREAM_BYTES", 0)
    land = tmp_path / "landing"
    rep = land / "trivy" / "registry" / "api.json"
    rep.parent.mkdir(parents=True)

    def doc(vid):
        return json.dumps({"SchemaVersion": 2, "ArtifactName": "ghcr.io/acme/api:1", "ArtifactType": "container_image",
                           "CreatedAt": "2026-03-02T10:00:00Z", "Metadata": {"ImageID": "sha256:" + "a" * 64},
                           "Results": [{"Target": "t", "Class": "os-pkgs", "Vulnerabilities": [
                               {"VulnerabilityID": vid, "PkgName": "p", "Severity": "HIGH"}]}]})

    real_hash = runner.sha256_file
    hashed = []

    def hash_then_rewrite(path):
        hashed.append(path)
        h = real_hash(path)
        if path == rep:
            rep.write_text(doc("CVE-NEW-LONGER"))     # the writer finishes after the hash was taken
        return h

    monkeypatch.setattr(runner, "sha256_file", hash_then_rewrite)
    rep.write_text(doc("CVE-FIRST"))
    wh = tmp_path / "w.duckdb"
    assert ingest(land, wh, progress=lambda m: None).ingested == 1
    assert hashed == []                  # a new path: hashed while parsed, not read a second time
    rep.write_text(doc("CVE-OLD"))       # another size: the path is known, its bytes may be new
    first = ingest(land, wh, progress=lambda m: None)
    assert hashed == [rep]
    assert first.rejected == 1 and "changed while it was being read" in first.rejections[0][1]
    monkeypatch.setattr(runner, "sha256_file", real_hash)
    second = ingest(land, wh, progress=lambda m: None)
    assert second.ingested == 1
    con = duckdb.connect(str(wh), read_only=True)
    sha = real_hash(rep)
    assert con.execute("SELECT DISTINCT vulnerability_id FROM scan_vulnerabilities ORDER BY 1").fetchall() == [
        ("CVE-FIRST",), ("CVE-NEW-LONGER",)]
    assert con.execute("SELECT status FROM source_files WHERE sha256 = ?", (sha,)).fetchall() == [("ingested",)]
    con.close()


# Unicode digits Python's int(), re's \d and strptime read as 0-9, though no scanner, runner or export writes them
OTHER_DIGITS = {"arabic-indic": "٠١٢٣٤٥٦٧٨٩", "extended-arabic-indic": "۰۱۲۳۴۵۶۷۸۹", "devanagari": "०१२३४५६७८९",
                "fullwidth": "０１２３４５６７８９", "bengali": "০১২৩৪৫৬৭৮৯", "mathematical-bold": "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗"}


@pytest.mark.parametrize("digits", OTHER_DIGITS.values(), ids=OTHER_DIGITS.keys())
def test_times_and_dates_written_in_other_digits_are_refused(digits):
    from ifc_scan.ingest.gha_log import classify
    from ifc_scan.ingest.tickets import TicketRejected, parse_jira_csv
    from ifc_scan.timeutil import BadTimestamp, parse_date, parse_week

    def other(text: str) -> str:
        return text.translate(str.maketrans("0123456789", digits))

    # every digit replaced, and only one (the year's last): both refused, where the ASCII form reads
    for ts in ("2026-03-02T10:00:00Z", "2026-03-02T10:00:00.1234567+01:00"):
        assert parse_ts(ts) is not None
        for odd in (other(ts), ts[:3] + other(ts[3]) + ts[4:]):
            with pytest.raises(BadTimestamp, match="not an RFC 3339 timestamp"):
                parse_ts(odd)
    assert str(parse_date("2026-03-02")) == "2026-03-02"
    with pytest.raises(BadTimestamp, match="not a YYYY-MM-DD date"):
        parse_date(other("2026-03-02"))
    with pytest.raises(ValueError):
        parse_week(other("2026-W10"))
    # a runner log line stamped in other digits is text: no time of its own, the stamp left in its text
    raw = "2026-03-02T10:01:00.0000000Z #5 writing image sha256:" + "1" * 64 + " done"
    (ascii_line,) = classify([raw])
    (odd_line,) = classify([other(raw[:28]) + raw[28:]])
    assert ascii_line.time == datetime(2026, 3, 2, 10, 1) and ascii_line.text.startswith("#5 writing")
    assert odd_line.time is None and odd_line.text == other(raw[:28]) + raw[28:]
    # a Jira CSV export's date: strptime's %Y alone reads '05/Mar/٢٠٢٦' and '٢٠٢٦-03-05 09:00'
    head = "Summary,Issue key,Issue id,Status,Created\n"
    for created in ("05/Mar/2026 9:00 AM", "2026-03-05 09:00"):
        assert parse_jira_csv(head + f"x,SEC-7,10007,To Do,{created}\n")[0].created_at == datetime(2026, 3, 5, 9)
        with pytest.raises(TicketRejected, match="no date format Jira exports"):
            parse_jira_csv(head + "x,SEC-7,10007,To Do," + created.replace("2026", other("2026")) + "\n")


def test_a_report_dated_in_other_digits_is_rejected_and_the_rest_ingested(tmp_path):
    t = tmp_path / "landing" / "trivy"
    t.mkdir(parents=True)
    good = {"SchemaVersion": 2, "CreatedAt": "2026-03-02T02:00:00Z", "ArtifactName": "ghcr.io/a/b:1",
            "ArtifactType": "container_image", "Metadata": {"ImageID": "sha256:" + "1" * 64},
            "Results": [{"Target": "x", "Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "p", "Severity": "HIGH"}]}]}
    (t / "good.json").write_text(json.dumps(good))
    for name, digits in OTHER_DIGITS.items():
        created = "2026-03-02T02:00:00Z".translate(str.maketrans("0123456789", digits))
        (t / f"{name}.json").write_text(json.dumps({**good, "CreatedAt": created, "ArtifactName": f"ghcr.io/a/{name}:1"}))
    s = ingest(tmp_path / "landing", tmp_path / "w.duckdb", progress=lambda m: None)
    reasons = dict(s.rejections)
    assert s.ingested == 1 and sorted(reasons) == sorted(f"trivy/{n}.json" for n in OTHER_DIGITS)
    assert all("CreatedAt is not a usable time" in r for r in reasons.values())


def test_a_file_name_that_is_not_utf8_is_recorded_escaped_and_the_rest_stored(tmp_path):
    """Names in Latin-1 (a Windows copy), random bytes and a folder so named: each refused unopened and
    recorded under its escaped name; the good report and the run (whose one log has such a name) stored."""
    from ifc_scan_tests.badinputs import GOOD, _run
    land = tmp_path / "landing"
    (land / "trivy").mkdir(parents=True)
    (land / "trivy" / "good.json").write_text(json.dumps(GOOD))
    root = os.fsencode(land)
    other = json.dumps({**GOOD, "ArtifactName": "ghcr.io/bad/latin1:1", "Metadata": {"ImageID": "sha256:" + "c" * 64}})
    os.makedirs(root + b"/trivy/dir\xff")
    for name in (b"/trivy/caf\xe9.json", b"/trivy/\xff\xfe.json", b"/trivy/dir\xff/a.json"):
        with open(root + name, "w") as fh:
            fh.write(other)
    _run(land / "ci" / "github-actions" / "904", 904)
    logs = land / "ci" / "github-actions" / "904" / "logs" / "build"
    logs.mkdir(parents=True)
    (logs / "1_Build.txt").write_text("2026-03-02T10:01:00.0000000Z #5 writing image sha256:" + "1" * 64 + " done\n")
    with open(os.fsencode(logs) + b"/2_Pu\xdfh.txt", "w") as fh:
        fh.write("2026-03-02T10:02:00.0000000Z #6 writing image sha256:" + "2" * 64 + " done\n")
    wh = tmp_path / "w.duckdb"
    s = ingest(land, wh, progress=lambda m: None)
    escaped = {"trivy/caf\\xe9.json", "trivy/\\xff\\xfe.json", "trivy/dir\\xff/a.json",
               "ci/github-actions/904/logs/build/2_Pu\\xdfh.txt"}
    reasons = dict(s.rejections)
    assert set(reasons) == escaped and all("file name is not valid UTF-8" in r for r in reasons.values())
    con = duckdb.connect(str(wh), read_only=True)
    assert {r[0] for r in con.execute("select path from ingest_errors").fetchall()} == escaped
    assert con.execute("select source_path from scans").fetchall() == [("trivy/good.json",)]
    assert con.execute("select distinct log_file from ci_events where run_id = 904").fetchall() == [
        ("logs/build/1_Build.txt",)]       # the run stored, without the log whose name is not UTF-8
    before = {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in ("source_files", "ingest_errors", "scans")}
    con.close()
    again = ingest(land, wh, progress=lambda m: None)        # stable: nothing new, nothing added twice
    assert again.new_files == 0 and again.rejected == 0
    con = duckdb.connect(str(wh), read_only=True)
    assert {t: con.execute(f"select count(*) from {t}").fetchone()[0] for t in before} == before
    con.close()
