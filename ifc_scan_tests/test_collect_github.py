"""The GitHub collector against a local HTTP server (127.0.0.1) that serves the REST shapes."""

import io
import json
import threading
import time
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest

from ifc_scan.collect.github import collect
from ifc_scan.collect.http import LOOPBACK_ENV
from ifc_scan.ingest.runner import ingest

TOKEN = "ghp_TESTTOKEN_do_not_leak_123"
REPO = "acme/app"
CFG = "sha256:" + "a" * 64


def zip_of(files: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def run_obj(rid, day, status="completed"):
    return {"id": rid, "name": "image-scan", "path": ".github/workflows/image-scan.yml", "event": "push",
            "status": status, "conclusion": "success" if status == "completed" else None, "run_attempt": 1,
            "created_at": f"2026-03-{day:02d}T10:00:00Z", "run_started_at": f"2026-03-{day:02d}T10:00:00Z",
            "head_branch": "main", "html_url": f"https://github.com/{REPO}/actions/runs/{rid}"}


def jobs_obj(rid, day):
    return {"total_count": 1, "jobs": [{"id": rid * 10, "run_id": rid, "run_attempt": 1, "name": "build",
            "status": "completed", "conclusion": "success", "started_at": f"2026-03-{day:02d}T10:00:00Z",
            "completed_at": f"2026-03-{day:02d}T10:05:00Z", "steps": [
                {"name": "Build", "number": 1, "status": "completed", "conclusion": "success",
                 "started_at": f"2026-03-{day:02d}T10:00:00.000Z", "completed_at": f"2026-03-{day:02d}T10:02:00.000Z"}]}]}


REPORT = json.dumps({"SchemaVersion": 2, "ArtifactName": "ghcr.io/acme/app:1", "ArtifactType": "container_image",
                     "Metadata": {"ImageID": CFG, "RepoTags": ["ghcr.io/acme/app:1"]},
                     "Results": [{"Target": "x", "Class": "os-pkgs", "Vulnerabilities": [
                         {"VulnerabilityID": "CVE-1", "PkgName": "p", "Severity": "HIGH"}]}]})


class Fake:
    """State of the fake GitHub: runs 1-5 (created 03-01..03-05); run 4 is in progress until `complete_4`."""

    def __init__(self):
        self.requests, self.auth_to_blob, self.paths = [], [], []
        self.run4_done = False
        self.rate_limited = self.failed_502 = False
        self.jobs_body = None      # when set, every jobs request is answered with this (a real recording)
        self.broken_logs = set()   # run ids whose log archive is served as garbage

    def runs(self):
        return [run_obj(1, 1), run_obj(2, 2), run_obj(3, 3), run_obj(4, 4, "completed" if self.run4_done else "in_progress"),
                run_obj(5, 5)]


def make_handler(fake: Fake, api_port_ref: dict):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def send(self, code, body=b"", ctype="application/json", headers=None):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(u.query))
            host = self.headers.get("Host", "")
            fake.requests.append((host, self.path))
            blob = f"http://localhost:{api_port_ref['port']}/blob"
            if u.path.startswith("/blob/"):
                if self.headers.get("Authorization"):
                    fake.auth_to_blob.append(self.path)
                name = u.path.rsplit("/", 1)[1]
                rid = int(name.split("-")[1].split(".")[0])
                if name.startswith("logs-") and rid in fake.broken_logs:
                    return self.send(200, b"<html>an error page, not a zip</html>", "application/zip")
                if name.startswith("logs-"):
                    return self.send(200, zip_of({"build/1_Build.txt":
                        f"2026-03-0{rid}T10:01:00.0000000Z #9 writing image {CFG} done"}), "application/zip")
                report = REPORT.replace("app:1", f"app:{rid}")      # each run's report is its own file
                if rid == 5:   # an artifact whose zip tries to escape the run folder
                    return self.send(200, zip_of({"trivy-results-app.json": report, "../../../escape.json": "{}"}),
                                     "application/zip")
                return self.send(200, zip_of({"trivy-results-app.json": report}), "application/zip")
            if not host.startswith("127.0.0.1"):
                return self.send(400, b"api must be addressed at its own host")
            m = u.path.split("/")
            if u.path.endswith("/workflows/image-scan.yml/runs"):
                if not fake.rate_limited:
                    fake.rate_limited = True
                    return self.send(403, b'{"message": "You have exceeded a secondary rate limit."}',
                                     headers={"Retry-After": "1"})
                runs = [r for r in fake.runs() if r["created_at"][:10] >= q.get("created", ">=0000")[2:]]
                page = int(q.get("page", "1"))
                chunk = runs[(page - 1) * 2: page * 2]
                headers = {}
                if page * 2 < len(runs):
                    nq = urllib.parse.urlencode({**q, "page": str(page + 1)})
                    headers["Link"] = f'<http://{host}{u.path}?{nq}>; rel="next", <http://{host}{u.path}?x>; rel="last"'
                return self.send(200, json.dumps({"total_count": len(runs), "workflow_runs": chunk}).encode(), headers=headers)
            if "/workflows/" in u.path:
                return self.send(200, b'{"total_count": 0, "workflow_runs": []}')
            rid = int(m[6])
            day = rid if rid < 29 else 1   # synthetic runs 1-5 are created on 03-0<rid>
            if u.path.endswith("/jobs"):
                if fake.jobs_body is not None:
                    return self.send(200, fake.jobs_body)
                if rid == 1 and not fake.failed_502:
                    fake.failed_502 = True
                    return self.send(502, b"bad gateway")
                return self.send(200, json.dumps(jobs_obj(rid, day)).encode())
            if u.path.endswith("/logs"):
                if rid == 3:
                    return self.send(404, b'{"message": "Not Found"}')       # logs expired at source
                return self.send(302, headers={"Location": f"{blob}/logs-{rid}.zip?sig=SECRET"})
            if u.path.endswith("/artifacts"):
                arts = [{"id": rid * 100, "name": "trivy-results-app", "expired": False,
                         "archive_download_url": f"http://{host}/repos/{REPO}/actions/artifacts/{rid * 100}/zip"},
                        {"id": rid * 100 + 1, "name": "trivy-results-old", "expired": True,
                         "archive_download_url": f"http://{host}/repos/{REPO}/actions/artifacts/{rid * 100 + 1}/zip"},
                        {"id": rid * 100 + 2, "name": "coverage-html", "expired": False,
                         "archive_download_url": f"http://{host}/repos/{REPO}/actions/artifacts/{rid * 100 + 2}/zip"}]
                return self.send(200, json.dumps({"total_count": len(arts), "artifacts": arts}).encode())
            if u.path.endswith("/zip"):
                art = int(m[6])
                if art == 300:
                    return self.send(410, b'{"message": "Artifact has expired"}')
                return self.send(302, headers={"Location": f"{blob}/art-{art // 100}.zip?sig=SECRET"})
            return self.send(404)
    return H


@pytest.fixture(autouse=True)
def no_loopback_switch(monkeypatch):
    """Without IFC_SCAN_ALLOW_LOOPBACK_HTTP: a plain-http 127.0.0.1 API base is the explicit configuration
    that lets these tests speak plain http to loopback."""
    monkeypatch.delenv(LOOPBACK_ENV, raising=False)


@pytest.fixture
def server():
    fake, ref = Fake(), {}
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(fake, ref))
    ref["port"] = httpd.server_address[1]
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield fake, f"http://127.0.0.1:{ref['port']}"
    httpd.shutdown()
    httpd.server_close()


def test_collects_incrementally_politely_and_safely(server, tmp_path, monkeypatch, capsys):
    fake, base = server
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    land, state = tmp_path / "landing", tmp_path / "state" / "github.json"
    waits, logs = [], []

    def run():
        return collect(REPO, land, state, base_url=base, sleep=waits.append, log=logs.append)

    s1 = run()
    # by hand: image-scan list 403 + retry + 2 more pages = 4; ci.yml and cd.yml lists 2;
    # run 1: jobs 502 + jobs, logs 302 + blob, artifacts list, artifact 302 + blob = 7;
    # run 2: 1 + 2 + 1 + 2 = 6; run 3: jobs, logs 404, artifacts list, artifact 410 = 4;
    # run 4 (in progress): jobs only = 1; run 5: 1 + 2 + 1 + 2 = 6.  Total 30.
    assert s1.requests == len(fake.requests) == 30
    assert (s1.collected, s1.in_progress, s1.runs_listed) == (4, 1, 5)
    assert waits[0] == 1.0 and s1.retries == 2                 # Retry-After honoured; the 502 retried once
    assert sorted(s1.expired) == ["1/trivy-results-old", "2/trivy-results-old", "3/logs", "3/trivy-results-app",
                                  "3/trivy-results-old", "5/trivy-results-old"]
    runs = land / "ci" / "github-actions"
    assert sorted(p.name for p in runs.iterdir()) == ["1", "2", "3", "4", "5"]
    assert sorted(p.relative_to(runs / "1").as_posix() for p in (runs / "1").rglob("*") if p.is_file()) == [
        "artifacts/trivy-results-app/trivy-results-app.json", "collect-notes.json", "jobs.json", "logs.zip", "run.json"]
    assert not (runs / "3" / "logs.zip").exists() and "logs" in json.loads((runs / "3" / "collect-notes.json").read_text())["expired_at_source"]
    assert not (runs / "4" / "logs.zip").exists()              # in progress: logs and artifacts come later
    notes5 = json.loads((runs / "5" / "collect-notes.json").read_text())
    assert notes5["refused_members"] == ["trivy-results-app: ../../../escape.json"]
    assert not list(tmp_path.rglob("escape.json"))
    st = json.loads(state.read_text())
    assert st == {"completed": [1, 2, 3, 5], "in_progress": [4], "since": "2026-03-04"}

    fake.requests.clear()
    fake.run4_done = True
    s2 = run()
    # listing from 03-04: image-scan 1 page (runs 4, 5), ci.yml, cd.yml = 3; run 5 skipped;
    # run 4 now complete: jobs, logs 302 + blob, artifacts list, artifact 302 + blob = 6.  Total 9.
    assert s2.requests == 9 and (s2.collected, s2.skipped_complete) == (1, 1)
    assert (runs / "4" / "logs.zip").is_file() and (runs / "4" / "artifacts" / "trivy-results-app").is_dir()
    fake.requests.clear()
    s3 = run()
    assert s3.requests == 3 and s3.collected == 0                # nothing already complete is fetched again

    # the token: sent to the API only, never to the download host, and written or logged nowhere
    assert fake.auth_to_blob == []
    everything = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert TOKEN.encode() not in everything and b"sig=SECRET" not in everything
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err + "".join(logs)
    assert not [p for p in runs.iterdir() if p.name.startswith(".")]   # no temporary folder left

    # the collected folder ingests with the CI reader as it is
    s = ingest(land, tmp_path / "w.duckdb", progress=lambda m: None)
    assert s.rejected == 0
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert con.execute("select count(*) from ci_runs").fetchone()[0] == 5
    assert con.execute("select count(*) from ci_events where kind='build'").fetchone()[0] == 4   # runs 1, 2, 4, 5
    assert con.execute("select count(distinct ci_run_id) from scans").fetchone()[0] == 4           # artifacts of 1, 2, 4, 5


@pytest.mark.corpus
def test_real_rest_shapes_are_collected_as_served(corpus, server, tmp_path, monkeypatch):
    """The real run and jobs recordings, served as the API would, come out byte-for-byte as JSON."""
    fake, base = server
    run = json.loads((corpus / "github-actions" / "pygithub__WorkflowRun.setUp__GET_actions_runs_N.json").read_text())
    jobs = json.loads((corpus / "github-actions" / "pygithub__WorkflowRun.test_jobs__GET_actions_runs_N_jobs.json").read_text())
    run["status"] = "in_progress"     # only run.json and jobs.json are fetched for a running run
    fake.runs = lambda: [run]
    fake.jobs_body = json.dumps(jobs).encode()
    collect(REPO, tmp_path / "landing", tmp_path / "state.json", base_url=base, workflows=("image-scan.yml",),
            sleep=lambda s: None)
    d = tmp_path / "landing" / "ci" / "github-actions" / str(run["id"])
    assert json.loads((d / "run.json").read_text()) == run
    assert json.loads((d / "jobs.json").read_text())["jobs"] == jobs["jobs"]
    s = ingest(tmp_path / "landing", tmp_path / "w.duckdb", progress=lambda m: None)
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    assert s.rejected == 0 and con.execute("select count(*) from ci_jobs").fetchone()[0] == len(jobs["jobs"])


def test_cli_collect_github(server, tmp_path, monkeypatch, capsys):
    from ifc_scan.cli import main
    fake, base = server
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    rc = main(["collect", "github", "--repo", REPO, "--landing", str(tmp_path / "l"), "--state", str(tmp_path / "s.json"),
               "--base-url", base, "--token-env", "MY_TOKEN", "--workflow", "ci.yml"])
    out = capsys.readouterr()
    # ci.yml has no run: one list request, nothing written, and the token in no output
    assert rc == 0 and json.loads(out.out)["requests"] == 1 and TOKEN not in out.out + out.err
    assert main(["collect", "github", "--repo", "not a repo", "--landing", str(tmp_path / "l"),
                 "--state", str(tmp_path / "s.json"), "--base-url", base]) == 1


def patched_zip(members: dict, method_of: dict | None = None, encrypted: set = frozenset()) -> bytes:
    """A zip whose members claim a compression method (9 = Deflate64) or the encrypted flag."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    data = bytearray(buf.getvalue())
    for name in set(method_of or {}) | set(encrypted):
        raw = name.encode()
        for sig, flag_at, method_at, name_at in ((b"PK\x03\x04", 6, 8, 30), (b"PK\x01\x02", 8, 10, 46)):
            i = data.find(sig)
            while i >= 0:
                if data[i + name_at:i + name_at + len(raw)] == raw:
                    if name in (method_of or {}):
                        data[i + method_at:i + method_at + 2] = method_of[name].to_bytes(2, "little")
                    if name in encrypted:
                        data[i + flag_at] |= 0x01
                i = data.find(sig, i + 1)
    return bytes(data)


def test_artifact_members_that_cannot_be_read_are_refused_one_by_one(tmp_path):
    from ifc_scan.collect.github import safe_extract_json
    body = patched_zip({"a.json": "{}", "b.json": "{}", "c.json": "{}"}, method_of={"b.json": 9}, encrypted={"c.json"})
    written, refused = safe_extract_json(body, tmp_path / "out")
    # by hand: a.json is stored plainly; b.json claims Deflate64, c.json is encrypted: both refused, named
    assert written == ["a.json"]
    assert [r.split(" ")[0] for r in refused] == ["b.json", "c.json"]
    assert "NotImplementedError" in refused[0] and "RuntimeError" in refused[1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json"]


def test_a_run_that_cannot_be_collected_does_not_stop_the_others(server, tmp_path, monkeypatch):
    fake, base = server
    fake.broken_logs = {2}
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    land, state = tmp_path / "landing", tmp_path / "state" / "github.json"
    s = collect(REPO, land, state, base_url=base, sleep=lambda s: None, log=lambda m: None)
    # by hand: run 2's log archive is garbage: run 2 is not collected (no folder, no half folder), the
    # other four complete runs are, the cursor is saved and lists run 2 again next time
    runs = land / "ci" / "github-actions"
    assert sorted(p.name for p in runs.iterdir()) == ["1", "3", "4", "5"]
    assert [f.split(":")[0] for f in s.failed] == ["run 2"] and "not a valid zip" in s.failed[0]
    saved = json.loads(state.read_text())
    assert 2 not in saved["completed"] and 2 in saved["in_progress"] and saved["since"] == "2026-03-02"
    fake.broken_logs = set()
    collect(REPO, land, state, base_url=base, sleep=lambda s: None, log=lambda m: None)
    assert (runs / "2" / "logs.zip").is_file()


def test_a_log_member_that_cannot_be_read_costs_only_that_log(tmp_path):
    from ifc_scan.ingest.github_actions import read_run_folder
    d = tmp_path / "7"
    d.mkdir()
    (d / "run.json").write_text(json.dumps(run_obj(7, 7)))
    (d / "logs.zip").write_bytes(patched_zip({
        "0_build.txt": f"2026-03-07T10:01:00.0000000Z #9 writing image {CFG} done\n"
                       "2026-03-07T10:01:00.0000000Z #9 naming to ghcr.io/acme/app:7 done",
        "1_deploy.txt": "2026-03-07T10:09:00.0000000Z anything"}, encrypted={"1_deploy.txt"}))
    res = read_run_folder(d)
    assert [(e.kind, e.image_ref) for e in res.events] == [("build", "ghcr.io/acme/app:7")]
    assert [(f, "RuntimeError" in r) for f, r in res.errors] == [("logs.zip", True)]


# ---- a hostile or broken server (issue 29): each attack is cut off, recorded, and the rest collected ----

from datetime import datetime  # noqa: E402

from ifc_scan.collect.http import Limits  # noqa: E402
from ifc_scan_tests.servers import Reply, finishes_within, scripted_http  # noqa: E402

NOW = datetime(2026, 3, 10, 12)


def github_answer(runs, overrides=None, listing=None):
    """GitHub's run shapes on one page (image-scan.yml; the other workflows have no run); `overrides` maps a
    path ending ("/runs/2/logs") to a function Seen -> Reply; `listing` replaces the runs list answer."""
    overrides = overrides or {}

    def answer(req):
        path = urllib.parse.urlsplit(req.path).path
        for ending, fn in overrides.items():
            if path.endswith(ending):
                return fn(req)
        if path.endswith("/workflows/image-scan.yml/runs"):
            return listing(req) if listing else Reply(body={"total_count": len(runs), "workflow_runs": runs})
        if "/workflows/" in path:
            return Reply(body={"total_count": 0, "workflow_runs": []})
        rid = path.split("/")[6]
        rid = int(rid) if rid.isdigit() else 0
        if path.endswith("/jobs"):
            return Reply(body=jobs_obj(rid, 1))
        if path.endswith("/logs"):
            return Reply(body=zip_of({"build/1_Build.txt": f"2026-03-01T10:01:00.0000000Z #9 writing image {CFG} done"}))
        if path.endswith("/artifacts"):
            return Reply(body={"total_count": 0, "artifacts": []})
        return Reply(404, {"message": "Not Found"})
    return answer


def landed(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("where", ["file", "ftp"])
def test_a_redirect_to_another_scheme_is_refused_and_nothing_local_lands(tmp_path, monkeypatch, where):
    """Run 1's log archive redirects to a local zip (file://) or to ftp:// with a password and a signed
    query: refused (https only, also after a redirect), named without its secrets; run 2 collected."""
    private = tmp_path / "private" / "evidence.zip"
    private.parent.mkdir()
    private.write_bytes(zip_of({"trivy-results-app.json": '{"LOCAL": "not evidence of this run"}'}))
    location = {"file": private.as_uri(), "ftp": "ftp://mallory:PASSW0RD@127.0.0.1:1/x.zip?sig=SECRETSIG"}[where]
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    runs = [run_obj(1, 1), run_obj(2, 2)]
    answer = github_answer(runs, {"/runs/1/logs": lambda req: Reply(302, headers={"Location": location})})
    land, state, logs = tmp_path / "landing", tmp_path / "state.json", []
    with scripted_http(answer) as (base, _seen):
        s = collect(REPO, land, state, base_url=base, sleep=lambda _s: None, log=logs.append, now=NOW)
    runs_dir = land / "ci" / "github-actions"
    assert sorted(p.name for p in runs_dir.iterdir()) == ["2"]
    assert [f.split(":")[0] for f in s.failed] == ["run 1"] and "only https URLs are followed" in s.failed[0]
    assert not any(private.read_bytes() in data or b"LOCAL" in data for data in landed(land).values())
    said = json.dumps(s.as_dict()) + "".join(logs) + state.read_text()
    assert "PASSW0RD" not in said and "SECRETSIG" not in said and "mallory" not in said
    assert json.loads(state.read_text())["completed"] == [2]


def test_a_download_link_to_another_scheme_is_a_bad_item_and_the_run_is_collected(tmp_path, monkeypatch):
    """Run 1 lists an artifact whose archive_download_url is file:// (a local zip): that artifact is
    named in collect-notes.json and skipped, nothing local lands, the run and its logs are collected."""
    private = tmp_path / "private" / "evidence.zip"
    private.parent.mkdir()
    private.write_bytes(zip_of({"trivy-results-app.json": '{"LOCAL": "not evidence of this run"}'}))
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    arts = {"total_count": 1, "artifacts": [{"id": 100, "name": "trivy-results-app", "expired": False,
                                             "archive_download_url": private.as_uri()}]}
    land = tmp_path / "landing"
    with scripted_http(github_answer([run_obj(1, 1)], {"/runs/1/artifacts": lambda req: Reply(body=arts)})) as (base, _s):
        s = collect(REPO, land, tmp_path / "state.json", base_url=base, sleep=lambda _s: None, now=NOW)
    run = land / "ci" / "github-actions" / "1"
    assert s.collected == 1 and (run / "logs.zip").is_file() and not (run / "artifacts").exists()
    notes = json.loads((run / "collect-notes.json").read_text())
    assert notes["bad_items"] == [f"artifact 'trivy-results-app': download URL refused {private.as_uri()}: "
                                  "only https URLs are followed"]
    assert not any(b"LOCAL" in data for data in landed(land).values())


@pytest.mark.parametrize("bad_id", ["../../../escape", "12abc", 2.5, True, -4, 2 ** 64])
def test_a_run_whose_id_is_not_an_integer_is_skipped_and_the_rest_collected(tmp_path, monkeypatch, bad_id):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    runs = [run_obj(1, 1), {**run_obj(7, 2), "id": bad_id}, run_obj(3, 3)]
    land, state = tmp_path / "landing", tmp_path / "state.json"
    with scripted_http(github_answer(runs)) as (base, seen):
        s = collect(REPO, land, state, base_url=base, sleep=lambda _s: None, now=NOW)
    # by hand: runs 1 and 3 collected, the bad one named and skipped, the cursor saved (newest complete: 03-03)
    assert sorted(p.name for p in (land / "ci" / "github-actions").iterdir()) == ["1", "3"]
    assert (s.collected, len(s.bad_items)) == (2, 1) and "is not an integer in 1..2**63-1" in s.bad_items[0]
    assert json.loads(state.read_text()) == {"completed": [1, 3], "in_progress": [], "since": "2026-03-03"}
    assert not [r for r in seen if "escape" in r.path] and not list(tmp_path.rglob("escape*"))


def test_a_run_dated_in_the_future_does_not_move_the_cursor_past_now(tmp_path, monkeypatch):
    """A run created 9999-12-31 would make every later listing ask for runs created since 9999."""
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    runs = [run_obj(1, 1), {**run_obj(9, 2), "created_at": "9999-12-31T00:00:00Z"}, run_obj(2, 2)]
    land, state = tmp_path / "landing", tmp_path / "state.json"
    with scripted_http(github_answer(runs)) as (base, seen):
        s = collect(REPO, land, state, base_url=base, sleep=lambda _s: None, now=NOW)
        assert json.loads(state.read_text())["since"] == "2026-03-02"
        assert [b.split(": ", 1)[0] for b in s.bad_items] == ["image-scan.yml"] and "after now" in s.bad_items[0]
        runs.append(run_obj(6, 6))          # a later run: listed from 03-02, so collected
        s = collect(REPO, land, state, base_url=base, sleep=lambda _s: None, now=NOW)
        assert s.collected == 1 and (land / "ci" / "github-actions" / "6" / "run.json").is_file()
        # a state file written before cursors were checked (since 9999-12-31): listed from the beginning
        state.write_text(json.dumps({"completed": [1, 2], "in_progress": [], "since": "9999-12-31"}))
        s = collect(REPO, land, state, base_url=base, sleep=lambda _s: None, now=NOW)
        listed = [r.query for r in seen if r.path.split("?")[0].endswith("image-scan.yml/runs")]
        assert "created" not in listed[-1] and s.collected == 1 and s.skipped_complete == 2
        assert json.loads(state.read_text())["since"] == "2026-03-06"
    assert not (land / "ci" / "github-actions" / "9").exists()


@pytest.mark.parametrize("retry_after, waited", [("-1", 60.0), ("nan", 60.0), ("inf", 60.0), ("1e3", 60.0),
                                                 ("99999999", 900.0), ("2", 2.0)])
def test_retry_after_is_validated_and_capped(tmp_path, monkeypatch, retry_after, waited):
    """By hand: delta-seconds are digits only; anything else waits the default 60 s; at most 900 s."""
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    asked = []

    def listing(req):
        asked.append(req.path)
        if len(asked) == 1:
            return Reply(429, {"message": "slow down"}, headers={"Retry-After": retry_after})
        return Reply(body={"total_count": 1, "workflow_runs": [run_obj(1, 1)]})
    waits = []

    def sleep(seconds):       # as strict as time.sleep about its argument, without the wait
        waits.append(seconds)
        time.sleep(min(seconds, 0.0))
    with scripted_http(github_answer([], listing=listing)) as (base, _seen):
        s = collect(REPO, tmp_path / "landing", tmp_path / "state.json", base_url=base, sleep=sleep, now=NOW)
    assert waits == [waited] and s.collected == 1 and s.waited_seconds == waited


def test_a_next_link_back_to_the_same_page_stops_and_holds_the_cursor(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)

    def listing(req):
        here = f"http://{req.headers['Host']}{req.path}"
        return Reply(body={"total_count": 2, "workflow_runs": [run_obj(1, 1), run_obj(2, 2)]},
                     headers={"Link": f'<{here}>; rel="next"'})
    state = tmp_path / "state.json"
    with scripted_http(github_answer([], listing=listing)) as (base, seen):
        s, _secs = finishes_within(20, collect, REPO, tmp_path / "landing", state, base_url=base,
                                   sleep=lambda _s: None, now=NOW)
    # one page read once; its runs collected; the listing named as incomplete, so the cursor stays
    assert sum(1 for r in seen if "image-scan.yml/runs" in r.path) == 1 and s.collected == 2
    assert s.incomplete == [f"image-scan.yml: Link: next of {base}/repos/{REPO}/actions/workflows/image-scan.yml/runs?… "
                            "points back to a page already read"]
    assert json.loads(state.read_text()) == {"completed": [1, 2], "in_progress": [], "since": None}


def test_endless_pages_stop_at_the_page_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)

    def listing(req):              # page n links to page n + 1, for ever, each with a new run
        n = int(req.query.get("page", "1"))
        nxt = urllib.parse.urlencode({**req.query, "page": str(n + 1)})
        return Reply(body={"total_count": 10 ** 6, "workflow_runs": [run_obj(n, 1)]},
                     headers={"Link": f'<http://{req.headers["Host"]}{req.path.split("?")[0]}?{nxt}>; rel="next"'})
    with scripted_http(github_answer([], listing=listing)) as (base, _seen):
        s, _secs = finishes_within(20, collect, REPO, tmp_path / "landing", tmp_path / "state.json", base_url=base,
                                   sleep=lambda _s: None, now=NOW, limits=Limits(max_pages=3))
    assert (s.runs_listed, s.collected) == (3, 3) and "page budget of 3 pages" in s.incomplete[0]


@pytest.mark.parametrize("what, limits", [("jobs", Limits(answer_seconds=1.0)), ("logs", Limits(request_seconds=1.0))])
def test_a_trickling_server_is_cut_off_at_the_request_deadline(tmp_path, monkeypatch, what, limits):
    """Run 2's jobs answer (an API answer) or log archive (a download) comes one byte every 0.2 s (a
    minute and more in all, each read well within any per-read timeout): cut off at the 1 s total
    deadline; runs 1 and 3 collected, the cursor saved."""
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    runs = [run_obj(1, 1), run_obj(2, 2), run_obj(3, 3)]
    body = {"jobs": json.dumps(jobs_obj(2, 2)).encode(), "logs": zip_of({"build/1_Build.txt": "x" * 400})}[what]
    slow = {f"/runs/2/{what}": lambda req: Reply(body=body, trickle=0.2)}
    state = tmp_path / "state.json"
    with scripted_http(github_answer(runs, slow)) as (base, _seen):
        s, secs = finishes_within(20, collect, REPO, tmp_path / "landing", state, base_url=base,
                                  sleep=lambda _s: None, now=NOW, limits=limits)
    assert secs < 10, secs
    assert s.collected == 2 and len(s.failed) == 1 and s.failed[0].startswith("run 2: ")
    assert "cut off after 1 s (total deadline)" in s.failed[0]
    assert json.loads(state.read_text()) == {"completed": [1, 3], "in_progress": [2], "since": "2026-03-02"}


def test_the_collection_stops_at_its_deadline_and_saves_what_it_has(tmp_path, monkeypatch):
    """Every jobs answer takes 0.4 s; 20 runs (8 s and more); the collection may take 1.5 s: it stops
    there, keeps the runs collected, holds the cursor; the next collection (no deadline) collects the rest."""
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    runs = [run_obj(i, 1) for i in range(1, 21)]
    slow = {"/jobs": lambda req: Reply(body=jobs_obj(int(req.path.split("/")[6]), 1), delay=0.4)}
    land, state = tmp_path / "landing", tmp_path / "state.json"
    with scripted_http(github_answer(runs, slow)) as (base, _seen):
        s, secs = finishes_within(20, collect, REPO, land, state, base_url=base, sleep=lambda _s: None, now=NOW,
                                  limits=Limits(request_seconds=5, collection_seconds=1.5))
        assert secs < 6, secs
        assert 1 <= s.collected < 20 and s.incomplete and s.incomplete[0].startswith("collection stopped: ")
        saved = json.loads(state.read_text())
        assert len(saved["completed"]) == s.collected and saved["since"] is None
        assert sorted(int(p.name) for p in (land / "ci" / "github-actions").iterdir()) == saved["completed"]
        again = collect(REPO, land, state, base_url=base, sleep=lambda _s: None, now=NOW)
    assert again.collected == 20 - s.collected and json.loads(state.read_text())["since"] == "2026-03-01"


def test_plain_http_only_to_loopback_and_only_when_configured(tmp_path, monkeypatch):
    """Without the switch, a client configured for https refuses a redirect to http://127.0.0.1 (a local
    service is not evidence); one configured with a plain-http loopback base (a test server) follows it;
    plain http to any other host is refused either way."""
    from ifc_scan.collect.github import CollectError
    from ifc_scan.collect.http import HttpClient, UnsafeURL
    production = HttpClient(configured_urls=["https://api.github.com"])
    with pytest.raises(UnsafeURL, match=r"refused http://127.0.0.1:8080/admin\?…: plain http"):
        production.check("http://127.0.0.1:8080/admin?x=1")
    assert HttpClient(configured_urls=["http://127.0.0.1:9"]).check("http://localhost:8080/blob").port == 8080
    with pytest.raises(UnsafeURL, match="refused http://10.0.0.1/x: only https"):
        HttpClient(configured_urls=["http://127.0.0.1:9"]).check("http://10.0.0.1/x")
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)

    def elsewhere(req):          # another loopback origin than the API's, as a test server's blob host
        port = req.headers["Host"].rsplit(":", 1)[1]
        return Reply(302, headers={"Location": f"http://localhost:{port}/blob/logs-1.zip"})
    with scripted_http(github_answer([run_obj(1, 1)], {"/runs/1/logs": elsewhere,
                                                       "/blob/logs-1.zip": lambda req: Reply(body=zip_of({"a.txt": "x"}))})) \
            as (base, seen):
        s = collect(REPO, tmp_path / "landing", tmp_path / "state.json", base_url=base, sleep=lambda _s: None, now=NOW)
    assert s.collected == 1 and [r.path for r in seen if "/blob/" in r.path] == ["/blob/logs-1.zip"]
    with pytest.raises(CollectError, match="refused http://api.example.test: only https"):
        collect(REPO, tmp_path / "landing", tmp_path / "state.json", base_url="http://api.example.test", now=NOW)


def test_the_documented_limits_and_clock_skew():
    """RELIABILITY.md names these defaults; by hand: 10 minutes of skew past NOW (12:00) is 12:10:00."""
    from ifc_scan.collect.github import BadItem, valid_time
    from ifc_scan.deliver import DELIVERY_LIMITS
    d = Limits()
    assert (d.request_seconds, d.answer_seconds, d.collection_seconds, d.max_pages, d.max_wait) == (
        600, 60, 3 * 3600, 1000, 900)
    assert (DELIVERY_LIMITS.request_seconds, DELIVERY_LIMITS.collection_seconds) == (30, 600)
    assert valid_time("2026-03-10T12:10:00Z", "run 1 created_at", NOW) == datetime(2026, 3, 10, 12, 10)
    with pytest.raises(BadItem, match="run 1 created_at: dated '2026-03-10T12:10:01Z', after now"):
        valid_time("2026-03-10T12:10:01Z", "run 1 created_at", NOW)



def test_the_environment_sets_the_deadlines_of_a_cli_collection(tmp_path, monkeypatch, capsys):
    """IFC_SCAN_HTTP_SECONDS=1: `ifc-scan collect tickets` against a server trickling its answer exits 1
    within seconds, naming the cut-off; a value that is not a positive number is refused by name."""
    from ifc_scan.cli import main
    argv = ["collect", "tickets", "--repo", REPO, "--landing", str(tmp_path / "l"), "--state", str(tmp_path / "s.json")]
    with scripted_http(lambda req: Reply(body=[], trickle=0.2)) as (base, _seen):
        monkeypatch.setenv("IFC_SCAN_HTTP_SECONDS", "1")
        rc, secs = finishes_within(20, main, argv + ["--base-url", base])
        err = capsys.readouterr().err
        assert rc == 1 and secs < 10 and "cut off after 1 s (total deadline)" in err
        monkeypatch.setenv("IFC_SCAN_HTTP_SECONDS", "nan")
        assert main(argv + ["--base-url", base]) == 1
    assert "IFC_SCAN_HTTP_SECONDS='nan': give a positive number of seconds" in capsys.readouterr().err


def _bomb_zip(name: str, megabytes: int) -> bytes:
    """A zip whose one member inflates to `megabytes` MB of zeros (about 1,000:1), written as a stream."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, zf.open(name, "w", force_zip64=True) as member:
        chunk = b"\0" * (1 << 20)
        for _ in range(megabytes):
            member.write(chunk)
    return buf.getvalue()


def test_the_collector_refuses_a_zip_bomb_in_an_artifact_and_in_logs_zip_within_seconds(tmp_path):
    """An artifact zip of ~200 KB whose trivy-results.json inflates to 200 MB, and a logs.zip likewise:
    the artifact member is refused by its headers (not extracted, named with the figures) beside a good
    member that is extracted; the log archive's problem is noted (the ingest refuses that member again)."""
    from ifc_scan.collect.github import check_log_archive, safe_extract_json
    bomb = _bomb_zip("trivy-results.json", 200)
    good = io.BytesIO()
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("good.json", json.dumps({"SchemaVersion": 2, "Results": []}))
    with zipfile.ZipFile(io.BytesIO(bomb)) as zf:
        assert zf.infolist()[0].file_size == 200 << 20
    started = time.monotonic()
    written, refused = safe_extract_json(bomb, tmp_path / "a")
    assert written == [] and "zip bomb" in refused[0] and "trivy-results.json" in refused[0]
    assert not (tmp_path / "a" / "trivy-results.json").exists()
    problem = check_log_archive(_bomb_zip("build/1_Build.txt", 200))
    assert problem and "zip bomb" in problem and "build/1_Build.txt" in problem
    assert time.monotonic() - started < 10
    written, refused = safe_extract_json(good.getvalue(), tmp_path / "b")
    assert written == ["good.json"] and refused == []
