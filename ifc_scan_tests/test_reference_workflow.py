"""examples/image-scan.yml: a valid workflow that produces exactly the evidence ifc_scan reads.

The logs in fixtures/joblogs/reference-workflow-*.log are what a run of this workflow prints (the
steps in the workflow's order, build-push-action through the docker-container driver, trivy-action
0.28, the gate's own output, the deploy job's env echo). Their events are written out by hand."""

import fnmatch
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from ifc_scan.collect.github import DEFAULT_WORKFLOWS
from ifc_scan.ingest.github_actions import read_run_folder

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "image-scan.yml"
FIXTURES = Path(__file__).parent / "fixtures" / "joblogs"
SHA = "8f1c2e0a9b7d6c5e4f3a2b1c0d9e8f7a6b5c4d3e"
CFG, MAN, IDX = "sha256:" + "c1" * 32, "sha256:" + "d2" * 32, "sha256:" + "e3" * 32


def steps_of(job: dict) -> list[str]:
    return [s.get("name") or s.get("uses") or s.get("run") for s in job["steps"]]


def test_the_workflow_is_valid_for_github_actions():
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    # the schema of GitHub workflows vendored in check-jsonschema (SchemaStore): no network
    out = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_workflow_produces_the_evidence_the_collector_and_readers_expect():
    wf = yaml.safe_load(WORKFLOW.read_text())
    assert WORKFLOW.name in DEFAULT_WORKFLOWS                   # collected without --workflow
    build = wf["jobs"]["build-and-scan"]
    names = steps_of(build)
    scan = next(s for s in build["steps"] if s.get("name") == "Scan image with Trivy")
    upload = next(s for s in build["steps"] if s.get("name") == "Upload scan results")
    # the JSON the scan writes is the artifact, named as the collector's default pattern wants
    assert scan["with"]["format"] == "json" and scan["with"]["output"] == upload["with"]["path"]
    assert fnmatch.fnmatch(upload["with"]["name"].replace("${{ github.event.repository.name }}", "api"), "trivy-results-*")
    # nothing is pushed before the gate: the gate's exit 1 stops the job
    assert names.index("Scan image with Trivy") < names.index("Policy gate") < names.index("Push image")
    assert "ifc-scan gate" in next(s["run"] for s in build["steps"] if s.get("name") == "Policy gate")
    deploy = wf["jobs"]["deploy-production"]
    assert deploy["environment"] == "production" and "deploy" in "deploy-production"
    assert "::notice title=deploy::" in deploy["steps"][0]["run"]


def run_folder(tmp_path) -> Path:
    d = tmp_path / "landing" / "ci" / "github-actions" / "9100000001"
    (d / "logs").mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"id": 9100000001, "name": "image-scan", "path": ".github/workflows/image-scan.yml",
                                            "event": "push", "head_branch": "main", "head_sha": SHA,
                                            "created_at": "2026-06-08T08:59:50Z", "status": "completed",
                                            "conclusion": "success"}))
    shutil.copy(FIXTURES / "reference-workflow-build.log", d / "logs" / "0_build-and-scan.txt")
    shutil.copy(FIXTURES / "reference-workflow-deploy.log", d / "logs" / "1_deploy-production.txt")
    return d


def test_a_run_of_the_workflow_read_by_the_ci_reader(tmp_path):
    res = read_run_folder(run_folder(tmp_path))
    ref = f"ghcr.io/acme/api:{SHA}"
    got = [(e.kind, e.log_file.split("/")[-1], e.line_no, e.image_ref, e.digest, e.image_id, e.environment)
           for e in res.events]
    # by hand: "Build image" loads (line 27, first export; config c1, manifest d2); the JSON scan (37)
    # and the SARIF scan (60); "Push image" rebuilds from cache and pushes the index e3 (114, 119);
    # the deploy job's kubectl line (3) with $IMAGE and $DIGEST from its env echo, production from its
    # notice (12), one deploy
    assert got == [
        ("build", "0_build-and-scan.txt", 27, ref, MAN, CFG, None),
        ("scan", "0_build-and-scan.txt", 37, ref, None, None, None),
        ("scan", "0_build-and-scan.txt", 60, ref, None, None, None),
        ("build", "0_build-and-scan.txt", 114, ref, IDX, CFG, None),
        ("push", "0_build-and-scan.txt", 119, ref, IDX, None, None),
        ("deploy", "1_deploy-production.txt", 3, "ghcr.io/acme/api", IDX, None, "production")]
    assert [e.scan_output for e in res.events if e.kind == "scan"] == ["trivy-results-api.json", "trivy-results.sarif"]
    assert [i for i in res.issues if i.reason.startswith("looks like")] == []


def test_the_weekly_kpis_count_the_run_as_a_covered_build_and_a_production_deploy(tmp_path):
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.kpis.stage import WeeklyStage
    from ifc_scan.lifecycle.store import derive_lifecycle
    from ifc_scan.policy import load_policy
    from ifc_scan.warehouse.db import connect

    d = run_folder(tmp_path)
    art = d / "artifacts" / "trivy-results-api" / "trivy-results-api.json"
    art.parent.mkdir(parents=True)
    art.write_text(json.dumps({
        "SchemaVersion": 2, "ArtifactName": f"ghcr.io/acme/api:{SHA}", "ArtifactType": "container_image",
        "Metadata": {"ImageID": CFG, "RepoTags": [f"ghcr.io/acme/api:{SHA}"], "RepoDigests": []},
        "Results": [{"Target": "ghcr.io/acme/api (debian 12.8)", "Class": "os-pkgs", "Type": "debian",
                     "Vulnerabilities": [{"VulnerabilityID": "CVE-2026-22222", "PkgName": "zlib1g",
                                          "InstalledVersion": "1.2.13", "FixedVersion": "1.2.13.1", "Severity": "HIGH"}]}]}))
    wh = tmp_path / "w.duckdb"
    ingest(tmp_path / "landing", wh, progress=lambda m: None)
    policy = load_policy()
    with connect(wh) as con:
        derive_lifecycle(con, policy)
        k = WeeklyStage(con, policy).compute(date(2026, 6, 8)).kpis
        deploys = WeeklyStage(con, policy).compute(date(2026, 6, 8)).populations["deploys"]
    # by hand: the load and the push export the same image c1 in one run: one build (KPIS.md: a build is
    # one run, lineage and image). The JSON scan (dated by its step, 09:01:13) precedes the push
    # (09:02:47): covered. The deploy of e3 (= c1 by the push's export) is a production deploy, and
    # its image was scanned before it.
    gate = k["coverage"]["build_gate"]
    assert (gate["builds"], gate["covered"], gate["uncovered"]) == (1, 1, [])
    assert [(d["digest"], d["image"]) for d in deploys] == [(IDX, CFG)]
    assert k["critical_in_prod"]["count"] == 0


@pytest.mark.parametrize("path", ["examples/pre-push"])
def test_the_pre_push_hook_is_valid_shell(path):
    out = subprocess.run(["sh", "-n", str(ROOT / path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
