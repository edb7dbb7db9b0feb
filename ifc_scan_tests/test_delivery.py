"""Delivery of a published week to real local servers: an SMTP server (aiosmtpd) that requires STARTTLS and
authentication, and an HTTP server that records what it receives (Slack-compatible webhook, PagerDuty
Events v2) and can fail on demand. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import base64
import email
import json
import ssl
import threading
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ifc_scan.deliver import deliver_week
from ifc_scan.policy import load_policy
from ifc_scan.warehouse.db import connect
from ifc_scan_tests.scenario import Scenario, vuln
from ifc_scan_tests.servers import free_port, self_signed

PASSWORD = "smtp-secret-do-not-log-789"
WEBHOOK_SECRET_PATH = "/services/T000/B000/XXXXsecretXXXX"
ROUTING_KEY = "R0UTINGKEY0000000000000000000000"


@pytest.fixture
def smtp_server(tmp_path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    received, logins = [], []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "tls": session.ssl is not None,
                             "msg": email.message_from_bytes(envelope.content)})
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"ifc-scan" and auth_data.password == PASSWORD.encode()
        logins.append(ok)
        return AuthResult(success=ok)

    port = free_port()
    ctrl = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                      authenticator=authenticator, auth_required=True, auth_require_tls=True)
    ctrl.start()
    yield {"port": port, "received": received, "logins": logins, "ca": str(cert)}
    ctrl.stop()


@pytest.fixture
def http_recorder():
    state = {"posts": [], "fail": set()}      # paths answered 500

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state["posts"].append({"path": self.path, "json": json.loads(body)})
            code = 500 if self.path in state["fail"] else (202 if self.path == "/v2/enqueue" else 200)
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    state["base"] = f"http://127.0.0.1:{srv.server_address[1]}"
    yield state
    srv.shutdown()


def published(tmp_path):
    """W10 (Mon 2026-03-02 .. Mon 03-09) with CVE-2026-0666 CRITICAL open in ghcr.io/acme/api's production image."""
    from ifc_scan_tests.test_period import publish
    sc = Scenario(tmp_path / "sc")
    for d in range(2, 9):
        sc.registry_scan("A", datetime(2026, 3, d, 2), [vuln("CVE-2026-0666", "openssl", "CRITICAL"),
                                                         vuln("CVE-2026-0777", "zlib", "LOW")])
    return publish(sc, tmp_path, mondays=[date(2026, 3, 2)])


def env_for(smtp, http):
    return {"IFC_SCAN_SMTP_HOST": "127.0.0.1", "IFC_SCAN_SMTP_PORT": str(smtp["port"]), "IFC_SCAN_SMTP_USER": "ifc-scan",
            "IFC_SCAN_SMTP_PASSWORD": PASSWORD, "IFC_SCAN_SMTP_TO": "security@acme.test,oncall@acme.test",
            "IFC_SCAN_SMTP_FROM": "ifc-scan@acme.test", "IFC_SCAN_SMTP_CA_FILE": smtp["ca"],
            "IFC_SCAN_WEBHOOK_URL": http["base"] + WEBHOOK_SECRET_PATH, "IFC_SCAN_PAGERDUTY_ROUTING_KEY": ROUTING_KEY,
            "IFC_SCAN_PAGERDUTY_URL": http["base"] + "/v2/enqueue", "IFC_SCAN_REPORT_URL": "https://reports.acme.test/ifc/"}


NOW = datetime(2026, 3, 9, 6)     # the Monday morning the week is published


def test_a_published_week_with_a_critical_arrives_once_by_email_webhook_and_pagerduty(tmp_path, smtp_server, http_recorder):
    reports = published(tmp_path)
    env, sleeps, logged = env_for(smtp_server, http_recorder), [], []
    with connect(tmp_path / "w.duckdb") as con:
        done = deliver_week(con, reports, "2026-W10", load_policy(), now=NOW, env=env, sleep=sleeps.append,
                            log=logged.append)
        assert [(d["kind"], d["channel"], d["result"]) for d in done] == [
            ("weekly", "email", "ok"), ("weekly", "webhook", "ok"), ("critical", "webhook", "ok"),
            ("critical", "pagerduty", "ok")]
        # the email: over STARTTLS, after AUTH, to both recipients, the verdict and the CRITICAL in the subject,
        # the report attached and linked
        (mail,) = smtp_server["received"]
        assert mail["tls"] and smtp_server["logins"] == [True] and sorted(mail["to"]) == ["oncall@acme.test", "security@acme.test"]
        assert mail["msg"]["Subject"] == "[ifc_scan] 2026-W10: NOT COMPLIANT - 1 CRITICAL in production"
        parts = {p.get_content_type(): p for p in mail["msg"].walk()}
        text = parts["text/plain"].get_payload(decode=True).decode()
        assert "CVE-2026-0666 in ghcr.io/acme/api (openssl)" in text
        assert "https://reports.acme.test/ifc/2026-W10/report.html" in text
        assert parts["text/html"].get_filename() == "ifc-scan-2026-W10.html"
        assert parts["text/html"].get_payload(decode=True) == (reports / "2026-W10" / "report.html").read_bytes()
        # the webhook: the weekly message, then the CRITICAL alert; PagerDuty Events v2 with the routing key
        hooks = [p for p in http_recorder["posts"] if p["path"] == WEBHOOK_SECRET_PATH]
        assert hooks[0]["json"]["text"] == "[ifc_scan] 2026-W10: NOT COMPLIANT - 1 CRITICAL in production"
        assert "1 new CRITICAL in production" in hooks[1]["json"]["text"]
        (pd,) = [p["json"] for p in http_recorder["posts"] if p["path"] == "/v2/enqueue"]
        assert (pd["routing_key"], pd["event_action"], pd["payload"]["severity"], pd["payload"]["source"]) == (
            ROUTING_KEY, "trigger", "critical", "ifc_scan")
        assert pd["payload"]["custom_details"]["findings"][0]["vulnerability_id"] == "CVE-2026-0666"
        # recorded: what, to whom (no secret), when, result
        rows = con.execute("SELECT kind, channel, target, result, attempts, sent_at FROM deliveries ORDER BY kind DESC, channel").fetchall()
        assert rows[0][:5] == ("weekly", "email", f"smtp://127.0.0.1:{smtp_server['port']} to security@acme.test, oncall@acme.test", "ok", 1)
        assert all(r[5] == NOW for r in rows)
        assert not any(WEBHOOK_SECRET_PATH in str(r) or ROUTING_KEY in str(r) or PASSWORD in str(r)
                       for r in con.execute("SELECT * FROM deliveries").fetchall())
        assert not any(s in m for m in logged for s in (WEBHOOK_SECRET_PATH, ROUTING_KEY, PASSWORD))
        # once: the same published week again sends nothing (the CRITICAL was alerted already)
        again = deliver_week(con, reports, "2026-W10", load_policy(), now=NOW, env=env, sleep=sleeps.append)
        assert [d["result"] for d in again] == ["skipped: already delivered", "skipped: already delivered"]
        assert len(smtp_server["received"]) == 1 and len(http_recorder["posts"]) == 3 and sleeps == []


def test_a_failing_server_is_retried_then_recorded_failed_and_others_still_deliver(tmp_path, smtp_server, http_recorder):
    reports = published(tmp_path)
    env, sleeps = env_for(smtp_server, http_recorder), []
    http_recorder["fail"].add(WEBHOOK_SECRET_PATH)
    with connect(tmp_path / "w.duckdb") as con:
        done = deliver_week(con, reports, "2026-W10", load_policy(), now=NOW, env=env, sleep=sleeps.append)
        results = {(d["kind"], d["channel"]): (d["result"], d.get("attempts")) for d in done}
        assert results == {("weekly", "email"): ("ok", 1), ("weekly", "webhook"): ("failed", 3),
                           ("critical", "webhook"): ("failed", 3), ("critical", "pagerduty"): ("ok", 1)}
        assert sleeps == [1, 2, 1, 2]                  # bounded: 3 attempts, backoff 1 s then 2 s, per delivery
        assert len([p for p in http_recorder["posts"] if p["path"] == WEBHOOK_SECRET_PATH]) == 6
        (detail,) = {r[0] for r in con.execute("SELECT detail FROM deliveries WHERE result='failed'").fetchall()}
        assert detail == f"HTTP 500 from {http_recorder['base']}" and WEBHOOK_SECRET_PATH not in detail
        # the server recovers: the next delivery sends the failed ones only (the email went already)
        http_recorder["fail"].clear()
        again = deliver_week(con, reports, "2026-W10", load_policy(), now=NOW, env=env, sleep=sleeps.append)
        assert [(d["kind"], d["channel"], d["result"]) for d in again] == [
            ("weekly", "email", "skipped: already delivered"), ("weekly", "webhook", "ok"), ("critical", "webhook", "ok")]
        assert len(smtp_server["received"]) == 1


def test_off_by_default_and_old_weeks_are_not_sent(tmp_path, http_recorder):
    reports = published(tmp_path)
    with connect(tmp_path / "w.duckdb") as con:
        assert deliver_week(con, reports, "2026-W10", load_policy(), now=NOW, env={}) == []
        late = deliver_week(con, reports, "2026-W10", load_policy(), now=NOW + timedelta(days=30),
                            env={"IFC_SCAN_WEBHOOK_URL": http_recorder["base"] + "/hook"})
        assert [d["result"] for d in late] == ["skipped: not a fresh week"] and http_recorder["posts"] == []
        assert con.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0


def test_the_sensor_reacts_to_a_published_week_and_the_job_delivers_it(tmp_path, http_recorder, monkeypatch):
    """Dagster: a weekly_report materialization makes delivery_sensor ask for deliver_job with that week; the
    job sends (webhook and PagerDuty here) and records. Unconfigured, the sensor skips and says why."""
    import dagster as dg

    from ifc_scan.definitions import defs
    from ifc_scan.defs.deliver import deliver_job, delivery_sensor
    from ifc_scan.defs.resources import IfcScanSettings, resources_for
    reports = published(tmp_path)
    instance = dg.DagsterInstance.ephemeral()
    instance.report_runless_asset_event(dg.AssetMaterialization("weekly_report", partition="2026-03-02"))
    for var in ("IFC_SCAN_SMTP_HOST", "IFC_SCAN_WEBHOOK_URL", "IFC_SCAN_PAGERDUTY_ROUTING_KEY", "IFC_SCAN_POLICY"):
        monkeypatch.delenv(var, raising=False)
    skipped = delivery_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs()))
    assert skipped.run_requests == [] and "no delivery channel configured" in skipped.skip_message

    monkeypatch.setenv("IFC_SCAN_WEBHOOK_URL", http_recorder["base"] + "/hook")
    monkeypatch.setenv("IFC_SCAN_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("IFC_SCAN_PAGERDUTY_URL", http_recorder["base"] + "/v2/enqueue")
    (req,) = delivery_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs())).run_requests
    assert req.run_config == {"ops": {"deliver_published_week": {"config": {"week": "2026-03-02"}}}}
    settings = IfcScanSettings(landing=str(tmp_path / "sc" / "landing"), warehouse=str(tmp_path / "w.duckdb"),
                               reports=str(reports))
    cfg = {"ops": {"deliver_published_week": {"config": {"week": "2026-03-02", "force": True}}}}
    assert deliver_job.execute_in_process(run_config=cfg, resources=resources_for(settings)).success
    assert sorted(p["path"] for p in http_recorder["posts"]) == ["/hook", "/hook", "/v2/enqueue"]
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM deliveries WHERE result='ok'").fetchone()[0] == 3


def test_the_policy_file_configures_what_is_not_secret_and_refuses_unknown_keys(tmp_path):
    from ifc_scan.deliver import Channels
    ok = tmp_path / "policy.yaml"
    ok.write_text("escalation_hours: {CRITICAL: 12, HIGH: 72}\n"
                  "delivery:\n  report_url: https://r.example/\n  email: {to: [sec@example.com], from: a@example.com,"
                  " smtp_host: smtp.example.com, smtp_port: 2525, username: bot}\n")
    policy = load_policy(ok)
    assert policy["escalation_hours"] == {"CRITICAL": 12, "HIGH": 72}
    ch = Channels.from_policy(policy, env={"IFC_SCAN_SMTP_PASSWORD": "pw"})
    assert (ch.configured(), ch.email["host"], ch.email["port"], ch.email["sender"], ch.email["to"],
            ch.email["password"], ch.report_url) == (["email"], "smtp.example.com", 2525, "a@example.com",
                                                     ["sec@example.com"], "pw", "https://r.example/")
    bad = tmp_path / "bad.yaml"
    bad.write_text("delivery:\n  webhook_url: https://hooks.example/secret\n")    # secrets belong in the environment
    with pytest.raises(ValueError, match="delivery.webhook_url"):
        load_policy(bad)


def test_the_delivery_job_fails_when_a_delivery_failed_after_its_retries(tmp_path, http_recorder, monkeypatch):
    """docs: a failing channel is recorded failed and the job fails with it (the Dagster run shows it).
    The job waits for real between attempts (1 s, 2 s per delivery)."""
    from ifc_scan.defs.deliver import deliver_job
    from ifc_scan.defs.resources import IfcScanSettings, resources_for
    reports = published(tmp_path)
    monkeypatch.setenv("IFC_SCAN_WEBHOOK_URL", http_recorder["base"] + "/down")
    http_recorder["fail"].add("/down")
    settings = IfcScanSettings(landing=str(tmp_path / "sc" / "landing"), warehouse=str(tmp_path / "w.duckdb"),
                               reports=str(reports))
    cfg = {"ops": {"deliver_published_week": {"config": {"week": "2026-W10", "force": True}}}}
    r = deliver_job.execute_in_process(run_config=cfg, resources=resources_for(settings), raise_on_error=False)
    assert not r.success
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        assert con.execute("SELECT channel, result, attempts FROM deliveries ORDER BY kind DESC").fetchall() == [
            ("webhook", "failed", 3), ("webhook", "failed", 3)]


# ---- secrets and deadlines against misbehaving servers (issue 29) ------------------------------------

HOOK_USER, HOOK_PASSWORD, HOOK_PATH_SECRET, HOOK_QUERY_TOKEN = "hookuser", "hook-pw-Zq81", "XXpathSECRETxx", "qtok-77"


def test_a_webhook_url_with_a_password_and_a_token_leaks_into_no_output(tmp_path, monkeypatch, capsys):
    """The webhook URL carries userinfo, a secret path and a query token. `ifc-scan deliver` sends to it
    (the password as Basic authentication), fails on a 500, then on a closed port, then succeeds; the
    secrets are in no log line, printed line, deliveries row, nor in the warehouse file's bytes."""
    from ifc_scan.cli import main
    from ifc_scan_tests.servers import Reply, scripted_http
    reports = published(tmp_path)
    db = tmp_path / "w.duckdb"
    codes = [500] * 6 + [200] * 2
    with scripted_http(lambda req: Reply(codes.pop(0), b"ok")) as (base, seen):
        port = base.rsplit(":", 1)[1]
        url = f"http://{HOOK_USER}:{HOOK_PASSWORD}@127.0.0.1:{port}/services/T1/B1/{HOOK_PATH_SECRET}?token={HOOK_QUERY_TOKEN}"
        for var in ("IFC_SCAN_SMTP_HOST", "IFC_SCAN_PAGERDUTY_ROUTING_KEY", "IFC_SCAN_POLICY"):
            monkeypatch.delenv(var, raising=False)
            monkeypatch.setattr("ifc_scan.deliver.time.sleep", lambda _s: None)
        monkeypatch.setenv("IFC_SCAN_WEBHOOK_URL", url)
        argv = ["deliver", "--week", "2026-W10", "--reports", str(reports), "--warehouse", str(db), "--force"]
        assert main(argv) == 1                       # 500 three times, for the weekly message and the alert
        monkeypatch.setenv("IFC_SCAN_WEBHOOK_URL", url.replace(f":{port}/", ":1/"))   # nothing listens on port 1
        assert main(argv) == 1
        monkeypatch.setenv("IFC_SCAN_WEBHOOK_URL", url)
        assert main(argv) == 0
    expected_auth = "Basic " + base64.b64encode(f"{HOOK_USER}:{HOOK_PASSWORD}".encode()).decode()
    assert len(seen) == 8 and all(r.headers["Authorization"] == expected_auth for r in seen)
    assert seen[0].path == f"/services/T1/B1/{HOOK_PATH_SECRET}?token={HOOK_QUERY_TOKEN}"
    out = capsys.readouterr()
    with connect(db, read_only=True) as con:
        rows = con.execute("SELECT * FROM deliveries ORDER BY sent_at, result").fetchall()
    assert [(r[3], r[8]) for r in rows].count(("webhook", "failed")) == 4 and len(rows) == 6
    assert {r[4] for r in rows} == {f"http://127.0.0.1:{port}", "http://127.0.0.1:1"}
    assert any("Connection refused" in str(r[9]) for r in rows)        # the reason is kept, without secrets
    everything = out.out + out.err + repr(rows)
    for secret in (HOOK_PASSWORD, HOOK_USER, HOOK_PATH_SECRET, HOOK_QUERY_TOKEN):
        assert secret not in everything, secret
        assert secret.encode() not in db.read_bytes(), secret


def test_a_trickling_webhook_is_cut_off_at_the_deadline(tmp_path):
    """The webhook answers one byte every 0.2 s: each attempt is cut off at 1 s, three attempts, recorded
    failed; deliver returns in seconds, not the minutes the trickle would take."""
    from ifc_scan.collect.http import Limits
    from ifc_scan_tests.servers import Reply, finishes_within, scripted_http
    reports = published(tmp_path)
    with scripted_http(lambda req: Reply(200, b"ok" * 200, trickle=0.2)) as (base, seen):
        env = {"IFC_SCAN_WEBHOOK_URL": base + WEBHOOK_SECRET_PATH}
        with connect(tmp_path / "w.duckdb") as con:
            done, secs = finishes_within(30, deliver_week, con, reports, "2026-W10", load_policy(), now=NOW, env=env,
                                         sleep=lambda _s: None, limits=Limits(request_seconds=1.0))
    assert secs < 15, secs
    assert [(d["kind"], d["result"], d["attempts"]) for d in done] == [("weekly", "failed", 3), ("critical", "failed", 3)]
    assert done[0]["detail"] == f"{base} unreachable: {base}: cut off after 1 s (total deadline)"
    assert len(seen) == 6


def test_a_trickling_smtp_server_is_cut_off_at_the_deadline(tmp_path):
    """An SMTP server whose greeting never ends (one byte every 0.1 s): each attempt cut off at 1 s."""
    from ifc_scan.collect.http import Limits
    from ifc_scan_tests.servers import finishes_within, trickling_tcp
    reports = published(tmp_path)
    with trickling_tcp(b"220-" + b"x" * 5000 + b"\r\n", every=0.1) as port:
        env = {"IFC_SCAN_SMTP_HOST": "127.0.0.1", "IFC_SCAN_SMTP_PORT": str(port), "IFC_SCAN_SMTP_USER": "ifc-scan",
               "IFC_SCAN_SMTP_PASSWORD": PASSWORD, "IFC_SCAN_SMTP_TO": "security@acme.test"}
        with connect(tmp_path / "w.duckdb") as con:
            done, secs = finishes_within(30, deliver_week, con, reports, "2026-W10", load_policy(), now=NOW, env=env,
                                         sleep=lambda _s: None, limits=Limits(request_seconds=1.0))
    assert secs < 15, secs
    assert [(d["channel"], d["result"], d["attempts"]) for d in done] == [("email", "failed", 3)]
    assert done[0]["detail"] == f"SMTP 127.0.0.1:{port}: cut off after 1 s (total deadline)"


def test_the_smtp_password_is_never_sent_without_starttls_off_this_machine(tmp_path):
    reports = published(tmp_path)
    env = {"IFC_SCAN_SMTP_HOST": "smtp.acme.test", "IFC_SCAN_SMTP_STARTTLS": "false", "IFC_SCAN_SMTP_USER": "ifc-scan",
           "IFC_SCAN_SMTP_PASSWORD": PASSWORD, "IFC_SCAN_SMTP_TO": "security@acme.test"}
    with connect(tmp_path / "w.duckdb") as con:
        (done,) = deliver_week(con, reports, "2026-W10", load_policy(), now=NOW, env=env, sleep=lambda _s: None)
    assert (done["result"], done["detail"]) == ("failed", "SMTP smtp.acme.test:587: not sent, the password would cross "
                                                          "the network unencrypted (STARTTLS is off)")
