"""GitHub Actions ingest: real REST shapes, a realistic job log in every layout GitHub serves, bad input.
Events are counted by hand from the log text written below."""

import json
import re
import shutil
import zipfile

import duckdb
import pytest

from ifc_scan.ingest.github_actions import read_run_folder
from ifc_scan.ingest.runner import ingest

CFG = "sha256:" + "c" * 64
MAN = "sha256:" + "d" * 64
REF = "ghcr.io/acme/api"

BUILD_LOG = f"""2026-03-02T10:00:00.5000000Z Current runner version: '2.321.0'
2026-03-02T10:00:03.1234567Z ##[group]Run docker/build-push-action@v6
2026-03-02T10:00:03.1234567Z with:
2026-03-02T10:00:03.1234567Z   tags: {REF}:abc123
2026-03-02T10:00:03.1234567Z   load: true
2026-03-02T10:00:03.1234567Z ##[endgroup]
2026-03-02T10:01:20.0000000Z #14 exporting to image
2026-03-02T10:01:20.1000000Z #14 exporting layers 3.2s done
2026-03-02T10:01:21.0000000Z #14 writing image {CFG} done
2026-03-02T10:01:21.1000000Z #14 naming to {REF}:abc123 done
2026-03-02T10:01:21.2000000Z #14 DONE 3.4s
2026-03-02T10:01:31.0000000Z ##[group]Run aquasecurity/trivy-action@0.28.0
2026-03-02T10:01:31.0000000Z with:
2026-03-02T10:01:31.0000000Z   image-ref: {REF}:abc123
2026-03-02T10:01:31.0000000Z   format: json
2026-03-02T10:01:31.0000000Z   output: trivy-results-api.json
2026-03-02T10:01:31.0000000Z   severity: CRITICAL,HIGH
2026-03-02T10:01:31.0000000Z   ignore-unfixed: true
2026-03-02T10:01:31.0000000Z   exit-code: 1
2026-03-02T10:01:31.0000000Z env:
2026-03-02T10:01:31.0000000Z   TRIVY_SEVERITY: CRITICAL,HIGH
2026-03-02T10:01:31.0000000Z ##[endgroup]
2026-03-02T10:01:40.0000000Z Running Trivy with options: trivy image {REF}:abc123
2026-03-02T10:02:11.0000000Z ##[group]Run docker push {REF}:abc123
2026-03-02T10:02:11.0000000Z ##[endgroup]
2026-03-02T10:02:12.0000000Z The push refers to repository [{REF}]
2026-03-02T10:02:13.0000000Z 5f70bf18a086: Pushed
2026-03-02T10:02:20.0000000Z abc123: digest: {MAN} size: 1573
2026-03-02T10:02:21.0000000Z #99 writing image sha256:0bad done"""

DEPLOY_LOG = f"""2026-03-02T11:00:00.5000000Z Current runner version: '2.321.0'
2026-03-02T11:00:02.0000000Z ##[group]Run cosign verify --key cosign.pub {REF}@{MAN}
2026-03-02T11:00:02.0000000Z ##[endgroup]
2026-03-02T11:00:05.0000000Z Verification for {REF}@{MAN} -- The following checks were performed
2026-03-02T11:00:10.0000000Z ##[group]Run kubectl set image deployment/api api={REF}@{MAN}
2026-03-02T11:00:10.0000000Z kubectl -n production set image deployment/api api={REF}@{MAN}
2026-03-02T11:00:11.0000000Z ##[endgroup]
2026-03-02T11:00:12.0000000Z kubectl set image deployment/worker worker={REF}:latest"""

STEPS = {
    "build-and-scan": [("Set up job", "10:00:00", "10:00:02", "success"), ("Build", "10:00:02", "10:01:30", "success"),
                       ("Scan image", "10:01:30", "10:02:10", "failure"), ("Push", "10:02:10", "10:02:40", "success")],
    "deploy-production": [("Set up job", "11:00:00", "11:00:01", "success"), ("Verify", "11:00:01", "11:00:09", "success"),
                          ("Deploy", "11:00:09", "11:00:20", "success")],
}


def write_run(d, run_id=42, layout="job", jobs_run_id=None):
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"id": run_id, "name": "image-scan", "event": "push", "status": "completed",
                                            "conclusion": "failure", "created_at": "2026-03-02T09:59:50Z",
                                            "run_attempt": 1}))
    jobs = []
    for i, (name, steps) in enumerate(STEPS.items()):
        jobs.append({"id": 100 + i, "run_id": jobs_run_id or run_id, "name": name, "status": "completed",
                     "conclusion": "failure" if name == "build-and-scan" else "success",
                     "started_at": f"2026-03-02T{steps[0][1]}Z", "completed_at": f"2026-03-02T{steps[-1][2]}Z",
                     "steps": [{"name": n, "number": k + 1, "status": "completed", "conclusion": c,
                                "started_at": f"2026-03-02T{a}.000Z", "completed_at": f"2026-03-02T{b}.000Z"}
                               for k, (n, a, b, c) in enumerate(steps)]})
    (d / "jobs.json").write_text(json.dumps({"total_count": len(jobs), "jobs": jobs}))
    logs = {"build-and-scan": BUILD_LOG, "deploy-production": DEPLOY_LOG}
    if layout == "job":
        (d / "logs").mkdir()
        for i, (name, text) in enumerate(logs.items()):
            (d / "logs" / f"{i}_{name}.txt").write_text(text)
    elif layout == "zip":
        with zipfile.ZipFile(d / "logs.zip", "w") as zf:
            for i, (name, text) in enumerate(logs.items()):
                zf.writestr(f"{i}_{name}.txt", text)
            zf.writestr("../evil.txt", "2026-03-02T10:00:00.0000000Z escape")
            info = zipfile.ZipInfo("link.txt")
            info.external_attr = 0o120777 << 16
            zf.writestr(info, "/etc/passwd")
            zf.writestr("__MACOSX/._0_build-and-scan.txt", "junk")


def events(res):
    return [e._asdict() for e in res.events]


@pytest.mark.parametrize("layout", ["job", "zip"])
def test_events_from_a_realistic_job_log(tmp_path, layout):
    write_run(tmp_path / "42", layout=layout)
    res = read_run_folder(tmp_path / "42")
    ev = {e["kind"]: e for e in events(res) if e["digest"] or e["kind"] not in ("deploy",)}
    # by hand: 1 build, 1 scan (the "Running Trivy" line belongs to the action), 1 push, 1 verify, 2 deploys:
    # by digest (the step header, its echo and the command are one deploy) and the worker's by tag
    assert sorted(e["kind"] for e in events(res)) == ["build", "deploy", "deploy", "push", "scan", "verify"]
    by_tag = [e for e in events(res) if e["kind"] == "deploy" and e["digest"] is None]
    assert [(e["image_ref"], e["line_no"]) for e in by_tag] == [(f"{REF}:latest", 8)]
    b = ev["build"]
    assert (b["image_id"], b["digest"], b["image_ref"], b["step_name"]) == (CFG, None, f"{REF}:abc123", "Build")
    assert b["time"].isoformat() == "2026-03-02T10:01:21" and b["line_no"] == 9
    s = ev["scan"]
    assert (s["scope_severity"], s["scope_ignore_unfixed"], s["scan_output"]) == ("CRITICAL,HIGH", True, "trivy-results-api.json")
    assert s["outcome"] == "failure"                 # from jobs.json: the log has no ##[error]
    assert s["time"].isoformat() == "2026-03-02T10:02:10"    # the scan step's completion
    p = ev["push"]
    assert (p["image_ref"], p["digest"], p["step_name"]) == (f"{REF}:abc123", MAN, "Push")
    d = ev["deploy"]
    assert (d["environment"], d["digest"], d["lineage"], d["time"].isoformat()) == ("production", MAN, REF, "2026-03-02T11:00:10")
    assert ev["verify"]["digest"] == MAN and ev["verify"]["step_name"] == "Verify"
    # unparsed: the short-digest "writing image" line
    assert res.run[-1] == 1
    assert [i.reason for i in res.issues if i.reason.startswith("looks like")] == [
        "looks like a build event but matches no pattern"]
    if layout == "zip":
        errs = " ".join(r for _f, r in res.errors)
        assert "escape the run folder" in errs and "symlink" in errs
        assert not (tmp_path / "evil.txt").exists()


def test_per_step_layout_without_timestamps(tmp_path):
    d = tmp_path / "43"
    write_run(d, run_id=43, layout="none")
    step_dir = d / "logs" / "build-and-scan"
    step_dir.mkdir(parents=True)
    (step_dir / "2_Build.txt").write_text(f"#14 writing image {CFG} done\n#14 naming to {REF}:abc123 done\n")
    res = read_run_folder(d)
    (b,) = events(res)
    # no line times: dated by its step's completion in jobs.json (Build ends 10:01:30)
    assert b["kind"] == "build" and b["time"].isoformat() == "2026-03-02T10:01:30" and b["step_number"] == 2
    assert any("no timestamps" in i.reason for i in res.issues)


def test_jobs_json_of_another_run_is_rejected_and_the_run_kept(tmp_path):
    land = tmp_path / "landing"
    write_run(land / "ci" / "github-actions" / "44", run_id=44, jobs_run_id=99)
    s = ingest(land, tmp_path / "w.duckdb", progress=lambda m: None)
    reasons = dict(s.rejections)
    assert "belongs to run 99" in reasons["ci/github-actions/44/jobs.json"]
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("select count(*) from ci_runs").fetchone()[0] == 1
    assert con.execute("select count(*) from ci_jobs").fetchone()[0] == 0


def test_ingest_twice_adds_nothing_and_a_completed_rerun_replaces_the_run(tmp_path):
    land = tmp_path / "landing"
    run = land / "ci" / "github-actions" / "42"
    write_run(run, layout="job")
    wh = tmp_path / "w.duckdb"
    ingest(land, wh, progress=lambda m: None)
    assert ingest(land, wh, progress=lambda m: None).new_files == 0
    doc = json.loads((run / "run.json").read_text())
    doc["run_attempt"] = 2
    (run / "run.json").write_text(json.dumps(doc))
    ingest(land, wh, progress=lambda m: None)
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("select count(*), max(run_attempt) from ci_runs").fetchone() == (1, 2)
    assert con.execute("select count(*) from ci_events").fetchone()[0] == 6


@pytest.mark.corpus
def test_real_rest_recordings(corpus, tmp_path):
    gha = corpus / "github-actions"
    good = tmp_path / "landing" / "ci" / "github-actions" / "3881497935"
    good.mkdir(parents=True)
    shutil.copy(gha / "pygithub__WorkflowRun.setUp__GET_actions_runs_N.json", good / "run.json")
    shutil.copy(gha / "pygithub__WorkflowRun.test_jobs__GET_actions_runs_N_jobs.json", good / "jobs.json")
    other = tmp_path / "landing" / "ci" / "github-actions" / "4205440316"
    other.mkdir(parents=True)
    shutil.copy(gha / "pygithub__WorkflowJob.setUp__GET_actions_runs_N.json", other / "run.json")
    # the jobs list of a different run, as a collector bug would write it
    shutil.copy(gha / "pygithub__WorkflowRun.test_jobs__GET_actions_runs_N_jobs.json", other / "jobs.json")
    s = ingest(tmp_path / "landing", tmp_path / "w.duckdb", progress=lambda m: None)
    jobs_doc = json.loads((good / "jobs.json").read_text())
    expected_steps = sum(len(j["steps"]) for j in jobs_doc["jobs"])
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("select count(*) from ci_runs").fetchone()[0] == 2
    assert con.execute("select count(*) from ci_jobs where run_id=3881497935").fetchone()[0] == len(jobs_doc["jobs"])
    assert con.execute("select count(*) from ci_steps").fetchone()[0] == expected_steps
    assert con.execute("select workflow, conclusion from ci_runs where run_id=3881497935").fetchone() == ("CI", "success")
    assert "belongs to run 3881497935" in dict(s.rejections)["ci/github-actions/4205440316/jobs.json"]


def test_a_team_adds_its_own_deploy_pattern_without_code(tmp_path, monkeypatch):
    from ifc_scan.ingest.github_actions import load_patterns
    extra = tmp_path / "patterns.yaml"
    extra.write_text("patterns:\n  - {kind: deploy, name: argocd-set-image, "
                     "regex: 'argocd app set \\S+ --kustomize-image (?P<ref>[^@\\s]+)@(?P<digest>sha256:[0-9a-f]{64})'}\n"
                     "suspects:\n  deploy: ['argocd app set']\n")
    d = tmp_path / "50"
    write_run(d, run_id=50, layout="none")
    log = d / "logs" / "deploy-production" / "3_Deploy.txt"
    log.parent.mkdir(parents=True)
    log.write_text(f"2026-03-02T11:00:12.0000000Z argocd app set api --kustomize-image {REF}@{MAN}\n"
                   "2026-03-02T11:00:13.0000000Z argocd app set api --kustomize-image ghcr.io/acme/api:latest\n")
    monkeypatch.setenv("IFC_SCAN_CI_PATTERNS", str(extra))
    load_patterns.cache_clear()
    try:
        res = read_run_folder(d, load_patterns())
    finally:
        load_patterns.cache_clear()
    (ev,) = events(res)
    assert (ev["kind"], ev["pattern"], ev["digest"], ev["environment"]) == ("deploy", "argocd-set-image", MAN, "production")
    assert res.run[-1] == 1          # the deploy by tag looks like an event but names no digest: counted


def test_a_broken_team_patterns_file_is_named_in_the_error(tmp_path, monkeypatch):
    from ifc_scan.ingest.github_actions import load_patterns
    bad = tmp_path / "patterns.yaml"
    bad.write_text("patterns:\n  - {kind: deploy, name: mine, regex: 'argocd (unclosed'}\n")
    monkeypatch.setenv("IFC_SCAN_CI_PATTERNS", str(bad))
    load_patterns.cache_clear()
    try:
        with pytest.raises(ValueError, match=f"CI patterns file {bad}: error"):
            load_patterns()
    finally:
        load_patterns.cache_clear()


def test_a_zip_bomb_of_log_lines_is_read_up_to_the_runs_budget(tmp_path):
    """A 2 MB logs.zip inflating to 24 MB of short lines (12:1, like a real log, so not refused as a
    zip bomb): with an 8 MB budget the run reads what fits, records its events, and says which log was
    not read."""
    d = tmp_path / "60"
    write_run(d, run_id=60, layout="none")
    filler = b"".join(b"2026-03-02T10:00:00.%07dZ .\n" % i for i in range(24 * 1024 * 1024 // 31))
    with zipfile.ZipFile(d / "logs.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("0_build-and-scan.txt", BUILD_LOG)
        zf.writestr("1_deploy-production.txt", filler)
    assert (d / "logs.zip").stat().st_size < 3 * 1024 * 1024
    res = read_run_folder(d, max_log_bytes=8 * 1024 * 1024)
    assert "build" in [e.kind for e in res.events]              # the first log, within the budget
    (reason,) = [r for f, r in res.errors if f == "logs.zip"]
    assert "exceed 8,388,608 bytes" in reason and "1_deploy-production.txt" in reason
    assert "(25,165,800 bytes, more than the" in reason        # its header says it will not fit: not opened
    # the same with a budget of lines: 24 MB of 31-byte lines is 811,800 lines, over 100,000
    res = read_run_folder(d, max_log_lines=100_000)
    (reason,) = [r for f, r in res.errors if f == "logs.zip"]
    assert "exceed 100,000 lines" in reason and "build" in [e.kind for e in res.events]


@pytest.mark.parametrize("run_doc, reason", [
    ({"id": "abc"}, "field id: expected an integer, got 'abc'"),
    ({"id": 2 ** 64}, "field id: 18446744073709551616 is outside 0..2^63-1"),
    ({"id": True}, "field id: expected an integer, got bool"),
    ({"id": 5, "name": {"a": 1}}, "field name: expected text, got dict"),
    ({"id": 5, "repository": {"owner": "acme"}}, "field repository.owner"),
])
def test_a_run_json_of_the_wrong_shape_is_rejected_naming_the_field(tmp_path, run_doc, reason):
    from ifc_scan.ingest.model import Rejected
    d = tmp_path / "5"
    d.mkdir()
    (d / "run.json").write_text(json.dumps(run_doc))
    with pytest.raises(Rejected, match=re.escape(reason)):
        read_run_folder(d)


def test_a_jobs_json_of_the_wrong_shape_is_refused_and_the_run_kept(tmp_path):
    d = tmp_path / "6"
    write_run(d, run_id=6, layout="none")
    doc = json.loads((d / "jobs.json").read_text())
    doc["jobs"][0]["steps"][1]["number"] = "two"
    (d / "jobs.json").write_text(json.dumps(doc))
    res = read_run_folder(d)
    assert res.jobs == [] and res.run[0] == 6
    assert [(f, r) for f, r in res.errors] == [
        ("jobs.json", "jobs.json is not a GitHub jobs list: field jobs.0.steps.1.number: expected an integer, got 'two'")]


def test_any_run_json_is_read_or_rejected_with_a_reason(tmp_path):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from ifc_scan.ingest.model import Rejected
    scalar = st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.text(max_size=10)
    value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                             max_size=3), max_leaves=8)
    keys = st.sampled_from(["id", "name", "run_attempt", "head_sha", "repository", "created_at", "jobs", "steps"])
    doc = st.dictionaries(keys, value, max_size=6)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(doc, st.dictionaries(st.just("jobs"), st.lists(st.dictionaries(keys, value, max_size=5), max_size=3)))
    def check(run_doc, jobs_doc):
        d = tmp_path / "run"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        (d / "run.json").write_text(json.dumps(run_doc))
        (d / "jobs.json").write_text(json.dumps(jobs_doc))
        try:
            res = read_run_folder(d)
        except Rejected as exc:
            assert str(exc)
            return
        assert isinstance(res.run[0], int)
        assert all(isinstance(j[1], (int, type(None))) for j in res.jobs)

    check()


def test_a_run_read_again_lists_its_problems_once(tmp_path):
    """A log that arrives late makes the run be read again; the problems of its logs.zip are listed once."""
    land = tmp_path / "landing"
    run = land / "ci" / "github-actions" / "42"
    write_run(run, layout="zip")                 # its logs.zip has an escaping and a symlink member
    wh = tmp_path / "w.duckdb"
    ingest(land, wh, progress=lambda m: None)
    (run / "logs" / "deploy-production").mkdir(parents=True)
    (run / "logs" / "deploy-production" / "9_Late step.txt").write_text("2026-03-02T11:30:00.0000000Z done\n")
    assert ingest(land, wh, progress=lambda m: None).new_files == 1
    con = duckdb.connect(str(wh), read_only=True)
    rows = con.execute("SELECT path, count(*) FROM ingest_errors GROUP BY path").fetchall()
    assert rows and all(n == 1 for _, n in rows), rows
