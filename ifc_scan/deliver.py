"""Delivery of published weeks (docs/tickets-and-delivery.md): the weekly report by email (SMTP with
STARTTLS and authentication, the verdict in the subject, the report attached and/or linked), a
Slack-compatible webhook message when a week is published, and a PagerDuty Events v2 alert (and a
webhook message) when a CRITICAL finding reaches production that no earlier alert named.

Off by default: a channel is on when it is configured (the policy's `delivery:` section for what is not
secret; the environment for the rest, and always for secrets: IFC_SCAN_SMTP_PASSWORD,
IFC_SCAN_WEBHOOK_URL, IFC_SCAN_PAGERDUTY_ROUTING_KEY). Each delivery is recorded in the warehouse's
`deliveries` table (what, to whom, when, result); a delivery that succeeded is never sent again for
the same published revision; a failing one is retried a bounded number of times and then recorded as
failed. Only fresh weeks (ended within `fresh_days`) are delivered unless forced, so a backfill of
last year sends nothing.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

from ifc_scan.collect.http import (HttpClient, HttpError, Limits, Watchdog, is_loopback, loopback_http_allowed,
                                   redact_url, scrub)
from ifc_scan.kpis.stage import OPEN_STATES
from ifc_scan.kpis.view import WeekKpis
from ifc_scan.timeutil import iso_z

MAX_ATTEMPTS = 3
PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
# one send (connect to last byte) and one whole delivery run: a server that trickles is cut off
DELIVERY_LIMITS = Limits(request_seconds=30.0, collection_seconds=600.0)


class DeliveryError(Exception):
    pass


@dataclass
class Channels:
    # secrets are kept out of the repr, so no log line or error that shows a Channels shows them
    email: dict | None = field(repr=False)   # host, port, starttls, username, password, sender, to, attach, ca_file
    webhook_url: str | None = field(repr=False)
    pagerduty_key: str | None = field(repr=False)
    pagerduty_url: str
    report_url: str | None
    fresh_days: int

    @classmethod
    def from_policy(cls, policy: dict, env=None) -> "Channels":
        env = os.environ if env is None else env
        d = policy.get("delivery") or {}
        e = d.get("email") or {}
        to = [a.strip() for a in (env.get("IFC_SCAN_SMTP_TO") or ",".join(e.get("to") or [])).split(",") if a.strip()]
        host = env.get("IFC_SCAN_SMTP_HOST") or e.get("smtp_host")
        email = None
        if host and to:
            email = {"host": host, "port": int(env.get("IFC_SCAN_SMTP_PORT") or e.get("smtp_port") or 587),
                     "starttls": (env.get("IFC_SCAN_SMTP_STARTTLS") or str(e.get("starttls", True))).lower()
                     not in ("0", "false", "no"),
                     "username": env.get("IFC_SCAN_SMTP_USER") or e.get("username"),
                     "password": env.get("IFC_SCAN_SMTP_PASSWORD"),
                     "sender": env.get("IFC_SCAN_SMTP_FROM") or e.get("from") or e.get("sender") or "ifc-scan@localhost",
                     "to": to, "attach": e.get("attach_report", True), "ca_file": env.get("IFC_SCAN_SMTP_CA_FILE")}
        return cls(email, env.get("IFC_SCAN_WEBHOOK_URL") or None, env.get("IFC_SCAN_PAGERDUTY_ROUTING_KEY") or None,
                   env.get("IFC_SCAN_PAGERDUTY_URL") or PAGERDUTY_URL,
                   env.get("IFC_SCAN_REPORT_URL") or d.get("report_url"), int(d.get("fresh_days") or 8))

    def configured(self) -> list[str]:
        return [name for name, on in (("email", self.email), ("webhook", self.webhook_url),
                                      ("pagerduty", self.pagerduty_key)) if on]


def _slack_escape(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters; everything else shows as written."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ---- what a published week says ------------------------------------------------------------------

@dataclass
class PublishedWeek:
    week: str
    kpis: dict
    manifest_sha256: str
    folder: Path
    critical_in_prod: list[dict]      # finding_id, lineage, vulnerability_id, pkg_name

    @property
    def view(self) -> WeekKpis:
        return WeekKpis(self.kpis)

    def subject(self) -> str:
        """The verdict first; a week without new evidence says so, and where to look (D23)."""
        n = len(self.critical_in_prod)
        if self.view.no_new_evidence:
            return f"[ifc_scan] {self.week}: {self.view.verdict} - {self.view.evidence_line()}"
        return f"[ifc_scan] {self.week}: {self.view.verdict}" + (f" - {n} CRITICAL in production" if n else "")

    def link(self, report_url: str | None) -> str | None:
        return f"{report_url.rstrip('/')}/{self.week}/report.html" if report_url else None


def read_published(reports: str | Path, week: str) -> PublishedWeek:
    folder = Path(reports) / week
    try:
        kpis = json.loads((folder / "kpis.json").read_text())
        manifest = (folder / "manifest.json").read_bytes()
        with open(folder / "findings.csv", newline="", encoding="utf-8") as fh:
            findings = list(csv.DictReader(fh))
    except (OSError, json.JSONDecodeError) as exc:
        raise DeliveryError(f"{folder}: not a published week ({exc})") from None
    # the weekly stage's population, not a second definition: open and not excepted (critical_in_prod)
    crit = [{"finding_id": r["finding_id"], "lineage": r["lineage"], "vulnerability_id": r["vulnerability_id"],
             "pkg_name": r["pkg_name"]} for r in findings
            if r["severity"] == "CRITICAL" and r["state"] in OPEN_STATES and r["state"] != "excepted"]
    if len(crit) != kpis["critical_in_prod"]["count"]:
        raise DeliveryError(f"{week}: findings.csv lists {len(crit)} CRITICAL in production, kpis.json "
                            f"{kpis['critical_in_prod']['count']}: the published week is inconsistent")
    return PublishedWeek(week, kpis, hashlib.sha256(manifest).hexdigest(), folder, crit)


def email_message(pw: PublishedWeek, ch: Channels) -> EmailMessage:
    v = pw.view
    msg = EmailMessage()
    msg["Subject"] = pw.subject()
    msg["From"] = ch.email["sender"]
    msg["To"] = ", ".join(ch.email["to"])
    lines = [v.verdict_line(), "",
             f"CRITICAL in production (not excepted): {len(pw.critical_in_prod)}",
             f"Open overdue: {v.open_overdue} · open backlog: {v.open_backlog} · new: {v.new_findings} · "
             f"remediated: {v.remediated}", ""]
    lines += [f"  {c['vulnerability_id']} in {c['lineage']} ({c['pkg_name']})" for c in pw.critical_in_prod[:20]]
    link = pw.link(ch.report_url)
    if link:
        lines += ["", f"Report: {link}"]
    lines += ["", f"Verify: ifc-scan verify --week {pw.week}  (manifest sha256 {pw.manifest_sha256})"]
    msg.set_content("\n".join(lines))
    if ch.email.get("attach", True) and (pw.folder / "report.html").is_file():
        msg.add_attachment((pw.folder / "report.html").read_bytes(), maintype="text", subtype="html",
                           filename=f"ifc-scan-{pw.week}.html")
    return msg


def webhook_payload(pw: PublishedWeek, kind: str, findings: list[dict], report_url: str | None) -> dict:
    link = pw.link(report_url)
    head = pw.subject() if kind == "weekly" else f"[ifc_scan] {len(findings)} new CRITICAL in production ({pw.week})"
    body = [_slack_escape(pw.view.verdict_line())] if kind == "weekly" else []
    body += [f"• `{_slack_escape(f['vulnerability_id'])}` in `{_slack_escape(f['lineage'])}` ({_slack_escape(f['pkg_name'])})"
             for f in findings[:20]]
    if link:
        body.append(f"<{link}|Weekly report {pw.week}>")
    return {"text": _slack_escape(head),
            "blocks": [{"type": "header", "text": {"type": "plain_text", "text": head[:150]}},
                       {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(body)[:2900] or "-"}}]}


def pagerduty_event(pw: PublishedWeek, findings: list[dict], key: str, now: datetime, report_url: str | None) -> dict:
    event = {"routing_key": key, "event_action": "trigger",
             "dedup_key": f"ifc-scan:critical-in-production:{pw.week}:{pw.manifest_sha256[:12]}",
             "payload": {"summary": f"{len(findings)} new CRITICAL vulnerabilit{'y' if len(findings) == 1 else 'ies'} "
                                    f"in production ({pw.week})"[:1024],
                         "source": "ifc_scan", "severity": "critical", "timestamp": iso_z(now),
                         "component": ", ".join(sorted({f["lineage"] for f in findings}))[:1024],
                         "group": "container-image-scanning", "class": "vulnerability",
                         "custom_details": {"week": pw.week, "findings": findings[:50]}}}
    link = pw.link(report_url)
    if link:
        event["links"] = [{"href": link, "text": f"ifc_scan report {pw.week}"}]
    return event


# ---- sending, with bounded retries ---------------------------------------------------------------

def _post_json(http: HttpClient, url: str, doc: dict) -> str:
    """POST a JSON document; redirects are not followed (a webhook does not move)."""
    try:
        ans = http.send("POST", url, body=json.dumps(doc).encode(), max_bytes=1 << 20, keep_path=False,
                        headers={"Content-Type": "application/json"})
    except HttpError as exc:      # its message names the URL redacted already
        raise DeliveryError(f"{redact_url(url, keep_path=False)} unreachable: {exc}") from None
    if not 200 <= ans.status < 300:
        raise DeliveryError(f"HTTP {ans.status} from {redact_url(url, keep_path=False)}")
    return f"HTTP {ans.status}"


class _WatchedSMTP(smtplib.SMTP):
    """smtplib's client, its socket known to a Watchdog from the moment it exists (the greeting too)."""

    def __init__(self, watchdog: Watchdog, timeout: float):
        self.watchdog = watchdog
        super().__init__(timeout=timeout)

    def _get_socket(self, host, port, timeout):
        sock = super()._get_socket(host, port, timeout)
        self.watchdog.watch(sock)
        return sock


def _send_email(cfg: dict, msg: EmailMessage, seconds: float) -> str:
    where = f"SMTP {cfg['host']}:{cfg['port']}"
    if cfg.get("username") and not cfg["starttls"] and not is_loopback(str(cfg["host"])):
        raise DeliveryError(f"{where}: not sent, the password would cross the network unencrypted (STARTTLS is off)")
    if seconds <= 0:
        raise DeliveryError(f"{where}: not sent, the delivery's deadline has passed")
    watchdog = Watchdog(seconds)
    smtp = _WatchedSMTP(watchdog, timeout=seconds)
    try:
        smtp.connect(cfg["host"], cfg["port"])
        smtp._host = cfg["host"]    # what STARTTLS checks the certificate against (set by __init__ only)
        smtp.ehlo()
        if cfg["starttls"]:
            smtp.starttls(context=ssl.create_default_context(cafile=cfg.get("ca_file")))
            smtp.ehlo()
        if cfg.get("username"):
            smtp.login(cfg["username"], cfg.get("password") or "")
        refused = smtp.send_message(msg)
        try:              # a polite goodbye; the message is accepted, so a slow or failed QUIT changes nothing
            smtp.quit()
        except (smtplib.SMTPException, OSError, ssl.SSLError):
            pass
    except (smtplib.SMTPException, OSError, ssl.SSLError, ValueError) as exc:
        if watchdog.fired:
            raise DeliveryError(f"{where}: cut off after {seconds:g} s (total deadline)") from None
        # the server's words, never the password (scrubbed, also base64-encoded, should a server echo it)
        raise DeliveryError(f"{where}: {type(exc).__name__}: {scrub(str(exc), [cfg.get('password')])[:200]}") from None
    finally:
        watchdog.finish()
        smtp.close()
    if refused:
        raise DeliveryError(f"SMTP refused {', '.join(sorted(refused))}")
    return f"accepted for {len(cfg['to'])} recipient(s)"


def _with_retries(send, sleep, attempts: int = MAX_ATTEMPTS) -> tuple[bool, int, str]:
    detail = ""
    for attempt in range(1, attempts + 1):
        try:
            return True, attempt, send()
        except DeliveryError as exc:
            detail = str(exc)
            if attempt < attempts:
                sleep(2 ** (attempt - 1))
    return False, attempts, detail


# ---- the one entry point ---------------------------------------------------------------------------

def _delivered(con, week: str, sha: str, kind: str, channel: str) -> bool:
    return con.execute("SELECT count(*) FROM deliveries WHERE week=? AND manifest_sha256=? AND kind=? AND channel=? "
                       "AND result='ok'", (week, sha, kind, channel)).fetchone()[0] > 0


def _alerted_ids(con, channel: str) -> set:
    rows = con.execute("SELECT finding_ids FROM deliveries WHERE kind='critical' AND channel=? AND result='ok'",
                       (channel,)).fetchall()
    return {i for (ids,) in rows for i in ids or []}


def deliver_week(con, reports: str | Path, week: str, policy: dict, *, now: datetime | None = None, env=None,
                 sleep=time.sleep, force: bool = False, log=None, limits: Limits | None = None) -> list[dict]:
    """Deliver one published week on every configured channel; returns what was done (also recorded).
    Every send has a total deadline (limits.request_seconds) within one for the whole run (DELIVERY_LIMITS
    and the environment's IFC_SCAN_HTTP_SECONDS / IFC_SCAN_COLLECT_SECONDS unless `limits` is given)."""
    log = log or (lambda m: None)
    env = os.environ if env is None else env
    ch = Channels.from_policy(policy, env)
    try:
        limits = limits or DELIVERY_LIMITS.from_env(env)
    except HttpError as exc:
        raise DeliveryError(str(exc)) from None
    http = HttpClient(limits, allow_loopback_http=loopback_http_allowed(env),
                      configured_urls=[ch.webhook_url, ch.pagerduty_key and ch.pagerduty_url])
    if not ch.configured():
        return []
    pw = read_published(reports, week)
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    end = datetime.fromisoformat(pw.kpis["period_end"].rstrip("Z"))
    if not force and now - end > timedelta(days=ch.fresh_days):
        log(f"deliver {week}: ended {end:%Y-%m-%d}, over {ch.fresh_days} days ago: not delivered (force to send)")
        return [{"week": week, "kind": "weekly", "channel": c, "result": "skipped: not a fresh week"}
                for c in ch.configured()]
    jobs = []     # (kind, channel, target, subject, send, finding ids)
    if ch.email:
        cfg = ch.email
        jobs.append(("weekly", "email", f"smtp://{cfg['host']}:{cfg['port']} to {', '.join(cfg['to'])}", pw.subject(),
                     lambda: _send_email(cfg, email_message(pw, ch),
                                         min(limits.request_seconds, http.collection.remaining())), []))
    if ch.webhook_url:
        url = ch.webhook_url
        jobs.append(("weekly", "webhook", redact_url(url, keep_path=False), pw.subject(),
                     lambda: _post_json(http, url, webhook_payload(pw, "weekly", pw.critical_in_prod, ch.report_url)),
                     []))
    for channel in ("webhook", "pagerduty"):
        target = ch.webhook_url if channel == "webhook" else (ch.pagerduty_key and ch.pagerduty_url)
        if not target:
            continue
        new = [f for f in pw.critical_in_prod if f["finding_id"] not in _alerted_ids(con, channel)]
        if not new:
            continue
        if channel == "webhook":
            send = (lambda new=new, url=target: _post_json(http, url,
                                                           webhook_payload(pw, "critical", new, ch.report_url)))
        else:
            send = (lambda new=new, url=target: _post_json(
                http, url, pagerduty_event(pw, new, ch.pagerduty_key, now, ch.report_url)))
        jobs.append(("critical", channel, redact_url(target, keep_path=False), f"{len(new)} new CRITICAL in production", send,
                     [f["finding_id"] for f in new]))
    done = []
    for kind, channel, target, subject, send, ids in jobs:
        if kind == "weekly" and _delivered(con, week, pw.manifest_sha256, kind, channel):
            done.append({"week": week, "kind": kind, "channel": channel, "result": "skipped: already delivered"})
            continue
        ok, attempts, detail = _with_retries(send, sleep)
        result = "ok" if ok else "failed"
        con.execute("INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (week, pw.manifest_sha256, kind, channel, target, subject, now, attempts, result, detail, ids))
        log(f"deliver {week} {kind} via {channel} to {target}: {result} after {attempts} attempt(s) ({detail})")
        done.append({"week": week, "kind": kind, "channel": channel, "target": target, "result": result,
                     "attempts": attempts, "detail": detail})
    return done
