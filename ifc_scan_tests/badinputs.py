"""A generated corpus of bad inputs, small on disk, each with the outcome ifc_scan documents for it
(RELIABILITY.md lists the same table). `write_bad_inputs(landing)` adds them to a landing zone."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zipfile
from pathlib import Path

GOOD = {"SchemaVersion": 2, "CreatedAt": "2026-03-02T02:00:00Z", "ArtifactName": "ghcr.io/bad/app:1",
        "ArtifactType": "container_image",
        "Metadata": {"ImageID": "sha256:" + "e" * 64, "RepoTags": ["ghcr.io/bad/app:1"]},
        "Results": [{"Target": "app (debian 12)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": [
            {"VulnerabilityID": "CVE-2026-7777", "PkgName": "openssl", "Severity": "HIGH",
             "Title": "<script>alert(1)</script> \"onerror=x ' \x07\x1b[31m <style>*{display:none}</style>"}]}]}

# path -> (expected status, a word the reason must contain, or None)
EXPECTED = {
    "trivy/bad/truncated.json": ("rejected", "broken JSON"),
    "trivy/bad/empty.json": ("rejected", "empty"),
    "trivy/bad/invalid-utf8.json": ("rejected", "UTF-8"),
    "trivy/bad/utf16-bom.json": ("ingested", None),
    "trivy/bad/deeply-nested.json": ("rejected", "nested too deeply"),
    "trivy/bad/created-in-future.json": ("rejected", "future"),
    "trivy/bad/created-before-2000.json": ("rejected", "before 2000"),
    "trivy/bad/created-impossible.json": ("rejected", "CreatedAt"),
    "trivy/bad/z-copy-under-another-name.json": ("duplicate", "same content"),   # first in path order wins
    "trivy/bad/not-trivy.sarif": ("rejected", "not from Trivy"),
    "trivy/bad/sbom.cdx.json": ("rejected", "CycloneDX"),
    "trivy/bad/unsupported-schema.json": ("rejected", "SchemaVersion"),
    "trivy/bad/not-a-report.json": ("rejected", "not a Trivy report"),
    "trivy/bad/hostile-text.json": ("ingested", None),
    "trivy/bad/huge-200mb.json": ("ingested", None),
    "trivy/bad/symlink.json": ("rejected", "symbolic link"),
    "exceptions/_global/2026-02-01/.trivyignore.yaml": ("rejected", "refuse"),
    "exceptions/_global/not-a-date/.trivyignore": ("rejected", "not a YYYY-MM-DD"),
    "ci/github-actions/901/logs.zip": ("rejected", "escape the run folder"),
    "ci/github-actions/902/jobs.json": ("rejected", "belongs to run"),
    "ci/github-actions/903/logs/build/1_Build.txt": ("ingested", None),
    "notes/readme.txt": ("ignored", "not in a landing-zone folder"),
    "trivy/bad/caf\\xe9.json": ("rejected", "file name is not valid UTF-8"),      # recorded under its escaped name
    "trivy/bad/created-in-arabic-indic-digits.json": ("rejected", "CreatedAt is not a usable time"),
    "ci/github-actions/905/logs.zip": ("rejected", "logs.zip!build/2_Bomb.txt: its header says"),
}
SIZES = {"huge": 200 * 1024 * 1024, "one_line_log": 1024 * 1024 * 1024, "zip_bomb": 64 * 1024 * 1024}
BUILD_LINE = "2026-03-02T10:01:00.0000000Z #5 writing image sha256:" + "1" * 64 + " done"


def write_zip_bomb(path: Path, inflated: int, unit: bytes = b"\0", claim_inflated: int | None = None,
                   claim_compressed: int | None = None) -> None:
    """A logs.zip: build/1_Build.txt (one build event), then build/2_Bomb.txt, `inflated` bytes of `unit`
    repeated, written 1 MB at a time so that the writer's memory stays small (deflate makes 1 GB of zeros
    about 1 MB). claim_inflated: the central directory then lies that the bomb inflates to only that many
    bytes, so that its header's ratio looks like a real log's (zipfile yields that many, then finds the
    CRC wrong); claim_compressed: it lies that the bomb holds that many compressed bytes, to the same end."""
    piece = unit * (1024 * 1024 // len(unit))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("build/1_Build.txt", BUILD_LINE + "\n")
        with zf.open("build/2_Bomb.txt", "w") as fh:
            for _ in range(inflated // len(piece)):
                fh.write(piece)
            fh.write(unit * (inflated % len(piece) // len(unit)))
    if claim_inflated is not None or claim_compressed is not None:
        data = bytearray(path.read_bytes())
        entry = data.rindex(b"PK\x01\x02")          # the central directory entry of the last member, the bomb
        assert data[entry + 46:entry + 62] == b"build/2_Bomb.txt"
        for offset, claim in ((20, claim_compressed), (24, claim_inflated)):
            if claim is not None:
                struct.pack_into("<I", data, entry + offset, claim)
        path.write_bytes(bytes(data))


def _run(d: Path, run_id: int, jobs_run_id: int | None = None) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "run.json").write_text(json.dumps({"id": run_id, "name": "image-scan", "status": "completed",
                                            "conclusion": "success", "created_at": "2026-03-02T10:00:00Z"}))
    (d / "jobs.json").write_text(json.dumps({"total_count": 1, "jobs": [
        {"id": run_id * 10, "run_id": jobs_run_id or run_id, "name": "build", "status": "completed", "conclusion": "success",
         "started_at": "2026-03-02T10:00:00Z", "completed_at": "2026-03-02T10:05:00Z",
         "steps": [{"name": "Build", "number": 1, "status": "completed", "conclusion": "success",
                    "started_at": "2026-03-02T10:00:00.000Z", "completed_at": "2026-03-02T10:05:00.000Z"}]}]}))


def write_bad_inputs(landing: Path, huge: bool = True) -> dict:
    expected = dict(EXPECTED)
    t = landing / "trivy" / "bad"
    t.mkdir(parents=True, exist_ok=True)
    good = json.dumps(GOOD)
    (t / "truncated.json").write_text(good[: len(good) // 2])
    (t / "empty.json").write_bytes(b"")
    (t / "invalid-utf8.json").write_bytes(good.encode().replace(b"openssl", b"open\xffssl"))
    (t / "utf16-bom.json").write_bytes(json.dumps({**GOOD, "ArtifactName": "ghcr.io/bad/utf16:1"}).encode("utf-16"))
    (t / "deeply-nested.json").write_text("[" * 200000 + "]" * 200000)
    (t / "created-in-future.json").write_text(json.dumps({**GOOD, "CreatedAt": "2099-01-01T00:00:00Z"}))
    (t / "created-before-2000.json").write_text(json.dumps({**GOOD, "CreatedAt": "1999-12-31T23:59:59Z"}))
    (t / "created-impossible.json").write_text(json.dumps({**GOOD, "CreatedAt": "2026-02-30T00:00:00Z"}))
    (t / "original.json").write_text(good)
    shutil.copy(t / "original.json", t / "z-copy-under-another-name.json")
    (t / "not-trivy.sarif").write_text(json.dumps({"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
                                                   "runs": [{"tool": {"driver": {"name": "CodeQL"}}, "results": []}]}))
    (t / "sbom.cdx.json").write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": []}))
    (t / "unsupported-schema.json").write_text(json.dumps({**GOOD, "SchemaVersion": 3}))
    (t / "not-a-report.json").write_text(json.dumps({"hello": "world"}))
    hostile = json.loads(good)
    hostile["ArtifactName"] = "ghcr.io/bad/hostile:1"
    hostile["Metadata"]["ImageID"] = "sha256:" + "f" * 64
    hostile["Results"][0]["Vulnerabilities"][0]["PkgName"] = "=cmd|' /C calc'!A0"
    (t / "hostile-text.json").write_text(json.dumps(hostile))
    os.symlink("/etc/hostname", t / "symlink.json")
    if huge:
        vuln = {"VulnerabilityID": "CVE-2026-1", "PkgName": "p", "Severity": "LOW", "Description": "x" * 2000}
        per = len(json.dumps(vuln)) + 1
        with open(t / "huge-200mb.json", "w") as fh:
            fh.write('{"SchemaVersion": 2, "CreatedAt": "2026-03-02T02:00:00Z", "ArtifactName": "ghcr.io/bad/huge:1", '
                     '"ArtifactType": "container_image", "Metadata": {"ImageID": "sha256:' + "9" * 64 + '"}, '
                     '"Results": [{"Target": "t", "Class": "os-pkgs", "Vulnerabilities": [')
            n = SIZES["huge"] // per
            line = json.dumps(vuln)
            fh.write(",".join([line] * n))
            fh.write("]}]}")
        SIZES["huge_rows"] = n
    else:
        expected.pop("trivy/bad/huge-200mb.json")
    e = landing / "exceptions" / "_global" / "2026-02-01"
    e.mkdir(parents=True, exist_ok=True)
    (e / ".trivyignore.yaml").write_text('vulnerabilities:\n  - id: CVE-2026-7777\n    expired_at: "2026-06-01"\n')
    e2 = landing / "exceptions" / "_global" / "not-a-date"
    e2.mkdir(parents=True, exist_ok=True)
    (e2 / ".trivyignore").write_text("CVE-2026-7777\n")
    ci = landing / "ci" / "github-actions"
    _run(ci / "901", 901)
    with zipfile.ZipFile(ci / "901" / "logs.zip", "w") as zf:
        zf.writestr("build/1_Build.txt", "2026-03-02T10:01:00.0000000Z #5 writing image sha256:" + "1" * 64 + " done")
        zf.writestr("../../../../tmp/ifc-evil.txt", "owned")
        info = zipfile.ZipInfo("build/2_link.txt")
        info.external_attr = 0o120777 << 16
        zf.writestr(info, "/etc/passwd")
    _run(ci / "902", 902, jobs_run_id=777)
    _run(ci / "903", 903)
    log = ci / "903" / "logs" / "build" / "1_Build.txt"
    log.parent.mkdir(parents=True)
    with open(log, "wb") as fh:   # 1 GB on a single line (sparse on disk), then one real event line
        fh.write(b"2026-03-02T10:00:01.0000000Z ")
        fh.truncate(SIZES["one_line_log"])
        fh.seek(0, 2)
        fh.write(b"\n2026-03-02T10:04:00.0000000Z #7 writing image sha256:" + b"2" * 64 + b" done\n")
    with open(os.fsencode(t) + b"/caf\xe9.json", "w") as fh:      # a Latin-1 name (a copy from Windows)
        fh.write(json.dumps({**GOOD, "ArtifactName": "ghcr.io/bad/latin1-name:1"}))
    arabic = "2026-03-02T02:00:00Z".translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    (t / "created-in-arabic-indic-digits.json").write_text(json.dumps({**GOOD, "CreatedAt": arabic}))
    _run(ci / "905", 905)
    write_zip_bomb(ci / "905" / "logs.zip", SIZES["zip_bomb"])
    (landing / "notes").mkdir(exist_ok=True)
    (landing / "notes" / "readme.txt").write_text("not evidence")
    return expected
