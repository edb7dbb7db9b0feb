"""Exception governance: the history of the ignore files collected from a git clone the test builds
with `git`, and from a local HTTP server answering in GitHub's REST shapes; each exception in force
traced to its change and judged against the policy's approval chain. Every expected figure is worked
out by hand in the comments."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from datetime import date, datetime
from pathlib import Path

import pytest

from ifc_scan.collect.exception_history import FileSpec, collect_git_history
from ifc_scan_tests.scenario import Scenario, vuln

APPROVERS = """approvers:
  - {login: sam, roles: [security-engineer], emails: [sam@acme.test]}
  - {login: lee, roles: [engineering-lead], emails: [lee@acme.test]}
  - {login: cat, roles: [cto], emails: [cat@acme.test]}
  - {login: dual, roles: [security-engineer, engineering-lead], emails: [dual@acme.test]}
"""


def git(repo, *args, when=None, author=("Dev", "dev@acme.test")):
    env = {**os.environ, "GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
           "GIT_COMMITTER_NAME": "Merge Bot", "GIT_COMMITTER_EMAIL": "bot@acme.test"}
    if when:
        env.update(GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env).stdout.decode()


def commit(repo, text, when, message, author=("Dev", "dev@acme.test")):
    path = repo / ".trivyignore"
    if text is None:
        git(repo, "rm", "-q", ".trivyignore")
    else:
        path.write_text(text)
        git(repo, "add", ".trivyignore")
    git(repo, "commit", "-q", "-m", message, when=when, author=author)
    return git(repo, "rev-parse", "HEAD").strip()


def trailers(*who):
    return "\n\n" + "\n".join(f"Approved-by: {w.title()} <{w}@acme.test>" for w in who)


L1000 = "CVE-2026-1000 exp:2026-06-01  # no fix upstream\n"
L1000_EXT = "CVE-2026-1000 exp:2026-07-01  # no fix upstream\n"
L2000 = "CVE-2026-2000 exp:2026-03-15  # not reachable\n"
L2000_CTO = "CVE-2026-2000 exp:2026-03-15  # not reachable; CTO sign-off SEC-7\n"
L3000 = "CVE-2026-3000 exp:2026-05-01  # test image only\n"


@pytest.fixture
def git_history(tmp_path):
    """main, first parent, one change a day:
    C1 02-02 add 1000 (HIGH)                 Approved-by: sam + lee
    C2 02-03 add 2000 (CRITICAL)             Approved-by: sam + lee
    C3 02-04 add 3000 (MEDIUM then), by sam  Approved-by: sam (self) + dual
    C4 02-05 extend 1000 to 07-01            Approved-by: dual + lee            (new version of 1000)
    C5 02-10 reason of 2000 (CTO sign-off)   Approved-by: sam + lee + cat
    C6 02-11 remove 3000                     no approval (a removal needs none)
    C7 02-17 delete the file
    No commit is signed: every trailer is asserted, not verified, and fills no role (D22)."""
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    shas = {}
    shas["C1"] = commit(repo, L1000, "2026-02-02T09:00:00Z", "Accept CVE-2026-1000" + trailers("sam", "lee"))
    shas["C2"] = commit(repo, L1000 + L2000, "2026-02-03T09:00:00Z", "Accept CVE-2026-2000" + trailers("sam", "lee"))
    shas["C3"] = commit(repo, L1000 + L2000 + L3000, "2026-02-04T09:00:00Z", "Accept CVE-2026-3000" + trailers("sam", "dual"),
                        author=("Sam", "sam@acme.test"))
    shas["C4"] = commit(repo, L1000_EXT + L2000 + L3000, "2026-02-05T09:00:00Z", "Extend 1000" + trailers("dual", "lee"))
    shas["C5"] = commit(repo, L1000_EXT + L2000_CTO + L3000, "2026-02-10T09:00:00Z",
                        "CTO sign-off for 2000" + trailers("sam", "lee", "cat"))
    shas["C6"] = commit(repo, L1000_EXT + L2000_CTO, "2026-02-11T09:00:00Z", "3000 fixed: remove")
    shas["C7"] = commit(repo, None, "2026-02-17T09:00:00Z", "no exceptions left")
    return repo, shas


def scenario_with_scans(tmp_path) -> Scenario:
    sc = Scenario(tmp_path / "sc")
    base = [vuln("CVE-2026-1000", "openssl", "HIGH"), vuln("CVE-2026-2000", "curl", "CRITICAL")]
    sc.registry_scan("1", datetime(2026, 2, 1, 12), base + [vuln("CVE-2026-3000", "zlib", "MEDIUM")])
    # the vendor re-rates 3000 CRITICAL after its exception landed: the chain is judged on MEDIUM (then)
    for day in (6, 9, 12, 15, 18, 21):
        sc.registry_scan("1", datetime(2026, 2, day, 12), base + [vuln("CVE-2026-3000", "zlib", "CRITICAL")])
    (sc.landing / "inventory" / "approvers.yaml").write_text(APPROVERS)
    return sc


def by_id(k):
    return {e["id"]: e for e in k["exception_approvals"]["entries"]}


def test_git_history_snapshots_equal_the_file_at_each_change(tmp_path, git_history):
    repo, shas = git_history
    sc = scenario_with_scans(tmp_path)
    s = collect_git_history(repo, [FileSpec(".trivyignore", "_global")], sc.landing, tmp_path / "state.json")
    assert (s.changes_listed, s.changes_written, s.snapshots_written) == (7, 7, 7)
    days = {"C1": "02-02", "C2": "02-03", "C3": "02-04", "C4": "02-05", "C5": "02-10", "C6": "02-11", "C7": "02-17"}
    for c, day in days.items():
        snap = sc.landing / "exceptions" / "_global" / f"2026-{day}" / ".trivyignore"
        shown = subprocess.run(["git", "-C", str(repo), "show", f"{shas[c]}:.trivyignore"], capture_output=True)
        assert snap.read_bytes() == (shown.stdout if shown.returncode == 0 else b""), c
        rec = json.loads((sc.landing / "approvals" / "_global" / f"2026-{day}" / f"{shas[c]}.json").read_text())
        assert rec["commit"]["sha"] == shas[c] and rec["landed_at"] == f"2026-{day}T09:00:00Z"
    # a second collection writes nothing new
    again = collect_git_history(repo, [FileSpec(".trivyignore", "_global")], sc.landing, tmp_path / "state.json")
    assert (again.changes_written, again.snapshots_written, again.conflicts) == (0, 0, [])


def test_git_history_approval_chain_by_hand(tmp_path, git_history):
    """The attack of issue 29: a developer's own unsigned commits write `Approved-by:` trailers for the
    security engineer, the lead and the CTO. Before D22 every chain here but 3000's was complete and W07
    passed CC9.1; now no trailer fills a role."""
    repo, shas = git_history
    sc = scenario_with_scans(tmp_path)
    collect_git_history(repo, [FileSpec(".trivyignore", "_global")], sc.landing, tmp_path / "state.json")
    rec = json.loads((sc.landing / "approvals" / "_global" / "2026-02-10" / f"{shas['C5']}.json").read_text())
    assert rec["commit"]["signature"]["status"] == "none" and rec["commit"]["signature"]["key_fingerprint"] is None

    # W06 (T = 2026-02-09): snapshot 02-05 (C4) in force: 1000 (version C4), 2000 (C2), 3000 (C3)
    k = sc.kpis(date(2026, 2, 2))
    a = k["exception_approvals"]
    e = by_id(k)
    # 1000: C4's trailers name dual and lee; unsigned -> both asserted; HIGH needs two roles -> both missing
    assert e["CVE-2026-1000"]["change"] == shas["C4"][:12] and not e["CVE-2026-1000"]["chain_complete"]
    assert e["CVE-2026-1000"]["missing_roles"] == "security-engineer, engineering-lead"
    assert e["CVE-2026-1000"]["approvers"] == ""
    assert e["CVE-2026-1000"]["evidence"] == ("Dual: asserted, not verified (commit not signed); "
                                              "Lee: asserted, not verified (commit not signed)")
    assert "Lee: Approved-by trailer asserted, not verified (commit not signed)" in e["CVE-2026-1000"]["problem"]
    # 2000: CRITICAL when C2 landed; sam + lee asserted -> all three roles missing
    assert (e["CVE-2026-2000"]["severity_at_change"], e["CVE-2026-2000"]["missing_roles"]) == (
        "CRITICAL", "security-engineer, engineering-lead, cto")
    # 3000: MEDIUM when C3 landed (CRITICAL only from 02-06): no CTO needed; sam wrote C3 so his trailer is
    # self-approval (refused before its evidence is weighed); dual's is asserted
    assert (e["CVE-2026-3000"]["severity_at_change"], e["CVE-2026-3000"]["missing_roles"]) == (
        "MEDIUM", "security-engineer, engineering-lead")
    assert "Sam: self-approval" in e["CVE-2026-3000"]["problem"]
    assert e["CVE-2026-3000"]["evidence"] == "Dual: asserted, not verified (commit not signed)"
    assert (a["evidence_collected"], a["in_force"], a["chain_complete"], a["chain_incomplete"], a["untraced"],
            a["critical_without_cto"]) == (True, 3, 0, 3, 0, 1)
    row = next(r for r in sc.result.populations["exceptions"] if r["id"] == "CVE-2026-2000")
    assert row["chain_complete"] is False and row["approval_change"] == shas["C2"][:12]
    assert row["approval_evidence"] == ("Lee: asserted, not verified (commit not signed); "
                                        "Sam: asserted, not verified (commit not signed)")
    controls = {c["id"]: c for c in k["controls"]}
    assert controls["CC9.1"]["status"] == "fail" and len(controls["CC9.1"]["failed"]) == 2
    assert "exceptions in force approved by the policy's chain in time" in \
        controls["8.8"]["failed"]

    # W07 (T = 02-16): snapshot 02-11 (C6): 1000 still C4's version (unchanged since), 2000 now C5's
    # (reason changed; the unsigned trailers name sam, lee and cat) -> still nobody; 3000 removed
    k = sc.kpis(date(2026, 2, 9))
    a, e = k["exception_approvals"], by_id(k)
    assert e["CVE-2026-1000"]["change"] == shas["C4"][:12]
    assert e["CVE-2026-2000"]["change"] == shas["C5"][:12] and not e["CVE-2026-2000"]["chain_complete"]
    assert e["CVE-2026-2000"]["missing_roles"] == "security-engineer, engineering-lead, cto"
    assert (a["in_force"], a["chain_complete"], a["chain_incomplete"], a["critical_without_cto"]) == (2, 0, 2, 1)
    assert {c["id"]: c["status"] for c in k["controls"]}["CC9.1"] == "fail"
    hist = next(r for r in sc.result.populations["exceptions"] if r["id"] == "CVE-2026-1000")["change_history"]
    assert hist.startswith(f"added by {shas['C1'][:12]}") and "expiry 2026-06-01 -> 2026-07-01" in hist

    # W08 (T = 02-23): the file was deleted on 02-17: nothing in force, nothing to approve
    a = sc.kpis(date(2026, 2, 16))["exception_approvals"]
    assert (a["in_force"], a["chain_incomplete"]) == (0, 0)


def test_without_history_the_chain_is_not_judged(tmp_path):
    """A hand-copied snapshot and no collected history: every entry in force is untraced and
    incomplete, and the controls say 'no data' rather than pass."""
    sc = scenario_with_scans(tmp_path)
    sc.exceptions("_global", date(2026, 2, 2), L1000 + L2000)
    k = sc.kpis(date(2026, 2, 2))
    a = k["exception_approvals"]
    # 1000 HIGH: needs security-engineer + engineering-lead; 2000 CRITICAL: also the CTO -> 1 CRITICAL without CTO
    assert (a["evidence_collected"], a["in_force"], a["untraced"], a["chain_incomplete"], a["critical_without_cto"]) == (
        False, 2, 2, 2, 1)
    assert by_id(k)["CVE-2026-2000"]["missing_roles"] == "security-engineer, engineering-lead, cto"
    assert {c["id"]: c["status"] for c in k["controls"]}["CC9.1"] == "no-data"


# ---- GitHub's REST API, served locally ---------------------------------------------------------------

import base64  # noqa: E402
import threading  # noqa: E402
import urllib.parse  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

from ifc_scan.collect.exception_history import collect_github_history  # noqa: E402

REPO = "acme/platform"
TOKEN = "ghp_EXCEPTIONS_do_not_leak_456"
GH_APPROVERS = APPROVERS   # logins are GitHub logins here


def sha_of(name: str) -> str:
    import hashlib
    return hashlib.sha1(name.encode()).hexdigest()


class FakeGitHub:
    """main's history of .trivyignore, as GitHub serves it (newest first, two commits a page):

    f1  PR #1, merge commit; feature commit 02-01 15:00, merged 02-02 10:00; reviews sam 02-01 16:00,
        lee 02-02 09:00 (both before the merge)                                   content: 1000
    s2  PR #2, squash-merged 02-03 11:00; sam 10:00, lee 10:30, cat 12:00 (after the merge)  1000+2000
    d3  pushed to main without a pull request, 02-04 08:00, signed (GitHub: verified) with
        Approved-by: trailers for sam and lee                                      1000+2000+3000
    s4  PR #4, squash-merged 02-05 12:00; sam APPROVED 09:00, lee CHANGES_REQUESTED 10:00 then
        APPROVED 11:00, dual COMMENTED                                            1000(ext)+2000+3000

    `rewrite()`: main force-pushed: d3 and s4 gone, s4b (PR #4 merged again, 02-05 12:00, without 3000)
    in their place; and sam's review on PR #4 dismissed."""

    def __init__(self):
        self.requests: list[tuple[str, str, str | None]] = []
        f1, s2, d3, s4 = (sha_of(n) for n in ("f1", "s2", "d3", "s4"))
        self.commits = [  # oldest first
            self.commit(f1, "2026-02-01T15:00:00Z", "dev", "Accept CVE-2026-1000", L1000),
            self.commit(s2, "2026-02-03T11:00:00Z", "dev", "Accept CVE-2026-2000 (#2)", L1000 + L2000),
            self.commit(d3, "2026-02-04T08:00:00Z", "ops", "hotfix: accept 3000" + trailers("sam", "lee"),
                        L1000 + L2000 + L3000, verified=True),
            self.commit(s4, "2026-02-05T12:00:00Z", "dev", "Extend 1000 (#4)", L1000_EXT + L2000 + L3000),
        ]
        self.pulls = {f1: self.pull(1, "dev", "2026-02-02T10:00:00Z", sha_of("merge1")),
                      s2: self.pull(2, "dev", "2026-02-03T11:00:00Z", s2), d3: None,
                      s4: self.pull(4, "dev", "2026-02-05T12:00:00Z", s4)}
        self.reviews = {
            1: [self.review(11, "sam", "APPROVED", "2026-02-01T16:00:00Z"), self.review(12, "lee", "APPROVED", "2026-02-02T09:00:00Z")],
            2: [self.review(21, "sam", "APPROVED", "2026-02-03T10:00:00Z"), self.review(22, "lee", "APPROVED", "2026-02-03T10:30:00Z"),
                self.review(23, "cat", "APPROVED", "2026-02-03T12:00:00Z")],
            4: [self.review(41, "sam", "APPROVED", "2026-02-05T09:00:00Z"),
                self.review(42, "lee", "CHANGES_REQUESTED", "2026-02-05T10:00:00Z"),
                self.review(43, "lee", "APPROVED", "2026-02-05T11:00:00Z"),
                self.review(44, "dual", "COMMENTED", "2026-02-05T11:30:00Z"),
                {"id": 45, "user": {"login": "cat"}, "state": "PENDING", "commit_id": "x"}],   # never submitted
        }

    @staticmethod
    def commit(sha, when, login, message, content, verified=False):
        return {"sha": sha, "node_id": "C_" + sha[:8], "commit": {
            "author": {"name": login.title(), "email": f"{login}@acme.test", "date": when},
            "committer": {"name": "GitHub", "email": "noreply@github.com", "date": when}, "message": message,
            "verification": {"verified": verified, "reason": "valid" if verified else "unsigned",
                             "signature": None, "payload": None}},
            "author": {"login": login}, "committer": {"login": "web-flow"}, "parents": [], "_content": content}

    @staticmethod
    def pull(number, author, merged_at, merge_sha):
        return {"number": number, "title": f"Exception change #{number}", "state": "closed",
                "html_url": f"https://github.com/{REPO}/pull/{number}", "user": {"login": author},
                "merged_at": merged_at, "merge_commit_sha": merge_sha, "base": {"ref": "main"}}

    @staticmethod
    def review(rid, login, state, at):
        return {"id": rid, "user": {"login": login}, "state": state, "submitted_at": at, "commit_id": "abc"}

    def rewrite(self):
        s4b = sha_of("s4b")
        self.commits = self.commits[:2] + [self.commit(s4b, "2026-02-05T12:00:00Z", "dev", "Extend 1000 (#4)",
                                                       L1000_EXT + L2000)]
        self.pulls[s4b] = self.pull(4, "dev", "2026-02-05T12:00:00Z", s4b)
        self.reviews[4][0]["state"] = "DISMISSED"


def serve(fake: FakeGitHub):
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def send(self, code, doc, headers=None):
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(u.query))
            fake.requests.append((self.headers.get("Host", ""), self.path, self.headers.get("Authorization")))
            parts = u.path.split("/")
            by_sha = {c["sha"]: c for c in fake.commits}
            if u.path == f"/repos/{REPO}/commits":
                assert q["path"] == ".trivyignore" and q["sha"] == "main"
                newest = [{k: v for k, v in c.items() if k != "_content"} for c in reversed(fake.commits)]
                page = int(q.get("page", "1"))
                headers = {}
                if page * 2 < len(newest):
                    nq = urllib.parse.urlencode({**q, "page": str(page + 1)})
                    headers["Link"] = f'<http://{self.headers["Host"]}{u.path}?{nq}>; rel="next"'
                return self.send(200, newest[(page - 1) * 2:page * 2], headers)
            if len(parts) == 7 and parts[5] in by_sha and parts[6] == "pulls":
                pr = fake.pulls.get(parts[5])
                return self.send(200, [pr] if pr else [])
            if len(parts) == 7 and parts[4] == "pulls" and parts[6] == "reviews":
                return self.send(200, fake.reviews.get(int(parts[5]), []))
            if u.path == f"/repos/{REPO}/contents/.trivyignore" and q.get("ref") in by_sha:
                text = by_sha[q["ref"]]["_content"]
                b64 = base64.encodebytes(text.encode()).decode()      # GitHub wraps at 60 characters
                return self.send(200, {"type": "file", "encoding": "base64", "content": b64, "path": ".trivyignore"})
            return self.send(404, {"message": "Not Found"})

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_github_history_reviews_squash_direct_push_dismissal_and_force_push(tmp_path, monkeypatch):
    fake = FakeGitHub()
    srv = serve(fake)
    monkeypatch.setenv("GH_TEST_TOKEN", TOKEN)
    sc = scenario_with_scans(tmp_path)
    state = tmp_path / "collector" / "exception-history.json"
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        s = collect_github_history(REPO, [FileSpec(".trivyignore", "_global")], sc.landing, state,
                                   base_url=base, token_env="GH_TEST_TOKEN", sleep=lambda _s: None)
        # 4 changes on 4 landing days (f1 landed 02-02, the merge, though committed 02-01)
        assert (s.changes_listed, s.changes_written, s.snapshots_written, s.reviews_refreshed) == (4, 4, 4, 3)
        assert sorted(p.parent.name for p in (sc.landing / "exceptions" / "_global").glob("*/.trivyignore")) == [
            "2026-02-02", "2026-02-03", "2026-02-04", "2026-02-05"]
        assert all(auth == f"Bearer {TOKEN}" for _h, _p, auth in fake.requests)
        assert sum(1 for _h, p, _a in fake.requests if p.startswith(f"/repos/{REPO}/commits?")) == 2   # two pages

        # W06 (T = 02-09), snapshot 02-05 = s4:
        # 1000 (s4, HIGH): sam approved 09:00; lee's last decisive review by 12:00 is APPROVED 11:00 -> complete
        # 2000 (s2, CRITICAL): sam, lee before the merge; cat approved 12:00, after it -> missing cto
        # 3000 (d3, MEDIUM then): no pull request, no review; its trailers, on a commit GitHub calls verified,
        # are not approvals on this path (D22) -> missing security-engineer, engineering-lead
        k = sc.kpis(date(2026, 2, 2))
        a, e = k["exception_approvals"], by_id(k)
        assert e["CVE-2026-1000"]["chain_complete"] and e["CVE-2026-1000"]["pull_request"].endswith("/pull/4")
        assert e["CVE-2026-2000"]["missing_roles"] == "cto"
        assert "cat: approved after the change took effect" in e["CVE-2026-2000"]["problem"]
        assert e["CVE-2026-3000"]["missing_roles"] == "security-engineer, engineering-lead"
        assert e["CVE-2026-3000"]["pull_request"].startswith("none") and e["CVE-2026-3000"]["evidence"] is None
        d3 = json.loads((sc.landing / "approvals" / "_global" / "2026-02-04" / f"{sha_of('d3')}.json").read_text())
        assert d3["commit"]["signature"] == {"checked_by": "github", "status": "not checked by ifc_scan",
                                             "github_verified": True, "github_reason": "valid"}
        assert (a["in_force"], a["chain_complete"], a["chain_incomplete"], a["critical_without_cto"]) == (3, 1, 2, 1)

        # main force-pushed (d3, s4 replaced by s4b) and sam's review on #4 dismissed
        fake.rewrite()
        s = collect_github_history(REPO, [FileSpec(".trivyignore", "_global")], sc.landing, state,
                                   base_url=base, token_env="GH_TEST_TOKEN", sleep=lambda _s: None)
        # moved aside: d3's record and its 02-04 snapshot, s4's record (its text is in the record); the
        # 02-05 snapshot is written again with s4b's text
        assert len(s.rewritten) == 3 and s.snapshots_written == 1
        assert (state.parent / "rewritten" / "approvals" / "_global" / "2026-02-04" / f"{sha_of('d3')}.json").is_file()
        assert not (sc.landing / "exceptions" / "_global" / "2026-02-04").exists()
        snap = sc.landing / "exceptions" / "_global" / "2026-02-05" / ".trivyignore"
        assert snap.read_text() == L1000_EXT + L2000
        # W06 again: 1000 (s4b): sam's approval dismissed -> missing security-engineer; 2000 as before; 3000 gone
        k = sc.kpis(date(2026, 2, 2))
        a, e = k["exception_approvals"], by_id(k)
        assert e["CVE-2026-1000"]["missing_roles"] == "security-engineer"
        assert "sam: review dismissed" in e["CVE-2026-1000"]["problem"]
        assert set(e) == {"CVE-2026-1000", "CVE-2026-2000"}
        assert (a["in_force"], a["chain_complete"], a["chain_incomplete"], a["critical_without_cto"]) == (2, 0, 2, 1)
    finally:
        srv.shutdown()


def test_dagster_asset_collects_from_a_clone_then_ingest_reads_it(tmp_path, git_history):
    """The `exception_history` asset, configured with a local clone, writes the landing files the ingest
    then reads (7 changes of the fixture: 7 records, 7 snapshots); unconfigured, it writes nothing."""
    import dagster as dg

    from ifc_scan.defs.collect import exception_history
    from ifc_scan.defs.ingest import warehouse_ingest
    from ifc_scan.defs.resources import IfcScanSettings, resources_for
    from ifc_scan.warehouse.db import connect

    repo, shas = git_history
    sc = scenario_with_scans(tmp_path)
    settings = IfcScanSettings(landing=str(sc.landing), warehouse=str(tmp_path / "w.duckdb"), reports=str(tmp_path / "r"),
                               collector_state=str(tmp_path / "collector" / "github.json"), exceptions_git=str(repo),
                               exceptions_branch="main")
    r = dg.materialize([exception_history, warehouse_ingest], resources=resources_for(settings))
    meta = {e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in r.get_asset_materialization_events()}
    assert meta["exception_history"]["configured"].value is True
    assert (meta["exception_history"]["changes_written"].value, meta["exception_history"]["snapshots_written"].value) == (7, 7)
    assert (tmp_path / "collector" / "exception-history.json").is_file()
    with connect(settings.warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM exception_changes").fetchone()[0] == 7
        assert con.execute("SELECT count(DISTINCT login) FROM approvers").fetchone()[0] == 4
    off = IfcScanSettings(landing=str(tmp_path / "empty"), warehouse=str(tmp_path / "w2.duckdb"), reports=str(tmp_path / "r2"))
    r = dg.materialize([exception_history], resources=resources_for(off))
    assert r.get_asset_materialization_events()[0].materialization.metadata["configured"].value is False
    assert not (tmp_path / "empty").exists()


def test_bad_records_and_roles_are_rejected_by_name_and_the_rest_is_read(tmp_path, git_history):
    repo, _shas = git_history
    sc = scenario_with_scans(tmp_path)
    collect_git_history(repo, [FileSpec(".trivyignore", "_global")], sc.landing, tmp_path / "state.json")
    bad = sc.landing / "approvals" / "_global" / "2026-02-02" / "broken.json"
    bad.write_text('{"schema": "ifc-scan.exception-change/1", "source": "git"')          # truncated
    misfiled = sc.landing / "approvals" / "other" / "2026-02-02" / "x.json"
    misfiled.parent.mkdir(parents=True)
    good = next((sc.landing / "approvals" / "_global" / "2026-02-03").glob("*.json"))
    misfiled.write_text(good.read_text())                                                   # scope _global, filed under other
    (sc.landing / "inventory" / "approvers.yaml").write_text("approvers:\n  - {login: eve, roles: [ceo]}\n")
    from ifc_scan.ingest.runner import ingest
    s = ingest(sc.landing, tmp_path / "w.duckdb", progress=lambda m: None)
    reasons = dict(s.rejections)
    assert "not valid JSON" in reasons["approvals/_global/2026-02-02/broken.json"]
    assert "must be approvals/<scope>/<landed date>/" in reasons["approvals/other/2026-02-02/x.json"]
    assert "unknown role 'ceo'" in reasons["inventory/approvers.yaml"]
    from ifc_scan.warehouse.db import connect
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM exception_changes").fetchone()[0] == 7   # the 7 good records


def test_counted_approvals_and_roles_by_hand():
    from ifc_scan.kpis.approvals import assign_roles, counted_approvals, required_roles
    t = datetime(2026, 2, 5, 12)

    def r(who, state, hour, email=None):
        return {"reviewer": who, "state": state, "submitted_at": datetime(2026, 2, 5, hour), "email": email}
    counted, refused = counted_approvals([
        r("ann", "APPROVED", 9), r("ann", "CHANGES_REQUESTED", 10),      # withdrawn before the merge
        r("bob", "APPROVED", 9), r("bob", "COMMENTED", 11),               # a comment decides nothing
        r("cy", "APPROVED", 13),                                          # after the merge at 12:00
        r("dan", "DISMISSED", 10),
        r("eve", "APPROVED", 9, "eve@x.test"),                            # the author, by address
    ], t, author="someone", author_email="EVE@x.test")
    assert [a["reviewer"] for a in counted] == ["bob"]
    assert refused == ["ann: changes requested", "cy: approved after the change took effect", "dan: review dismissed",
                       "eve: self-approval"]
    # one person, one role: x holds both, y only security-engineer -> x must take engineering-lead
    roles = {"x": ["security-engineer", "engineering-lead"], "y": ["security-engineer"]}
    got = assign_roles([{"reviewer": "x"}, {"reviewer": "y"}], lambda a: roles[a["reviewer"]], required_roles("HIGH"))
    assert {k: v["reviewer"] for k, v in got.items()} == {"security-engineer": "y", "engineering-lead": "x"}
    assert required_roles("CRITICAL") == ("security-engineer", "engineering-lead", "cto")
    assert required_roles("UNKNOWN")[-1] == "cto" and "cto" not in required_roles("MEDIUM")


def test_a_landing_file_the_collector_did_not_write_is_left_alone(tmp_path, git_history):
    """A snapshot someone copied by hand for a day the history also has: the collector reports a conflict
    and keeps the person's bytes; the other days are written."""
    repo, _shas = git_history
    sc = scenario_with_scans(tmp_path)
    sc.exceptions("_global", date(2026, 2, 3), "# copied by hand\nCVE-2026-9999\n")
    s = collect_git_history(repo, [FileSpec(".trivyignore", "_global")], sc.landing, tmp_path / "state.json")
    hand = sc.landing / "exceptions" / "_global" / "2026-02-03" / ".trivyignore"
    assert hand.read_text() == "# copied by hand\nCVE-2026-9999\n"
    assert [c.split(":")[0] for c in s.conflicts] == ["exceptions/_global/2026-02-03/.trivyignore"]
    assert (s.changes_written, s.snapshots_written) == (7, 6)


# ---- signed trailers (D22): an Approved-by: trailer counts only when a key listed for its approver signed it -

def ssh_key(folder, name):
    """An ed25519 key pair made by ssh-keygen: (private key path, public key line, fingerprint as ssh-keygen
    prints it: what git reports as %GF)."""
    path = folder / f"{name}_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@acme.test", "-f", str(path)],
                   check=True, capture_output=True)
    fingerprint = subprocess.run(["ssh-keygen", "-l", "-f", f"{path}.pub"], check=True, capture_output=True,
                                 text=True).stdout.split()[1]
    return path, (folder / f"{name}_ed25519.pub").read_text().strip(), fingerprint


def signed_commit(repo, text, when, message, key):
    """`commit`, signed with the SSH key at `key` (git's own signing: ssh-keygen -Y sign)."""
    (repo / ".trivyignore").write_text(text)
    git(repo, "add", ".trivyignore")
    git(repo, "-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-q", "-S", "-m", message, when=when)
    return git(repo, "rev-parse", "HEAD").strip()


def graft_signature(repo, signed_sha, text, when, message):
    """A commit object an attacker writes by hand: the new file and message, with the `gpgsig` header copied
    from a commit the CTO really signed. The signature covers the other object's bytes, so git finds it bad."""
    gpgsig = git(repo, "cat-file", "commit", signed_sha).split("\n\n", 1)[0].split("gpgsig ", 1)[1]
    (repo / ".trivyignore").write_text(text)
    git(repo, "add", ".trivyignore")
    tree = git(repo, "write-tree").strip()
    stamp = f"{int(datetime.fromisoformat(when.replace('Z', '+00:00')).timestamp())} +0000"
    raw = (f"tree {tree}\nparent {git(repo, 'rev-parse', 'HEAD').strip()}\nauthor Dev <dev@acme.test> {stamp}\n"
           f"committer Merge Bot <bot@acme.test> {stamp}\ngpgsig {gpgsig}\n\n{message}\n")
    sha = subprocess.run(["git", "-C", str(repo), "hash-object", "-t", "commit", "-w", "--stdin"], input=raw.encode(),
                         check=True, capture_output=True).stdout.decode().strip()
    git(repo, "update-ref", "refs/heads/main", sha)
    return sha


@pytest.fixture
def signed_history(tmp_path):
    """Keys: sam, lee and cat each have one listed in approvers.yaml; eve (a developer) has one nobody lists.
    main, first parent (author Dev for all):
    S1 02-02 add 1000 (HIGH)      trailers sam, lee, cat; signed with sam's key
    S2 02-03 add 2000 (CRITICAL)  trailers sam, lee, cat; not signed (the attack)
    S3 02-04 add 3000 (MEDIUM)    trailer sam; signed with eve's key
    S4 02-10 reason of 2000       trailer cat; the gpgsig of a commit cat signed (side branch) grafted on"""
    keys = {name: ssh_key(tmp_path, name) for name in ("sam", "lee", "cat", "eve")}
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    # the clone's own setting names a file that does not exist: the collector's allowed-signers file wins
    git(repo, "config", "gpg.ssh.allowedSignersFile", str(tmp_path / "no-such-file"))
    shas = {"S1": signed_commit(repo, L1000, "2026-02-02T09:00:00Z", "Accept CVE-2026-1000" + trailers("sam", "lee", "cat"),
                                keys["sam"][0]),
            "S2": commit(repo, L1000 + L2000, "2026-02-03T09:00:00Z", "Accept CVE-2026-2000" + trailers("sam", "lee", "cat")),
            "S3": signed_commit(repo, L1000 + L2000 + L3000, "2026-02-04T09:00:00Z", "Accept 3000" + trailers("sam"),
                                keys["eve"][0])}
    git(repo, "checkout", "-q", "-b", "side")
    cat_signed = signed_commit(repo, "unrelated\n", "2026-02-09T09:00:00Z", "cat's own work", keys["cat"][0])
    git(repo, "checkout", "-q", "main")
    shas["S4"] = graft_signature(repo, cat_signed, L1000 + L2000_CTO + L3000, "2026-02-10T09:00:00Z",
                                 "CTO sign-off for 2000" + trailers("cat"))
    approvers = "approvers:\n" + "".join(
        f"  - {{login: {n}, roles: [{role}], emails: [{n}@acme.test], keys: ['{keys[n][1]}']}}\n"
        for n, role in (("sam", "security-engineer"), ("lee", "engineering-lead"), ("cat", "cto")))
    return repo, shas, {n: k[2] for n, k in keys.items()}, approvers


def test_a_trailer_counts_only_when_signed_by_a_key_listed_for_its_approver(tmp_path, signed_history):
    repo, shas, fingerprint, approvers = signed_history
    sc = scenario_with_scans(tmp_path)
    (sc.landing / "inventory" / "approvers.yaml").write_text(approvers)
    collect_git_history(repo, [FileSpec(".trivyignore", "_global")], sc.landing, tmp_path / "state.json")

    def signature(change, day):
        return json.loads((sc.landing / "approvals" / "_global" / day / f"{shas[change]}.json").read_text()
                          )["commit"]["signature"]
    # git's verdicts, as recorded: S1 good by sam's listed key (git names him from the allowed-signers file
    # built from approvers.yaml); S2 none; S3 good but by eve's key, listed for nobody; S4 bad
    assert {k: signature("S1", "2026-02-02")[k] for k in ("status", "key_fingerprint", "signer")} == {
        "status": "good", "key_fingerprint": fingerprint["sam"], "signer": "sam"}
    assert signature("S2", "2026-02-03")["status"] == "none"
    s3 = signature("S3", "2026-02-04")
    assert (s3["status"], s3["key_fingerprint"], s3["signer"]) == ("good", fingerprint["eve"], None)
    assert (signature("S4", "2026-02-10")["status"], signature("S4", "2026-02-10")["key_fingerprint"]) == ("bad", None)

    # W06 (T = 02-09): snapshot 02-04 (S3): 1000 (S1), 2000 (S2), 3000 (S3)
    k = sc.kpis(date(2026, 2, 2))
    a, e = k["exception_approvals"], by_id(k)
    # 1000, HIGH (security-engineer + engineering-lead): sam's trailer is signed by his listed key -> counts,
    # fills security-engineer; lee's and cat's trailers ride on sam's signature, a key not listed for them
    assert e["CVE-2026-1000"]["approvers"].startswith("Sam (security-engineer")
    assert e["CVE-2026-1000"]["missing_roles"] == "engineering-lead"
    assert e["CVE-2026-1000"]["evidence"] == (
        f"Cat: asserted, not verified (signed by {fingerprint['sam']}, a key approvers.yaml does not list for them); "
        f"Lee: asserted, not verified (signed by {fingerprint['sam']}, a key approvers.yaml does not list for them); "
        "Sam: signed trailer")
    # 2000, CRITICAL: the unsigned commit names all three roles; none is filled (before D22: complete)
    assert e["CVE-2026-2000"]["missing_roles"] == "security-engineer, engineering-lead, cto"
    assert not e["CVE-2026-2000"]["chain_complete"] and e["CVE-2026-2000"]["approvers"] == ""
    # 3000, MEDIUM then: a good signature, but by eve's key, which approvers.yaml lists for nobody
    assert e["CVE-2026-3000"]["missing_roles"] == "security-engineer, engineering-lead"
    assert e["CVE-2026-3000"]["evidence"] == (
        f"Sam: asserted, not verified (signed by {fingerprint['eve']}, a key approvers.yaml does not list for them)")
    assert (a["in_force"], a["chain_complete"], a["chain_incomplete"], a["critical_without_cto"]) == (3, 0, 3, 1)
    # the published week: exceptions.csv's approval_evidence column and the report's approval cell
    import csv
    import html

    from ifc_scan.report.writer import write_week
    week = write_week(tmp_path / "reports", sc.result, [], sc.result.data_quality, landing=str(sc.landing), run_id=None)
    rows = {r["id"]: r for r in csv.DictReader((Path(week["path"]) / "exceptions.csv").open(encoding="utf-8"))}
    assert rows["CVE-2026-1000"]["approval_evidence"].endswith("Sam: signed trailer")
    assert rows["CVE-2026-2000"]["approval_evidence"].startswith("Cat: asserted, not verified (commit not signed)")
    page = html.unescape((Path(week["path"]) / "report.html").read_text())
    assert "evidence: Cat: asserted, not verified (commit not signed); Lee: asserted" in page
    assert "a key approvers.yaml does not list for them); Sam: signed trailer" in page

    # a trailer naming sam by login and cat by address ("Sam <cat@acme.test>") signed with sam's key: the
    # rows it names are sam's (login) and cat's (address), but only sam's list the key -> sam's role only
    from ifc_scan.kpis.approvals import Governance
    from ifc_scan.warehouse.db import connect
    with connect(sc.root / "w.duckdb", read_only=True) as con:
        g = Governance(con, [])
    mixed = {"reviewer": "Sam", "email": "cat@acme.test", "via": "git-trailer"}
    change = {"signature_keys": [fingerprint["sam"]], "signature_status": "good", "landed_at": datetime(2026, 2, 2, 9)}
    assert g.roles_of(mixed, change["landed_at"]) == ["cto", "security-engineer"]       # by name or address
    assert g.evidence(mixed, change) == ("signed trailer", None)
    assert g.roles_of(mixed, change["landed_at"]) == ["security-engineer"]              # by the key that signed

    # W07 (T = 02-16): snapshot 02-10 (S4): 2000's version is S4, whose trailer names cat under a signature
    # copied from cat's own commit: git finds it bad -> cat does not count, all three roles missing
    k = sc.kpis(date(2026, 2, 9))
    e = by_id(k)
    assert e["CVE-2026-2000"]["change"] == shas["S4"][:12]
    assert e["CVE-2026-2000"]["missing_roles"] == "security-engineer, engineering-lead, cto"
    assert e["CVE-2026-2000"]["evidence"] == "Cat: asserted, not verified (commit signature bad)"
    assert k["exception_approvals"]["critical_without_cto"] == 1

    # approvers.yaml no longer lists sam's key (revoked): the same record stops counting at the next run
    (sc.landing / "inventory" / "approvers.yaml").write_text(approvers.replace(
        next(line for line in approvers.splitlines() if "login: sam" in line),
        "  - {login: sam, roles: [security-engineer], emails: [sam@acme.test]}"))
    e = by_id(sc.kpis(date(2026, 2, 2)))
    assert e["CVE-2026-1000"]["missing_roles"] == "security-engineer, engineering-lead"
    assert e["CVE-2026-1000"]["evidence"].endswith("Sam: asserted, not verified (approvers.yaml lists no signing key for them)")


def test_a_gpg_signed_trailer_counts_when_the_fingerprint_is_listed(tmp_path, monkeypatch):
    """GPG: git checks the signature with the collecting account's keyring; approvers.yaml lists the key's
    fingerprint. G1 02-02 adds 1000 (HIGH) with trailers lee and sam, signed with lee's GPG key."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(home))
    try:
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Lee <lee@acme.test>", "ed25519",
                        "sign", "never"], check=True, capture_output=True)
        listed = subprocess.run(["gpg", "--with-colons", "--list-keys", "lee@acme.test"], check=True,
                                capture_output=True, text=True).stdout
        lee_fpr = next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr:"))
        repo = tmp_path / "repo"
        git(tmp_path, "init", "-q", "-b", "main", str(repo))
        (repo / ".trivyignore").write_text(L1000)
        git(repo, "add", ".trivyignore")
        git(repo, "-c", "gpg.format=openpgp", "-c", "user.signingkey=lee@acme.test", "commit", "-q", "-S", "-m",
            "Accept CVE-2026-1000" + trailers("lee", "sam"), when="2026-02-02T09:00:00Z")
        sha = git(repo, "rev-parse", "HEAD").strip()
    finally:
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], capture_output=True)
    sc = scenario_with_scans(tmp_path)
    # the fingerprint as people copy it: in groups of four
    grouped = " ".join(lee_fpr[i:i + 4] for i in range(0, 40, 4))
    (sc.landing / "inventory" / "approvers.yaml").write_text(
        f"approvers:\n  - {{login: lee, roles: [engineering-lead], emails: [lee@acme.test], keys: ['{grouped}']}}\n"
        "  - {login: sam, roles: [security-engineer], emails: [sam@acme.test]}\n")
    collect_git_history(repo, [FileSpec(".trivyignore", "_global")], sc.landing, tmp_path / "state.json")
    record = sc.landing / "approvals" / "_global" / "2026-02-02" / f"{sha}.json"
    sig = json.loads(record.read_text())["commit"]["signature"]
    assert (sig["status"], sig["key_fingerprint"]) == ("good", lee_fpr)
    # W06: 1000 HIGH: lee's trailer signed by his listed key fills engineering-lead; sam lists no key at all
    e = by_id(sc.kpis(date(2026, 2, 2)))["CVE-2026-1000"]
    assert (e["missing_roles"], e["evidence"]) == (
        "security-engineer", "Lee: signed trailer; Sam: asserted, not verified (approvers.yaml lists no signing key for them)")

    # collected again by an account whose keyring lacks lee's key: git cannot check it -> nothing counts
    empty = tmp_path / "empty-gnupg"
    empty.mkdir(mode=0o700)
    monkeypatch.setenv("GNUPGHOME", str(empty))
    collect_git_history(repo, [FileSpec(".trivyignore", "_global")], sc.landing, tmp_path / "state.json")
    assert json.loads(record.read_text())["commit"]["signature"]["status"] == "cannot be checked"
    e = by_id(sc.kpis(date(2026, 2, 2)))["CVE-2026-1000"]
    assert e["missing_roles"] == "security-engineer, engineering-lead"
    assert e["evidence"].startswith("Lee: asserted, not verified (commit signature cannot be checked)")


def test_approver_keys_are_checked_when_the_roles_file_is_read():
    from ifc_scan.ingest.approvals import RecordRejected, key_fingerprint, parse_approvers
    ed = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJhDPPeI/SQmLjXaq8nYNve8Ibps+7uCU1bWbXWaWC+3"
    got = parse_approvers(f"approvers:\n  - {{login: sam, roles: [cto], keys: ['{ed} sam@laptop', "
                          "'744D D105 63A5 6498 1AA6  CCDF 9448 6706 5767 4422']}\n")
    assert got[0].keys == [ed, "744DD10563A564981AA6CCDF9448670657674422"]       # comment and spaces dropped
    # sha256 of the key data, unpadded base64: what `ssh-keygen -l` prints for this key
    assert key_fingerprint(ed) == "SHA256:XJcZxvSxXD9YQXWGiBzspIM3PsUSJicRHP8vgHOntms"
    rsa_data = "AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7"                                   # an ssh-rsa blob
    for key, reason in ((f"ssh-ed25519 {rsa_data}", "does not hold a ssh-ed25519 key"),
                        ("9448 6706 5767 4422", "nor a full GPG fingerprint"),        # a short key id
                        ("ssh-ed25519 not-base64!", "neither an OpenSSH public key")):
        with pytest.raises(RecordRejected, match=reason):
            parse_approvers(f"approvers:\n  - {{login: sam, roles: [cto], keys: ['{key}']}}\n")


def test_a_commit_message_cannot_forge_the_signature_verdict_of_another_commit(tmp_path):
    """git's output for a commit ends with its message, which its author writes freely. Q's message holds the
    bytes of a whole log record (separators \\x1e and \\x1f included) for the earlier commit P, saying that
    sam's listed key signed it (%G? G, his fingerprint) and that P's trailer names him. Each commit's fields are
    read on their own, so P stays unsigned:
    P 02-03 add 1000 (HIGH), trailer sam, unsigned     -> sam asserted: missing security-engineer, engineering-lead
    Q 02-04 add 3000 (MEDIUM), no trailer, the forged record in its message"""
    _key, public, fingerprint = ssh_key(tmp_path, "sam")
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    p = commit(repo, L1000, "2026-02-03T09:00:00Z", "Accept CVE-2026-1000" + trailers("sam"))
    forged = "\x1f".join([p, "", "Dev", "dev@acme.test", "2026-02-03T10:00:00+00:00", "2026-02-03T10:00:00+00:00",
                          "G", fingerprint, fingerprint, "sam", "Accept CVE-2026-1000" + trailers("sam")])
    commit(repo, L1000 + L3000, "2026-02-04T09:00:00Z", "Accept CVE-2026-3000\n\x1e" + forged)
    sc = scenario_with_scans(tmp_path)
    (sc.landing / "inventory" / "approvers.yaml").write_text(
        f"approvers:\n  - {{login: sam, roles: [security-engineer], emails: [sam@acme.test], keys: ['{public}']}}\n")
    s = collect_git_history(repo, [FileSpec(".trivyignore", "_global")], sc.landing, tmp_path / "state.json")
    assert s.changes_listed == 2
    record = json.loads((sc.landing / "approvals" / "_global" / "2026-02-03" / f"{p}.json").read_text())
    assert record["commit"]["signature"]["status"] == "none" and record["landed_at"] == "2026-02-03T09:00:00Z"
    e = by_id(sc.kpis(date(2026, 2, 2)))["CVE-2026-1000"]
    assert e["missing_roles"] == "security-engineer, engineering-lead"
    assert e["evidence"] == "Sam: asserted, not verified (commit not signed)"


def test_a_record_from_before_signatures_were_checked_counts_no_trailer(tmp_path, signed_history):
    """A change record an earlier collector wrote has no `commit.signature`: S1's trailer by sam, signed with his
    listed key, is then asserted (1000 HIGH: both roles missing) until the history is collected again."""
    repo, shas, _fingerprint, approvers = signed_history
    sc = scenario_with_scans(tmp_path)
    (sc.landing / "inventory" / "approvers.yaml").write_text(approvers)
    collect_git_history(repo, [FileSpec(".trivyignore", "_global")], sc.landing, tmp_path / "state.json")
    path = sc.landing / "approvals" / "_global" / "2026-02-02" / f"{shas['S1']}.json"
    record = json.loads(path.read_text())
    del record["commit"]["signature"]
    path.write_text(json.dumps(record))
    # as the earlier collector wrote it: its state names these bytes, so the next collection may replace them
    state = json.loads((tmp_path / "state.json").read_text())
    written = next(iter(state["files"].values()))["written"]
    written[str(path.relative_to(sc.landing))] = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "state.json").write_text(json.dumps(state))
    e = by_id(sc.kpis(date(2026, 2, 2)))["CVE-2026-1000"]
    assert e["missing_roles"] == "security-engineer, engineering-lead"
    assert e["evidence"].endswith("Sam: asserted, not verified (commit not signed)")
    collect_git_history(repo, [FileSpec(".trivyignore", "_global")], sc.landing, tmp_path / "state.json")
    assert by_id(sc.kpis(date(2026, 2, 2)))["CVE-2026-1000"]["missing_roles"] == "engineering-lead"


def test_a_commit_sha_that_is_a_path_or_a_future_date_is_refused_and_the_rest_collected(tmp_path, monkeypatch):
    """The API lists five commits of .trivyignore: one whose `sha` is '../../../../escaped' (used as a
    file name it would write outside the landing zone), one dated 9999, one whose `commit` is not an
    object (so it has no date), one whose content is a download link to a local file (file://), and a
    good one."""
    from ifc_scan.collect.exception_history import FileSpec
    from ifc_scan_tests.servers import Reply, scripted_http
    good, future, garbled, evil = sha_of("good"), sha_of("future"), sha_of("garbled"), "../../../../escaped"
    local, private = sha_of("local"), tmp_path / "private.txt"
    private.write_text("CVE-LOCAL-FILE exp:2099-01-01\n")
    listed = [FakeGitHub.commit(evil, "2026-02-03T10:00:00Z", "mallory", "escape", L2000),
              FakeGitHub.commit(local, "2026-02-02T12:00:00Z", "mallory", "big file", L2000),
              FakeGitHub.commit(future, "9999-12-31T00:00:00Z", "mallory", "from the future", L2000),
              {**FakeGitHub.commit(garbled, "2026-02-02T10:00:00Z", "mallory", "x", L2000), "commit": "garbled"},
              FakeGitHub.commit(good, "2026-02-01T10:00:00Z", "dev", "Accept CVE-2026-1000", L1000)]

    def answer(req):
        path = urllib.parse.urlsplit(req.path).path
        if path == f"/repos/{REPO}/commits":
            return Reply(body=[{k: v for k, v in c.items() if k != "_content"} for c in listed])
        if path.endswith("/pulls"):
            return Reply(body=[])
        if "/contents/" in path and req.query.get("ref") == local:     # over 1 MB: a download link instead
            return Reply(body={"type": "file", "encoding": "none", "content": "", "download_url": private.as_uri()})
        if "/contents/" in path:
            text = L1000 if req.query.get("ref") == good else L2000
            return Reply(body={"type": "file", "encoding": "base64", "content": base64.b64encode(text.encode()).decode()})
        return Reply(404, {"message": "Not Found"})
    monkeypatch.setenv("GH_TEST_TOKEN", TOKEN)
    landing, state = tmp_path / "a" / "landing", tmp_path / "state" / "exception-history.json"
    with scripted_http(answer) as (base, _seen):
        s = collect_github_history(REPO, [FileSpec(".trivyignore", "_global")], landing, state, base_url=base,
                                   token_env="GH_TEST_TOKEN", sleep=lambda _s: None)
    assert not list(tmp_path.rglob("escaped*"))
    assert s.bad_items[0] == ".trivyignore: a listed commit: sha '../../../../escaped' is not 40 hexadecimal digits"
    # the listing's bad sha first, then the changes from the listing's end (its oldest) up: garbled,
    # future, local
    assert len(s.bad_items) == 4 and s.bad_items[1] == f"commit {garbled[:12]} date: no time given"
    assert f"commit {future[:12]} date: dated '9999-12-31T00:00:00Z', after now" in s.bad_items[2]
    assert s.bad_items[3] == (f".trivyignore at {local[:12]}: download URL refused {private.as_uri()}: "
                              "only https URLs are followed")
    assert not any(b"CVE-LOCAL-FILE" in p.read_bytes() for p in landing.rglob("*") if p.is_file())
    assert sorted(p.relative_to(landing).as_posix() for p in landing.rglob("*") if p.is_file()) == [
        f"approvals/_global/2026-02-01/{good}.json", "exceptions/_global/2026-02-01/.trivyignore"]
    assert json.loads(state.read_text())["files"][f"github:{REPO}:main:.trivyignore"]["history"] == [good]
