"""Ingest throughput against DuckDB's own read_json as the floor.

Generates >= 300 MB of Trivy image reports (>= 150k vulnerability rows, fields as verbose as real
reports: descriptions, references, CVSS, vendor severities), then in separate processes:
  1. `ifc-scan ingest` on an empty landing zone (the command's fixed start-up),
  2. `ifc-scan ingest` on the corpus,
  3. DuckDB read_json with an explicit schema over the same files, unnesting every vulnerability into a table.
Prints wall time and peak RSS of each (summed over a command's reader processes), and ingest net of start-up / floor.
Run: .venv/bin/python bench/bench_ingest.py [--files 300] [--vulns 520] [--landing DIR]
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "UNKNOWN"]


def make_report(i: int, n: int, rng: random.Random) -> dict:
    vulns = []
    for j in range(n):
        cve = f"CVE-20{rng.randint(15, 26)}-{rng.randint(1000, 99999)}"
        vulns.append({
            "VulnerabilityID": cve, "PkgID": f"pkg{j}@1.{j}.0", "PkgName": f"pkg{j % 400}",
            "PkgIdentifier": {"PURL": f"pkg:deb/debian/pkg{j % 400}@1.{j}.0?arch=amd64", "UID": f"{rng.getrandbits(64):016x}"},
            "InstalledVersion": f"1.{j}.0", "FixedVersion": f"1.{j}.1", "Status": "fixed",
            "Layer": {"Digest": f"sha256:{rng.getrandbits(256):064x}", "DiffID": f"sha256:{rng.getrandbits(256):064x}"},
            "SeveritySource": "debian", "PrimaryURL": f"https://avd.aquasec.com/nvd/{cve.lower()}",
            "DataSource": {"ID": "debian", "Name": "Debian Security Tracker", "URL": "https://salsa.debian.org/security-tracker-team/security-tracker"},
            "Title": f"pkg{j % 400}: buffer overflow in parser leads to remote code execution ({cve})",
            "Description": ("A flaw was found in the way the library parsed crafted input. " * 14)[:900],
            "Severity": SEVERITIES[j % 5], "CweIDs": ["CWE-787", "CWE-120"],
            "VendorSeverity": {"debian": 2, "nvd": 3, "redhat": 2, "ubuntu": 2},
            "CVSS": {"nvd": {"V3Vector": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "V3Score": 9.8},
                     "redhat": {"V3Vector": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H", "V3Score": 8.1}},
            "References": [f"https://security-tracker.debian.org/tracker/{cve}", f"https://nvd.nist.gov/vuln/detail/{cve}",
                           f"https://www.cve.org/CVERecord?id={cve}", "https://github.com/advisories"],
            "PublishedDate": "2024-05-01T12:15:08.123Z", "LastModifiedDate": "2025-01-02T03:04:05.67Z"})
    return {"SchemaVersion": 2, "Trivy": {"Version": "0.69.1"}, "CreatedAt": f"2026-03-{1 + i % 28:02d}T02:00:00.123456789Z",
            "ArtifactName": f"ghcr.io/acme/app{i % 10}:{i}", "ArtifactType": "container_image",
            "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}, "ImageID": f"sha256:{rng.getrandbits(256):064x}",
                         "RepoTags": [f"ghcr.io/acme/app{i % 10}:{i}"],
                         "RepoDigests": [f"ghcr.io/acme/app{i % 10}@sha256:{rng.getrandbits(256):064x}"]},
            "Results": [{"Target": f"ghcr.io/acme/app{i % 10}:{i} (debian 12.5)", "Class": "os-pkgs", "Type": "debian",
                         "Vulnerabilities": vulns}]}


FLOOR_SQL = """
CREATE TABLE floor AS
SELECT target, class, type, unnest(v)
FROM (SELECT r.Target AS target, r.Class AS class, r.Type AS type, unnest(r.Vulnerabilities) AS v
      FROM (SELECT unnest(Results) AS r FROM read_json(?, format='auto', maximum_object_size=1073741824, columns={
    'SchemaVersion': 'INTEGER', 'CreatedAt': 'VARCHAR', 'ArtifactName': 'VARCHAR', 'ArtifactType': 'VARCHAR',
    'Metadata': 'STRUCT(ImageID VARCHAR, RepoTags VARCHAR[], RepoDigests VARCHAR[])',
    'Results': 'STRUCT(Target VARCHAR, Class VARCHAR, Type VARCHAR, Vulnerabilities STRUCT(VulnerabilityID VARCHAR,
        PkgID VARCHAR, PkgName VARCHAR, PkgPath VARCHAR, PkgIdentifier STRUCT(PURL VARCHAR), InstalledVersion VARCHAR,
        FixedVersion VARCHAR, Status VARCHAR, Severity VARCHAR, SeveritySource VARCHAR, Title VARCHAR,
        PrimaryURL VARCHAR, PublishedDate VARCHAR, CVSS JSON)[])[]'})))
"""


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MB) of the command and its reader processes together, its stdout."""
    m = run_measured(cmd, cwd=ROOT, env={**os.environ, **(env or {})})
    if m.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{m.stderr[-2000:]}")
    return m.wall_s, m.peak_mb, m.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=300)
    ap.add_argument("--vulns", type=int, default=520)
    ap.add_argument("--landing", type=Path, help="an existing landing zone instead of the generated corpus (the floor "
                                                 "reads its trivy/**/*.json; the ingest reads everything)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ifc-bench-"))
    if a.landing:
        landing = a.landing
        scan_files = sorted(str(p) for p in (landing / "trivy").rglob("*.json"))
    else:
        landing = tmp / "landing"
        land = landing / "trivy"
        land.mkdir(parents=True)
        rng = random.Random(1)
        for i in range(a.files):
            (land / f"r{i:04d}.json").write_text(json.dumps(make_report(i, a.vulns, rng), indent=1))
        scan_files = sorted(str(p) for p in land.iterdir())
    size = sum(Path(p).stat().st_size for p in scan_files)
    empty = tmp / "empty"
    empty.mkdir()
    cli = [PY, "-m", "ifc_scan.cli", "ingest"]
    s0, m0, _ = timed(cli + ["--landing", str(empty), "--warehouse", str(tmp / "e.duckdb")])
    s1, m1, out = timed(cli + ["--landing", str(landing), "--warehouse", str(tmp / "w.duckdb")])
    # the same ingest parsing in its own process only (no reader processes), for the side-by-side ratio
    s3, m3, _ = timed(cli + ["--landing", str(landing), "--warehouse", str(tmp / "w1.duckdb")],
                      env={"IFC_SCAN_READERS": "0"})
    rows = json.loads(out)["rows"]["scan_vulnerabilities"]
    (tmp / "files.json").write_text(json.dumps(scan_files))
    floor_code = (f"import duckdb,json; c=duckdb.connect({str(tmp / 'f.duckdb')!r}); c.execute('SET enable_progress_bar = false'); "
                  f"c.execute({FLOOR_SQL!r}, [json.load(open({str(tmp / 'files.json')!r}))]); "
                  f"print(c.execute('select count(*) from floor').fetchone()[0])")
    s2, m2, out2 = timed([PY, "-c", floor_code])
    print(f"corpus: {len(scan_files)} scan files, {size / 1e6:.0f} MB, {rows} vulnerability rows (floor read {out2.strip()})")
    print(f"ifc-scan ingest, empty landing zone (start-up): {s0:.2f} s, peak RSS {m0:.0f} MB")
    print(f"ifc-scan ingest, corpus: {s1:.2f} s, peak RSS {m1:.0f} MB; net of start-up {s1 - s0:.2f} s")
    print(f"ifc-scan ingest, corpus, IFC_SCAN_READERS=0: {s3:.2f} s, peak RSS {m3:.0f} MB; net {s3 - s0:.2f} s, "
          f"{(s3 - s0) / s2:.2f}x the floor")
    print(f"DuckDB read_json floor: {s2:.2f} s, peak RSS {m2:.0f} MB")
    print(f"ratio (ingest net / floor): {(s1 - s0) / s2:.2f}x (target <= 1.5x, issue 12); ingest peak RSS (with its reader processes) target < 1024 MB")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
