"""Tickets against scans: GitHub issues and Jira (search answer and CSV export) linked to findings by the
vulnerability IDs they name; every reconciliation figure worked out by hand."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest

from ifc_scan.ingest.tickets import TicketRejected, parse_jira_csv, parse_jira_search, vuln_ids_in
from ifc_scan_tests.scenario import Scenario, vuln

C1, H1, H2, H3, H4, M1 = ("CVE-2026-1001", "CVE-2026-2001", "CVE-2026-2002", "CVE-2026-2003", "CVE-2026-2004",
                          "CVE-2026-3001")


def issue(n, title, created, closed=None, body="", pr=False):
    return {"url": f"https://api.github.com/repos/acme/app/issues/{n}", "html_url": f"https://github.com/acme/app/issues/{n}",
            "number": n, "title": title, "user": {"login": "dev"}, "labels": [{"name": "security"}],
            "state": "closed" if closed else "open", "created_at": created, "updated_at": closed or created,
            "closed_at": closed, "body": body, **({"pull_request": {"url": "x"}} if pr else {})}


def scenario(tmp_path) -> Scenario:
    """Daily 02:00 scans of ghcr.io/acme/api from Mon 2026-02-23: C1 (CRITICAL), H1-H4 (HIGH), M1 (MEDIUM) from the
    first scan; image 2 from 03-04 without M1, image 3 from 03-05 without H3 (both fixed in W10, Mon 03-02 to
    Mon 03-09)."""
    sc = Scenario(tmp_path)
    day = datetime(2026, 2, 23, 2)
    while day < datetime(2026, 3, 9):
        vs = [vuln(C1, "openssl", "CRITICAL"), vuln(H1, "zlib", "HIGH"), vuln(H2, "curl", "HIGH"),
              vuln(H4, "pcre2", "HIGH")]
        if day < datetime(2026, 3, 5):
            vs.append(vuln(H3, "expat", "HIGH"))
        if day < datetime(2026, 3, 4):
            vs.append(vuln(M1, "glibc", "MEDIUM"))
        # a fix is a new image without the vulnerability (the same image losing it would be a withdrawal)
        sc.registry_scan("3" if day >= datetime(2026, 3, 5) else "2" if day >= datetime(2026, 3, 4) else "1", day, vs)
        day += timedelta(days=1)
    gh = [
        issue(1, f"{C1} openssl in api", "2026-02-23T10:00:00Z", closed="2026-03-01T12:00:00Z"),
        issue(2, f"Upgrade zlib ({H1})", "2026-03-03T09:00:00Z"),
        issue(3, f"{H3}: expat", "2026-02-24T08:00:00Z"),
        issue(4, "glibc", "2026-02-25T12:00:00Z", closed="2026-03-04T12:00:00Z", body=f"Tracks {M1}."),
        issue(5, f"Bump curl for {H2}", "2026-02-23T05:00:00Z", pr=True),              # a pull request, not a ticket
        issue(6, f"{H2} in ghcr.io/acme/web", "2026-02-23T06:00:00Z"),                 # another image
    ]
    p = sc.landing / "tickets" / "github" / "2026-03-08" / "issues.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(gh))
    jira = {"startAt": 0, "maxResults": 50, "total": 1, "issues": [
        {"id": "10008", "key": "SEC-8", "self": "https://acme.atlassian.net/rest/api/3/issue/10008", "fields": {
            "summary": "openssl CRITICAL in api", "labels": ["security"],
            "description": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": f"Trivy reports {C1} in the api image."}]}]},
            "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
            "created": "2026-02-23T21:00:00.000+0100", "updated": "2026-03-02T10:00:00.000+0100",
            "resolutiondate": None}}]}
    p = sc.landing / "tickets" / "jira" / "2026-03-08" / "search.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps(jira))
    p = sc.landing / "tickets" / "jira" / "2026-03-08" / "export.csv"
    p.write_text("Summary,Issue key,Issue id,Status,Created,Updated,Resolved,Labels,Labels,Description\n"
                 f"curl in api,SEC-7,10007,To Do,05/Mar/26 9:00 AM,05/Mar/26 9:00 AM,,security,trivy,\"See {H2}\"\n")
    return sc


def test_reconciliation_worked_by_hand(tmp_path):
    sc = scenario(tmp_path)
    # W09 (T = Mon 03-02): the only ticket snapshots are dated 03-08, so no ticket evidence yet: not judged
    k = sc.kpis(date(2026, 2, 23))
    assert (k["tickets"]["evidence_collected"], k["tickets"]["tickets_known"]) == (False, 0)
    assert "HIGH/CRITICAL findings ticketed within the escalation window" in \
        next(c for c in k["controls"] if c["id"] == "8.8")["no_data"]

    k = sc.kpis(date(2026, 3, 2))        # W10, T = Mon 2026-03-09 00:00
    t = k["tickets"]
    # tickets: GitHub #1 #2 #3 #4 #6 (#5 is a pull request) and Jira SEC-8, SEC-7
    assert (t["evidence_collected"], t["tickets_known"]) == (True, 7)
    # C1 detected 02-23 02:00, due 02-24 02:00: #1 was opened 02-23 10:00 (SEC-8 at 20:00 UTC too) -> on time
    assert t["escalation"]["CRITICAL"] == {"due": 1, "on_time": 1, "late": 0, "missing": 0}
    # HIGH open at T: H1, H2, H4 (H3 fixed 03-05), each due 03-02 02:00:
    #   H1 <- #2 opened 03-03 09:00: late; H2 <- SEC-7 opened 03-05 09:00: late (#5 is a PR, #6 names another
    #   image); H4 has no ticket: missing
    assert t["escalation"]["HIGH"] == {"due": 3, "on_time": 0, "late": 2, "missing": 1}
    # #1 was closed 03-01 12:00 while C1 is still open at T: closed without a fix (SEC-8 is still open)
    assert t["closed_without_fix"] == 1
    # H3 fixed 03-05 02:00 while #3 stays open; M1 fixed 03-04 02:00 and #4 closed at 12:00: not counted
    assert t["fixed_ticket_open"] == 1
    # ticket MTTR: #4 (M1, MEDIUM) closed in the week, 02-25 12:00 -> 03-04 12:00 = 168 h; #1 closed before S
    assert t["ticket_mttr_hours"]["MEDIUM"] == {"n": 1, "mean": 168.0, "median": 168.0}
    assert t["ticket_mttr_hours"]["CRITICAL"]["n"] == 0
    # beside it, the scan MTTR: M1 02-23 02:00 -> 03-04 02:00 = 216 h
    assert k["mttr_hours"]["MEDIUM"]["mean"] == 216.0
    rows = sc.result.populations["tickets"]
    assert {(r["kind"], r["vulnerability_id"], r["status"], r["ticket"]) for r in rows if r["kind"] == "escalation"} == {
        ("escalation", C1, "on_time", "github:acme/app#1"), ("escalation", H1, "late", "github:acme/app#2"),
        ("escalation", H2, "late", "jira:SEC-7"), ("escalation", H4, "missing", None)}
    assert [(r["ticket"], r["vulnerability_id"]) for r in rows if r["kind"] == "closed_without_fix"] == [
        ("github:acme/app#1", C1)]
    assert [(r["ticket"], r["vulnerability_id"]) for r in rows if r["kind"] == "fixed_ticket_open"] == [
        ("github:acme/app#3", H3)]
    c88 = next(c for c in k["controls"] if c["id"] == "8.8")
    assert "no ticket closed while its finding is open" in c88["failed"]


def test_a_changed_escalation_window_changes_the_judgement(tmp_path):
    """With HIGH escalation 10 days (240 h), H1-H4 are due 03-05 02:00: H1 (#2, 03-03) is on time, H2 (SEC-7,
    03-05 09:00) late, H4 missing."""
    from ifc_scan.policy import load_policy
    sc = scenario(tmp_path)
    policy = load_policy()
    policy["escalation_hours"] = {"CRITICAL": 24, "HIGH": 240}
    t = sc.kpis(date(2026, 3, 2), policy=policy)["tickets"]
    assert t["escalation"]["HIGH"] == {"due": 3, "on_time": 1, "late": 1, "missing": 1}


def test_readers_name_ids_times_and_refuse_what_they_cannot_read():
    assert vuln_ids_in("cve-2026-1001 and GHSA-JFH8-C2JP-5V3Q, GO-2026-1234; CVE-2026-1001") == [
        "CVE-2026-1001", "GHSA-jfh8-c2jp-5v3q", "GO-2026-1234"]
    (t,) = parse_jira_search(json.dumps({"issues": [{"key": "SEC-1", "self": "https://j.example/rest/api/2/issue/1",
                                                   "fields": {"summary": "x", "description": "CVE-2026-0001",
                                                              "created": "2026-03-01T10:00:00.000+0200",
                                                              "status": {"name": "Done", "statusCategory": {"key": "done"}},
                                                              "resolutiondate": "2026-03-02T10:00:00.000+0200"}}]}))
    assert (t.created_at, t.closed_at, t.state, t.url) == (datetime(2026, 3, 1, 8), datetime(2026, 3, 2, 8), "closed",
                                                           "https://j.example/browse/SEC-1")
    with pytest.raises(TicketRejected, match="no date format"):
        parse_jira_csv("Issue key,Created\nSEC-2,yesterday\n")
    with pytest.raises(TicketRejected, match="not a Jira CSV export"):
        parse_jira_csv("a,b\n1,2\n")


def test_github_issues_collected_paginated_and_incrementally_then_read(tmp_path, monkeypatch):
    """A local server answering GET /repos/{o}/{r}/issues in GitHub's shape, two issues a page with a Link
    header; the second collection asks only for what changed since (the `since` cursor)."""
    import threading
    import urllib.parse
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ifc_scan.collect.tickets import collect_github_issues
    from ifc_scan.ingest.runner import ingest
    from ifc_scan.warehouse.db import connect
    issues = [issue(1, "CVE-2026-1001 openssl", "2026-02-23T10:00:00Z", closed="2026-03-01T12:00:00Z"),
              issue(2, "zlib", "2026-03-03T09:00:00Z", body="CVE-2026-2001"),
              issue(3, "curl", "2026-03-04T09:00:00Z", body="CVE-2026-2002", pr=True)]
    seen = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            u = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(u.query))
            seen.append((q, self.headers.get("Authorization")))
            items = [i for i in issues if not q.get("since") or i["updated_at"] > q["since"]]
            page = int(q.get("page", "1"))
            body = json.dumps(items[(page - 1) * 2: page * 2]).encode()
            self.send_response(200)
            if page * 2 < len(items):
                nq = urllib.parse.urlencode({**q, "page": str(page + 1)})
                self.send_header("Link", f'<http://{self.headers["Host"]}{u.path}?{nq}>; rel="next"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    monkeypatch.setenv("GH_TICKETS_TOKEN", "ghp_tickets_token")
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        s = collect_github_issues("acme/app", tmp_path / "landing", tmp_path / "state.json", base_url=base,
                                  token_env="GH_TICKETS_TOKEN", now=datetime(2026, 3, 8, 6))
        assert (s["issues"], s["written"]) == (3, "tickets/github/2026-03-08/acme__app-060000.json")
        assert [q.get("page", "1") for q, _a in seen] == ["1", "2"] and seen[0][0]["labels"] == "security"
        assert all(a == "Bearer ghp_tickets_token" for _q, a in seen)
        issues[1] = issue(2, "zlib", "2026-03-03T09:00:00Z", closed="2026-03-08T10:00:00Z", body="CVE-2026-2001")
        s = collect_github_issues("acme/app", tmp_path / "landing", tmp_path / "state.json", base_url=base,
                                  token_env="GH_TICKETS_TOKEN", now=datetime(2026, 3, 9, 6))
        assert seen[-1][0]["since"] == "2026-03-04T09:00:00Z" and s["issues"] == 1     # only #2 changed since
    finally:
        srv.shutdown()
    ingest(tmp_path / "landing", tmp_path / "w.duckdb", progress=lambda m: None)
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        rows = con.execute("SELECT key, state, CAST(snapshot_date AS VARCHAR) FROM tickets ORDER BY key, snapshot_date").fetchall()
    # the pull request (#3) is no ticket; #2 is open in the 03-08 snapshot and closed in the 03-09 one
    assert rows == [("acme/app#1", "closed", "2026-03-08"), ("acme/app#2", "open", "2026-03-08"),
                    ("acme/app#2", "closed", "2026-03-09")]


def test_ticket_files_outside_a_date_folder_or_unreadable_are_rejected_by_name(tmp_path):
    from ifc_scan.ingest.runner import ingest
    land = tmp_path / "landing"
    for rel, text in (("tickets/github/latest/issues.json", "[]"), ("tickets/github/issues.json", "[]"),
                      ("tickets/jira/2026-03-08/export.csv", "Issue key,Created\nSEC-2,yesterday\n"),
                      ("tickets/gitlab/2026-03-08/issues.json", "[]"),
                      ("tickets/github/2026-03-08/ok.json", json.dumps([issue(9, "CVE-2026-9999", "2026-03-01T00:00:00Z")]))):
        (land / rel).parent.mkdir(parents=True, exist_ok=True)
        (land / rel).write_text(text)
    reasons = dict(ingest(land, tmp_path / "w.duckdb", progress=lambda m: None).rejections)
    assert "not in a YYYY-MM-DD date folder" in reasons["tickets/github/latest/issues.json"]
    assert "not in a YYYY-MM-DD date folder" in reasons["tickets/github/issues.json"]
    assert "no date format Jira exports" in reasons["tickets/jira/2026-03-08/export.csv"]
    assert "unknown ticket system folder 'gitlab'" in reasons["tickets/gitlab/2026-03-08/issues.json"]
    assert "tickets/github/2026-03-08/ok.json" not in reasons


def test_an_issue_dated_in_the_future_does_not_move_the_cursor_past_now(tmp_path, monkeypatch):
    """#2 claims updated_at 9999-12-31: skipped and named; the cursor stays at #1's time, so #3, updated
    later, is collected next time (with #2 taken as the cursor, nothing ever would be)."""
    from ifc_scan.collect.tickets import collect_github_issues
    from ifc_scan_tests.servers import Reply, scripted_http
    issues = [issue(1, "CVE-2026-1001 openssl", "2026-03-01T10:00:00Z"),
              issue(2, "CVE-2026-2001 zlib", "2026-03-02T10:00:00Z"), issue(4, "no number", "2026-03-02T11:00:00Z")]
    issues[1]["updated_at"] = "9999-12-31T00:00:00Z"
    issues[2]["number"] = "4/../../x"

    def answer(req):
        return Reply(body=[i for i in issues if not req.query.get("since") or i["updated_at"] > req.query["since"]])
    state = tmp_path / "state.json"
    with scripted_http(answer) as (base, seen):
        s = collect_github_issues("acme/app", tmp_path / "landing", state, base_url=base, now=datetime(2026, 3, 8, 6))
        assert s["issues"] == 1 and len(s["bad_items"]) == 2
        assert "issue #2 updated_at: dated '9999-12-31T00:00:00Z', after now" in s["bad_items"][0]
        assert "is not an integer" in s["bad_items"][1]
        assert json.loads(state.read_text()) == {"acme/app|labels=security": "2026-03-01T10:00:00Z"}
        issues.append(issue(3, "CVE-2026-3001 curl", "2026-03-08T09:00:00Z"))
        s = collect_github_issues("acme/app", tmp_path / "landing", state, base_url=base, now=datetime(2026, 3, 9, 6))
    assert seen[-1].query["since"] == "2026-03-01T10:00:00Z" and s["issues"] == 1
    written = json.loads((tmp_path / "landing" / s["written"]).read_text())
    assert [i["number"] for i in written] == [3]


def test_a_server_trickling_its_answer_is_cut_off_at_the_deadline(tmp_path, monkeypatch):
    """The whole answer, status line included, one byte every 0.2 s: cut off at the 1 s total deadline
    with an error naming the URL (no query), not held for the minutes the trickle would take."""
    from ifc_scan.collect.github import CollectError
    from ifc_scan.collect.http import Limits
    from ifc_scan.collect.tickets import collect_github_issues
    from ifc_scan_tests.servers import Reply, finishes_within, scripted_http
    with scripted_http(lambda req: Reply(body=[issue(1, "x", "2026-03-01T10:00:00Z")], trickle=0.2)) as (base, _s):
        with pytest.raises(CollectError) as err:
            finishes_within(20, collect_github_issues, "acme/app", tmp_path / "landing", tmp_path / "state.json",
                            base_url=base, limits=Limits(answer_seconds=1.0))
    assert str(err.value) == f"{base}/repos/acme/app/issues?…: cut off after 1 s (total deadline)"
    assert not (tmp_path / "state.json").exists() and not (tmp_path / "landing").exists()
