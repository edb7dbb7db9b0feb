"""CI events from job logs as GitHub Actions really writes them.

Two layers, each with the expected events written out by hand from reading the log:
- own fixtures (ifc_scan_tests/fixtures/joblogs/), one per construct, so a user's clone tests them;
- the real job logs of the shared corpus (skipped when the folder is absent).
An expected event is (kind, line, image reference, digest, status, masked): the line is the log line a
reader would point an auditor to (a build's first export line, a push's digest line, a deploy's command).
"""

import json
import re
from pathlib import Path

import pytest

from ifc_scan.ingest.gha_log import classify
from ifc_scan.ingest.github_actions import read_run_folder

FIXTURES = Path(__file__).parent / "fixtures" / "joblogs"


def sha(c: str) -> str:
    return "sha256:" + c * 64


def read_log(tmp_path, text_or_path, run: dict | None = None, name="job.txt", jobs: dict | None = None):
    d = tmp_path / "run"
    (d / "logs").mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"id": 1, **(run or {})}))
    if jobs is not None:
        (d / "jobs.json").write_text(json.dumps(jobs))
    data = text_or_path.read_bytes() if isinstance(text_or_path, Path) else text_or_path.encode()
    (d / "logs" / name).write_bytes(data)
    return read_run_folder(d)


def summary(res):
    return [(e.kind, e.line_no, e.image_ref, e.digest, e.status, e.masked) for e in res.events]


# --- own fixtures: one construct each -----------------------------------------------------------------

def test_container_action_built_in_set_up_job_is_not_a_project_build(tmp_path):
    res = read_log(tmp_path, FIXTURES / "container-action-setup.log")
    # by hand: the trivy-action image built by the runner (lines 7-17, "Set up job") is no build; the
    # action's scan is the one event, its image from the with: block; the action's own "Running trivy
    # with options" line (30) is part of that scan, not a second one.
    assert summary(res) == [("scan", 22, "ghcr.io/acme/api:1.4.2", None, "ok", False)]
    (scan,) = res.events
    assert (scan.scope_severity, scan.scan_output, scan.lineage) == ("CRITICAL,HIGH", "trivy-api.json", "ghcr.io/acme/api")
    assert any("runner's own set-up" in i.reason and i.reason.startswith("2 ") for i in res.issues)


def test_build_push_action_load_through_docker_container_driver(tmp_path):
    res = read_log(tmp_path, FIXTURES / "bpa-load-docker-container.log")
    # by hand: no "naming to" line; the image is the --tag of the logged buildx command (line 16), the
    # build's first export line is 20; the QEMU set-up's docker pull/save of tonistiigi/binfmt is no event
    assert summary(res) == [("build", 20, "ghcr.io/acme/worker:pr-57", "sha256:2c3b6f8a0e5d4c1b9a8f7e6d5c4b3a2918f7e6d5c4b3a2918f7e6d5c4b3a2910",
                             "ok", False)]
    assert res.events[0].image_id == "sha256:9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d"
    assert res.events[0].lineage == "ghcr.io/acme/worker"


def test_legacy_builder_and_a_denied_push_in_the_2021_format(tmp_path):
    res = read_log(tmp_path, FIXTURES / "legacy-denied-push.log")
    # by hand: Successfully built 4f5e6d7c8b9a (line 26) tagged acme/billing:2.0.1; the push of
    # docker.io/acme/billing ends in "denied" (line 32): a failed push, never a push
    assert summary(res) == [("build", 26, "acme/billing:2.0.1", None, "ok", False),
                            ("push", 32, "docker.io/acme/billing", None, "failed", False)]
    assert "4f5e6d7c8b9a" in res.events[0].detail and res.events[0].step_name == "Build"
    assert "denied" in res.events[1].detail


def test_failed_multi_platform_build_is_recorded_failed(tmp_path):
    res = read_log(tmp_path, FIXTURES / "multiplatform-failed.log")
    # by hand: #12 fails (line 11), buildx fails; one build of ghcr.io/acme/edge (two tags, one image), failed
    assert summary(res) == [("build", 11, "ghcr.io/acme/edge:1.0.0", None, "failed", False)]
    assert "ghcr.io/acme/edge:latest" in res.events[0].detail


def test_bake_targets_and_compose_build(tmp_path):
    res = read_log(tmp_path, FIXTURES / "bake-and-compose.log")
    # by hand: bake exports api (#21, first export line 12) and worker (#22, line 20) and pushes both
    # (16 and 23; the " 0.5s done" repeat of 16 is the same push); compose builds shop-web (#9, line 32)
    assert summary(res) == [
        ("build", 12, "ghcr.io/acme/api:2.3.0", sha("1"), "ok", False),
        ("push", 16, "ghcr.io/acme/api:2.3.0", sha("1"), "ok", False),
        ("build", 20, "ghcr.io/acme/worker:2.3.0", sha("3"), "ok", False),
        ("push", 23, "ghcr.io/acme/worker:2.3.0", sha("3"), "ok", False),
        ("build", 32, "docker.io/library/shop-web", None, "ok", False)]
    assert [e.image_id for e in res.events if e.kind == "build"] == [sha("2"), sha("4"), sha("5")]


def test_direct_trivy_command_with_flags_and_table_totals(tmp_path):
    res = read_log(tmp_path, FIXTURES / "trivy-cli-table.log")
    # by hand: setup-trivy (line 2) installs, no scan; the scan is the step header (7) = echoed line (8);
    # trivy's own "2026-06-02T07:00:03Z INFO" lines are not runner timestamps; the table has two
    # targets: 2 (HIGH 1, CRITICAL 1) + 1 (HIGH 1) = 3 (HIGH 2, CRITICAL 1)
    assert summary(res) == [("scan", 7, "registry.acme.io/pay/ledger:7.1.0", None, "ok", False)]
    s = res.events[0]
    assert (s.scope_severity, s.scope_ignore_unfixed, s.scope_trivyignores) == ("HIGH,CRITICAL", True, ".trivyignore.yaml")
    assert "3 in 2 target(s) (HIGH: 2, CRITICAL: 1)" in s.detail


def test_gh_run_view_layout_with_crlf_and_a_masked_registry(tmp_path):
    res = read_log(tmp_path, FIXTURES / "gh-run-view-crlf.log", name="run.log")
    # by hand: job release, step "Build and push": manifest list 888... is the pushed digest (line 8 is
    # the first export); job mirror pushes to a registry whose account id is masked (line 19): recorded,
    # masked, no lineage; the "naming to" in the post step (21) is the runner's cleanup, not a build
    assert summary(res) == [
        ("build", 8, "ghcr.io/acme/gateway:3.0.0", sha("8"), "ok", False),
        ("push", 11, "ghcr.io/acme/gateway:3.0.0", sha("8"), "ok", False),
        ("push", 19, "***.dkr.ecr.eu-west-1.amazonaws.com/gateway:3.0.0", sha("9"), "ok", True)]
    assert [e.job_name for e in res.events] == ["release", "release", "mirror"]
    assert [e.step_name for e in res.events] == ["Build and push", "Build and push", "Push mirror"]
    assert res.events[2].lineage is None and "masked" in res.events[2].detail


def test_jobs_json_gives_step_identity_and_conclusion(tmp_path):
    jobs = {"jobs": [{"id": 7, "run_id": 1, "name": "scan", "conclusion": "failure", "steps": [
        {"name": "Set up job", "number": 1, "conclusion": "success",
         "started_at": "2026-03-02T10:00:00Z", "completed_at": "2026-03-02T10:00:09Z"},
        {"name": "Checkout", "number": 2, "conclusion": "success",
         "started_at": "2026-03-02T10:00:09Z", "completed_at": "2026-03-02T10:00:10Z"},
        {"name": "Scan image", "number": 3, "conclusion": "failure",
         "started_at": "2026-03-02T10:00:10Z", "completed_at": "2026-03-02T10:00:30Z"}]}]}
    res = read_log(tmp_path, FIXTURES / "container-action-setup.log", jobs=jobs, name="scan.txt")
    (scan,) = res.events
    # the gate result is the step's conclusion in jobs.json; the scan is dated by the step's completion
    assert (scan.step_number, scan.step_name, scan.outcome, scan.job_id) == (3, "Scan image", "failure", 7)
    assert scan.time.isoformat() == "2026-03-02T10:00:30"


def test_unresolved_and_resolved_variables(tmp_path):
    log = "\n".join([
        "2026-03-02T11:00:00.0000000Z ##[group]Run kubectl set image deployment/api api=ghcr.io/acme/api:$GITHUB_SHA",
        "2026-03-02T11:00:00.0000000Z \x1b[36;1mkubectl set image deployment/api api=ghcr.io/acme/api:$GITHUB_SHA\x1b[0m",
        "2026-03-02T11:00:00.0000000Z \x1b[36;1mkubectl set image deployment/web web=ghcr.io/acme/web:${WEB_TAG}\x1b[0m",
        "2026-03-02T11:00:00.0000000Z \x1b[36;1mkubectl set image deployment/job job=$REGISTRY/job:1\x1b[0m",
        "2026-03-02T11:00:00.0000000Z shell: /usr/bin/bash -e {0}",
        "2026-03-02T11:00:00.0000000Z env:",
        "2026-03-02T11:00:00.0000000Z   REGISTRY: ***",
        "2026-03-02T11:00:00.0000000Z ##[endgroup]",
        "2026-03-02T11:00:02.0000000Z deployment.apps/api image updated"])
    res = read_log(tmp_path, log, run={"head_sha": "0123abc"})
    # by hand: $GITHUB_SHA from run.json; ${WEB_TAG} is set nowhere the log shows; $REGISTRY is a secret
    assert [(e.image_ref, e.lineage, e.masked) for e in res.events] == [
        ("ghcr.io/acme/api:0123abc", "ghcr.io/acme/api", False),
        ("ghcr.io/acme/web:${WEB_TAG}", None, False),
        ("***/job:1", None, True)]
    assert "unresolved variable $WEB_TAG" in res.events[1].detail


def test_deploy_by_tag_takes_the_digest_the_run_pushed(tmp_path):
    log = "\n".join([
        "2026-03-02T10:00:00.0000000Z ##[group]Run docker push ghcr.io/acme/api:1.2.0",
        "2026-03-02T10:00:00.0000000Z ##[endgroup]",
        "2026-03-02T10:00:01.0000000Z The push refers to repository [ghcr.io/acme/api]",
        f"2026-03-02T10:00:02.0000000Z 1.2.0: digest: {sha('e')} size: 1573",
        "2026-03-02T10:01:00.0000000Z ##[group]Run kubectl create deployment api --image=ghcr.io/acme/api:1.2.0",
        "2026-03-02T10:01:00.0000000Z ##[endgroup]",
        "2026-03-02T10:01:01.0000000Z deployment.apps/api created",
        "2026-03-02T10:02:00.0000000Z ##[group]Run kubectl rollout status deployment/web && kubectl set image deployment/web web=ghcr.io/acme/web:9",
        "2026-03-02T10:02:00.0000000Z ##[endgroup]",
        "2026-03-02T10:03:00.0000000Z error: deployment \"web\" exceeded its progress deadline"])
    res = read_log(tmp_path, log)
    assert summary(res) == [("push", 4, "ghcr.io/acme/api:1.2.0", sha("e"), "ok", False),
                            ("deploy", 5, "ghcr.io/acme/api:1.2.0", sha("e"), "ok", False),
                            ("deploy", 8, "ghcr.io/acme/web:9", None, "failed", False)]
    assert "push of ghcr.io/acme/api:1.2.0 at line 4" in res.events[1].detail


def test_a_deploy_is_a_deploy_command_or_a_notice_of_a_deploy_step(tmp_path):
    digest = sha("f")
    log = "\n".join([
        "2026-03-02T10:00:00.0000000Z ##[group]Run make image",
        "2026-03-02T10:00:00.0000000Z ##[endgroup]",
        f"2026-03-02T10:00:05.0000000Z ::notice title=deploy::ghcr.io/acme/api@{digest} env=production",
        f"2026-03-02T10:00:06.0000000Z Next: run kubectl set image deployment/api api=ghcr.io/acme/api@{digest}",
        "2026-03-02T10:01:00.0000000Z ##[group]Run ./scripts/deploy.sh",
        "2026-03-02T10:01:00.0000000Z ##[endgroup]",
        f"2026-03-02T10:01:05.0000000Z ::notice title=deploy::ghcr.io/acme/api@{digest} env=production"])
    res = read_log(tmp_path, log)
    # by hand: the build step's notice (3) is no deploy, nor is a sentence that quotes kubectl (4); the
    # notice of the step that runs deploy.sh (7) is the one production deploy
    assert [(e.kind, e.line_no, e.environment, e.digest) for e in res.events] == [("deploy", 7, "production", digest)]
    assert [i.line_no for i in res.issues if "outside a deploy step" in i.reason] == [3]


def as_gh_run_view(text: str, job="build") -> str:
    """The same log as `gh run view --log` prints it: each line prefixed by its job and its step's name
    (the runner's set-up is "Set up job", its cleanup "Post ..." as gh names them)."""
    out = []
    for raw, line in zip(text.splitlines(), classify(text.splitlines())):
        step = {"setup": "Set up job", "post": "Post job cleanup"}.get(line.role, f"{line.section} {line.step}")
        out.append(f"{job}\t{step}\t{raw}")
    return "\n".join(out)


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.log") if "gh-run-view" not in p.name))
def test_the_same_log_in_every_layout_gives_the_same_events(tmp_path, name):
    """Raw per-job log, CRLF, `gh run view --log` columns: one set of events."""
    text = (FIXTURES / name).read_text()
    base = summary(read_log(tmp_path / "lf", text))
    crlf = summary(read_log(tmp_path / "crlf", text.replace("\n", "\r\n")))
    gh = summary(read_log(tmp_path / "gh", as_gh_run_view(text)))
    assert base and crlf == base and gh == base


def test_colour_codes_in_every_form_are_removed():
    lines = ["2026-01-01T00:00:00.0000000Z \x1b[36;1mdocker build .\x1b[0m",
             "2026-01-01T00:00:00.0000000Z \u241b[36;1mdocker build .\u241b[0m",
             "2026-01-01T00:00:00.0000000Z [36;1mdocker build .[0m",
             "2026-01-01T00:00:00.0000000Z"]          # a blank line whose trailing space was stripped: bare Z
    assert [line.text for line in classify(lines)] == ["docker build ."] * 3 + [""]
    assert all(line.time is not None for line in classify(lines))


# --- the real job logs of the shared corpus ----------------------------------------------------------

REAL = {
    # build-push-action v5, push through the docker-container driver; the Docker Hub user is a secret
    "joblog__1-push__BaryshnikovNV-Diploma-workshop-in-Yandex.Cloud__build-push-action-v5.log": ({}, [
        ("build", 586, "***/nginx:1.0.0", "sha256:94b77810d32923edbc9cc486122b5b0af25a1984dc4f510b68d2d3dce15a752b", "ok", True),
        ("push", 599, "docker.io/***/nginx:1.0.0", "sha256:94b77810d32923edbc9cc486122b5b0af25a1984dc4f510b68d2d3dce15a752b", "ok", True)]),
    # build-push-action v6 from a Git context; QEMU set-up loads, pulls and saves tonistiigi/binfmt: no event
    "joblog__1-push__jesuuslopeez-2526_DAW_u2_springboot__build-push-action-v6-gitcontext.log": ({}, [
        ("build", 916, "jesuuslopeez/springbootu2:latest", "sha256:8938b407bfafccf3a538becee6eaa486dccbe8348c671e9cb006df20b4c0a3d5", "ok", False),
        ("push", 922, "docker.io/jesuuslopeez/springbootu2:latest", "sha256:8938b407bfafccf3a538becee6eaa486dccbe8348c671e9cb006df20b4c0a3d5", "ok", False)]),
    # three BuildKit docker builds, three docker pushes, kustomize deploys; the project id is a secret
    "joblog__2-cli-bk-build+push+5-deploy__peltomaa-kubernetes-course__gke-3images-kustomize-rollout.log": (
        {"head_sha": "ee29c5b4f7135cc0ed7ad009ad5929306216d337", "head_branch": "main"}, [
            ("build", 291, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-app:main-ee29c5b4f7135cc0ed7ad009ad5929306216d337", None, "ok", True),
            ("build", 350, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend:main-ee29c5b4f7135cc0ed7ad009ad5929306216d337", None, "ok", True),
            ("build", 408, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend-worker:main-ee29c5b4f7135cc0ed7ad009ad5929306216d337", None, "ok", True),
            ("push", 455, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-app:main-ee29c5b4f7135cc0ed7ad009ad5929306216d337",
             "sha256:daf742ab47d4de1ad15c04aae586c11ec19914fccd225f084fb85dcca9669ec8", "ok", True),
            ("push", 506, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend:main-ee29c5b4f7135cc0ed7ad009ad5929306216d337",
             "sha256:0a00b67093ed37455298272f0deb4f30484797feb40e2924f041ec64b7f02de7", "ok", True),
            ("push", 557, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend-worker:main-ee29c5b4f7135cc0ed7ad009ad5929306216d337",
             "sha256:e29fd16bc06cb2b0f59c82fd4493523e7711f8fab95b5db0fcb4589f950e7189", "ok", True),
            ("deploy", 582, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-app:main-ee29c5b4f7135cc0ed7ad009ad5929306216d337", None, "ok", True),
            ("deploy", 616, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend:main-ee29c5b4f7135cc0ed7ad009ad5929306216d337", None, "ok", True),
            ("deploy", 617, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend-worker:main-ee29c5b4f7135cc0ed7ad009ad5929306216d337", None, "ok", True)]),
    # the same pipeline on a branch; braces masked (`bash -e ***0***`); "writing image" printed twice (330, 331)
    "joblog__2-cli-bk-build+push+5-deploy__peltomaa-kubernetes-course__gke-brace-masking.log": (
        {"head_sha": "3ae4eea759e53cba27221bd73c1e0ffee14b2c39", "head_branch": "feat-add-crud-app-title"}, [
            ("build", 330, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-app:feat-add-crud-app-title-3ae4eea759e53cba27221bd73c1e0ffee14b2c39", None, "ok", True),
            ("build", 391, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend:feat-add-crud-app-title-3ae4eea759e53cba27221bd73c1e0ffee14b2c39", None, "ok", True),
            ("build", 450, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend-worker:feat-add-crud-app-title-3ae4eea759e53cba27221bd73c1e0ffee14b2c39", None, "ok", True),
            ("push", 498, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-app:feat-add-crud-app-title-3ae4eea759e53cba27221bd73c1e0ffee14b2c39",
             "sha256:dfd5201604551585168c6ec52bf2ae8f9ed0f4e06da4502b4e7e6932efe7e9b2", "ok", True),
            ("push", 550, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend:feat-add-crud-app-title-3ae4eea759e53cba27221bd73c1e0ffee14b2c39",
             "sha256:21ae9a1687103b712b5213572f859495d7c499337c3ac1f189ff12d2d7789691", "ok", True),
            ("push", 602, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend-worker:feat-add-crud-app-title-3ae4eea759e53cba27221bd73c1e0ffee14b2c39",
             "sha256:8540735de085ac750db19d24b1a567eac36fa81190f6dc2d50b10eabad9ea81b", "ok", True),
            ("deploy", 670, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-app:feat-add-crud-app-title-3ae4eea759e53cba27221bd73c1e0ffee14b2c39", None, "ok", True),
            ("deploy", 704, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend:feat-add-crud-app-title-3ae4eea759e53cba27221bd73c1e0ffee14b2c39", None, "ok", True),
            ("deploy", 705, "europe-north1-docker.pkg.dev/***/kubernetes-course/crud-backend-worker:feat-add-crud-app-title-3ae4eea759e53cba27221bd73c1e0ffee14b2c39", None, "ok", True)]),
    # BuildKit docker build of nginx:latest, then docker tag + docker push of the masked ***/nginx:latest
    "joblog__2-cli-bk-build+push__BaryshnikovNV-Diploma-workshop-in-Yandex.Cloud__docker-build-docker-push.log": ({}, [
        ("build", 159, "docker.io/library/nginx:latest", None, "ok", False),
        ("push", 189, "docker.io/***/nginx:latest", "sha256:8cd293977cce82bb596032eafe96306288417617535377ae630872752ec5e266", "ok", True)]),
    # the same workflow, another run; ESC shown as U+241B; the secret is a substring of the owner name
    "joblog__2-cli-bk-build+push__sash3939-Diplom__docker-build-push-maskedpartial.log": ({}, [
        ("build", 174, "docker.io/library/nginx:latest", None, "ok", False),
        ("push", 204, "docker.io/***/nginx:latest", "sha256:759c34cc8bbf237ff2e55d2f8c413d4f28a5d0f6dbc8d4cd75bb4dbd7c9b3ceb", "ok", True)]),
    # 2021 runner, legacy builder with two -t tags (one image), two docker push in the same step
    "joblog__2-legacy__gabizou-ActionsReceiverDummy__docker-build-step-push-x2.log": ({}, [
        ("build", 189, "ghcr.io/gabizou/golang-ci-actions:1.15", None, "ok", False),
        ("push", 206, "ghcr.io/gabizou/golang-ci-actions:latest", "sha256:d1b20d86a87def89612a8842839ec5131aba5b75d961a57de808baa910118855", "ok", False),
        ("push", 221, "ghcr.io/gabizou/golang-ci-actions:1.15", "sha256:d1b20d86a87def89612a8842839ec5131aba5b75d961a57de808baa910118855", "ok", False)]),
    # kubectl create deployment by tag; rollout finished
    "joblog__5-deploy__BaryshnikovNV-Diploma-workshop-in-Yandex.Cloud__kubectl-rollout.log": ({}, [
        ("deploy", 143, "baryshnikovnv/nginx:1.0.0", None, "ok", False)]),
    "joblog__5-deploy__sash3939-Diplom__yc-kubectl-brace-masking.log": ({}, [
        ("deploy", 203, "sash39/nginx:1.0.6", None, "ok", False)]),
    # web-UI copy: no timestamps, bare "Run" headers; trivy-action 0.28 composite; table totals 0 + 1 + 2
    "gha-log-uicopy__oddessentials-odd-ai-reviewers__trivy-action-0.28.0.txt": ({}, [
        ("scan", 1, "odd-ai-reviewers-router:ci", None, "ok", False)]),
    # gh run view --log-failed inside a markdown report: set up failed (setup-trivy not found), no step ran
    "gha-ghcli-logfailed__burhop-wright__ci_failures.md": ({}, []),
}


@pytest.mark.corpus
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_job_log(corpus, tmp_path, name):
    path = corpus / "github-actions" / name
    run, expected = REAL[name]
    res = read_log(tmp_path, path, run=run)
    assert summary(res) == expected
    if name.startswith("gha-log-uicopy"):
        assert "3 in 3 target(s) (HIGH: 3, CRITICAL: 0)" in res.events[0].detail
    # every masked event says so and has no lineage; every unmasked image reference has one
    for e in res.events:
        assert (e.lineage is None) == e.masked, e
        assert not e.masked or "masked" in e.detail
    # no real log leaves an event-like line unexplained
    assert [i for i in res.issues if i.reason.startswith("looks like")] == []


@pytest.mark.corpus
def test_real_logs_name_their_build_and_push_images(corpus, tmp_path):
    """Of the issue's first example (build-push-action then trivy-action), the facts a reader finds:
    the image name, its digest and its config digest, none left empty."""
    res = read_log(tmp_path, corpus / "github-actions" /
                   "joblog__1-push__jesuuslopeez-2526_DAW_u2_springboot__build-push-action-v6-gitcontext.log")
    build = next(e for e in res.events if e.kind == "build")
    assert (build.lineage, build.image_id) == ("docker.io/jesuuslopeez/springbootu2",
                                               "sha256:473fca107cdbfb069daef617cd79803833c3e1532e2d9dabe90d8a75b418d9bf")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", build.digest)


# --- through ingest: what the later stages see ---------------------------------------------------------

def test_ingest_counts_only_images_the_logs_prove(tmp_path):
    import duckdb

    from ifc_scan.ingest.runner import ingest
    from ifc_scan.kpis.stage import warehouse_quality
    from ifc_scan.lifecycle.observations import load

    run = tmp_path / "landing" / "ci" / "github-actions" / "77"
    (run / "logs").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"id": 77, "created_at": "2026-06-03T09:59:00Z"}))
    for i, name in enumerate(["container-action-setup.log", "legacy-denied-push.log", "gh-run-view-crlf.log"]):
        (run / "logs" / f"{i}_{name[:-4]}.txt").write_bytes((FIXTURES / name).read_bytes())
    wh = tmp_path / "w.duckdb"
    ingest(tmp_path / "landing", wh, progress=lambda m: None)
    con = duckdb.connect(str(wh))
    obs = load(con, with_findings=False)
    # by hand: builds acme/billing (legacy) and acme/gateway; the trivy-action image built in set-up is
    # none; pushes: gateway only (billing's was denied, the ECR mirror's account is masked)
    assert sorted(b["lineage"] for b in obs.builds) == ["docker.io/acme/billing", "ghcr.io/acme/gateway"]
    assert [p["lineage"] for p in obs.pushes] == ["ghcr.io/acme/gateway"]
    q = warehouse_quality(con)
    assert (q["ci_masked_events"], q["ci_failed_events"], q["ci_unresolved_events"]) == (1, 1, 0)

    # a warehouse read by an older log reader is read again on the next ingest, nothing else changing
    con.execute("UPDATE derived_meta SET value = '1' WHERE key = 'ci_reader_version'")
    con.execute("DELETE FROM ci_events")
    con.close()
    ingest(tmp_path / "landing", wh, progress=lambda m: None)
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("SELECT count(*) FROM ci_events").fetchone()[0] == 6


# --- any input: the reader never fails and never invents ----------------------------------------------

def _fixture_lines():
    return [line for p in sorted(FIXTURES.glob("*.log")) for line in p.read_text().splitlines()]


def test_any_mix_of_log_lines_reads_without_error_and_every_event_points_at_its_evidence():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ifc_scan.ingest.gha_events import JobLogReader, StepContext
    from ifc_scan.ingest.github_actions import load_patterns

    pool = _fixture_lines()
    line = st.one_of(st.sampled_from(pool), st.text(max_size=80),
                     st.sampled_from(pool).map(lambda s: s.replace("sha256:", "sha256:***")))

    @settings(max_examples=150, deadline=None)
    @given(st.lists(line, max_size=60))
    def check(lines):
        reader = JobLogReader(1, "job.txt", load_patterns(), lambda job: (None, job),
                              lambda job, ln: StepContext(ln.section + 1, ln.step, None, None), {})
        classified = list(classify(lines))
        for ln in classified:
            reader.feed(ln)
        reader.close()
        texts = {ln.line_no: ln.text for ln in classified}
        for e in reader.events:
            assert e.kind in ("build", "push", "scan", "deploy", "verify") and e.status in ("ok", "failed")
            assert e.line_no in texts
            if e.lineage is not None:
                assert not e.masked and "***" not in (e.image_ref or "")
            if e.digest is not None:
                assert "***" not in e.digest and len(e.digest) == 71

    check()
