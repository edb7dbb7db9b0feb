"""The one HTTP client of every collector (GitHub runs, exception history, tickets) and every delivery
channel (webhook, PagerDuty), on urllib3's connections (TLS verification, header parsing, chunked and
compressed bodies).

What it promises, whatever the server does:
- https only; plain http only to loopback, and only when configured explicitly: IFC_SCAN_ALLOW_LOOPBACK_HTTP=1,
  or a URL the operator gave (the API base, the webhook) that is itself plain http to loopback (tests);
  no other scheme, also after a redirect (a `Location: file:///etc/passwd` is refused);
- a total deadline per request, from connecting to the last byte, and per collection: a timer shuts the
  socket down when it passes, so a server that trickles a byte at a time is cut off (a socket timeout
  only bounds each read);
- a size cap on every answer;
- HTTPS_PROXY / NO_PROXY honoured as urllib honoured them (a CONNECT tunnel, TLS end to end);
- URLs redacted in every message it makes (no userinfo, no query, and for a webhook no path).
Retries, rate limits and pagination belong to the callers (GitHub's rules are GitHub's), with
`retry_after_seconds` validating and capping what a server asks for.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import ipaddress
import math
import os
import re
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection, ProxyConfig

LOOPBACK_ENV = "IFC_SCAN_ALLOW_LOOPBACK_HTTP"
MAX_BODY = 512 * 1024 * 1024


class HttpError(Exception):
    """A request that got no usable answer; the message names the redacted URL and the reason."""


class UnsafeURL(HttpError):
    pass


class DeadlineExceeded(HttpError):
    pass


class BadSetting(HttpError):
    pass


HTTP_SECONDS_ENV, COLLECT_SECONDS_ENV = "IFC_SCAN_HTTP_SECONDS", "IFC_SCAN_COLLECT_SECONDS"


@dataclass(frozen=True)
class Limits:
    request_seconds: float = 600.0        # one request (a log or artifact download, a send), connect to last byte
    answer_seconds: float = 60.0          # one API answer (JSON), connect to last byte
    collection_seconds: float = 3 * 3600.0  # one whole collection (or one delivery run)
    max_pages: int = 1000                 # pages followed through one `Link: next` chain
    max_wait: float = 900.0               # the longest one rate-limit answer may make us wait

    def from_env(self, env=None) -> "Limits":
        """These limits with IFC_SCAN_HTTP_SECONDS (every request) and IFC_SCAN_COLLECT_SECONDS (a whole
        collection or delivery run) applied when set."""
        env = os.environ if env is None else env
        out = self
        per_request, whole = _seconds_setting(env, HTTP_SECONDS_ENV), _seconds_setting(env, COLLECT_SECONDS_ENV)
        if per_request is not None:
            out = replace(out, request_seconds=per_request, answer_seconds=per_request)
        if whole is not None:
            out = replace(out, collection_seconds=whole)
        return out


def _seconds_setting(env, name: str) -> float | None:
    raw = str(env.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise BadSetting(f"{name}={raw[:40]!r}: give a positive number of seconds")
    return value


@dataclass
class Answer:
    status: int
    headers: dict          # lower-case names
    body: bytes


def loopback_http_allowed(env=None) -> bool:
    env = os.environ if env is None else env
    return str(env.get(LOOPBACK_ENV) or "").strip() == "1"


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allow_loopback_http: bool) -> urllib.parse.SplitResult:
    """The URL's parts when it may be requested; UnsafeURL (naming the redacted URL) when not."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port   # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise UnsafeURL(f"refused {redact_url(url)}: not a URL") from None
    if parts.scheme == "https" and parts.hostname:
        return parts
    if parts.scheme == "http" and is_loopback(parts.hostname):
        if allow_loopback_http:
            return parts
        raise UnsafeURL(f"refused {redact_url(url)}: plain http (set {LOOPBACK_ENV}=1 to allow it to loopback, "
                        "for tests)")
    raise UnsafeURL(f"refused {redact_url(url)}: only https URLs are followed")


def is_loopback_http(url: str | None) -> bool:
    try:
        p = urllib.parse.urlsplit(url or "")
    except ValueError:
        return False
    return p.scheme == "http" and is_loopback(p.hostname)


def redact_url(url: str, keep_path: bool = True) -> str:
    """A URL for logs, records and messages: no userinfo, no query (signed download URLs carry their
    credential there) and, for a webhook, only scheme, host and port (its path is the credential)."""
    try:
        p = urllib.parse.urlsplit(str(url))
        host = p.hostname or ""
        port = f":{p.port}" if p.port else ""
    except ValueError:
        return "(a URL that cannot be parsed)"
    host = f"[{host}]" if ":" in host else host
    if not keep_path:
        return f"{p.scheme}://{host}{port}"
    return f"{p.scheme}://{host}{port}{p.path}" + ("?…" if p.query else "")


def url_secrets(url: str, keep_path: bool = True) -> list[str]:
    """The parts of a URL that redact_url hides, to scrub them from any text a library made."""
    try:
        p = urllib.parse.urlsplit(str(url))
        found = [p.username, p.password, p.query, urllib.parse.unquote(p.password or "")]
        found += [v for _k, v in urllib.parse.parse_qsl(p.query)]
    except ValueError:
        return [str(url)]
    if not keep_path and p.path not in ("", "/"):
        found += [p.path, p.path.strip("/")]
    return [s for s in found if s and len(s) >= 3]


def scrub(text: str, secrets) -> str:
    """`text` with every secret (and its base64 form, as SMTP AUTH sends it) replaced by ***."""
    out = str(text)
    for s in sorted({x for x in secrets if x}, key=len, reverse=True):
        out = out.replace(s, "***")
        out = out.replace(base64.b64encode(s.encode()).decode(), "***")
    return out


def retry_after_seconds(value, cap: float, default: float = 60.0) -> float:
    """Seconds to wait for a `Retry-After` (delta-seconds or an HTTP date): a finite number in 0..cap.
    Anything else (-1, nan, inf, words) waits `default`, capped."""
    text = str(value or "").strip()
    if re.fullmatch(r"[0-9]{1,10}", text):
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
            seconds = when.timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            seconds = default
    if not math.isfinite(seconds):
        seconds = default
    return min(max(seconds, 0.0), cap)


class Deadline:
    def __init__(self, seconds: float, what: str):
        self.seconds, self.what = float(seconds), what
        self.end = time.monotonic() + self.seconds

    def remaining(self) -> float:
        return self.end - time.monotonic()

    def passed(self) -> bool:
        return self.remaining() <= 0


class Watchdog:
    """Cuts a connection off when its total deadline passes. It keeps a duplicate of each socket's
    descriptor (so the socket it shuts down is always the connection's, even after TLS wrapping or a
    close on the other side) and shuts it down from a timer: the blocked read or write then fails."""

    def __init__(self, seconds: float):
        self._lock = threading.Lock()
        self._dups: list[socket.socket] = []
        self.fired = self._done = False
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._done:
                return
            dup = sock.dup()
            self._dups.append(dup)
            if self.fired:
                _shutdown(dup)

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            for dup in self._dups:
                _shutdown(dup)

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._timer.cancel()
            for dup in self._dups:
                dup.close()
            self._dups.clear()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _WatchedHTTP(HTTPConnection):
    watchdog: Watchdog

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self.watchdog.watch(sock)
        return sock


class _WatchedHTTPS(HTTPSConnection):
    watchdog: Watchdog

    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        self.watchdog.watch(sock)
        return sock



class HttpClient:
    """One request at a time, each within its own deadline and the collection's (`Limits`)."""

    def __init__(self, limits: Limits | None = None, *, allow_loopback_http: bool | None = None,
                 configured_urls=(), ca_file: str | None = None, user_agent: str = "ifc-scan"):
        self.limits = limits or Limits()
        # explicit configuration: the switch, or a URL the operator gave that is itself plain http to
        # loopback (a local test server); a production setup (https) never follows a redirect to loopback
        switch = loopback_http_allowed() if allow_loopback_http is None else allow_loopback_http
        self.allow_loopback_http = switch or any(is_loopback_http(u) for u in configured_urls)
        self.collection = Deadline(self.limits.collection_seconds, "collection")
        self.ca_file, self.user_agent = ca_file, user_agent

    def check(self, url: str) -> urllib.parse.SplitResult:
        return check_url(url, self.allow_loopback_http)

    def send(self, method: str, url: str, *, headers: dict | None = None, body: bytes | None = None,
             max_bytes: int = MAX_BODY, keep_path: bool = True, seconds: float | None = None) -> Answer:
        """One request, no redirect followed (the caller decides where a `Location` may lead). Userinfo in
        the URL is sent as Basic authentication, never as part of any message."""
        parts = self.check(url)
        shown, secrets = redact_url(url, keep_path), url_secrets(url, keep_path)
        limit = min(seconds or self.limits.request_seconds, self.collection.remaining())
        if limit <= 0:
            raise DeadlineExceeded(f"{shown}: not requested, the collection's deadline of "
                                   f"{self.collection.seconds:g} s has passed")
        h = {"User-Agent": self.user_agent, **(headers or {})}
        if parts.username is not None:
            creds = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
            h["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
        proxy = https_proxy_for(parts)
        secrets += url_secrets(proxy) if proxy else []
        watchdog = Watchdog(limit)
        conn = self._connection(parts, limit, watchdog, proxy)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request(method, target, body=body, headers=h, preload_content=False)
            resp = conn.getresponse()
            data = _read_capped(resp, max_bytes, shown)
            if watchdog.fired:
                raise DeadlineExceeded(f"{shown}: cut off after {limit:g} s (total deadline)")
            return Answer(resp.status, {k.lower(): v for k, v in resp.headers.itermerged()}, data)
        except (OSError, urllib3.exceptions.HTTPError, http.client.HTTPException, ssl.SSLError, ValueError) as exc:
            if watchdog.fired:
                raise DeadlineExceeded(f"{shown}: cut off after {limit:g} s (total deadline)") from None
            raise HttpError(f"{shown}: {type(exc).__name__}: {scrub(str(exc), secrets)[:300]}") from None
        finally:
            watchdog.finish()
            conn.close()

    def _connection(self, parts: urllib.parse.SplitResult, limit: float, watchdog: Watchdog, proxy: str | None):
        if parts.scheme != "https":
            conn = _WatchedHTTP(parts.hostname, parts.port, timeout=limit)
        elif not proxy:
            conn = _WatchedHTTPS(parts.hostname, parts.port, timeout=limit, ca_certs=self.ca_file)
        else:      # a CONNECT tunnel through the proxy; TLS, and its certificate check, end to end with the host
            via = urllib3.util.parse_url(proxy)
            conn = _WatchedHTTPS(via.host, via.port or 8080, timeout=limit, ca_certs=self.ca_file, proxy=via,
                                 proxy_config=ProxyConfig(None, False, None, None))
            auth = urllib3.util.make_headers(proxy_basic_auth=urllib.parse.unquote(via.auth)) if via.auth else None
            conn.set_tunnel(parts.hostname, parts.port or 443, headers=auth, scheme=via.scheme or "http")
        conn.watchdog = watchdog
        return conn


def https_proxy_for(parts: urllib.parse.SplitResult) -> str | None:
    """The proxy the environment names for an https URL (HTTPS_PROXY, honouring NO_PROXY), as urllib did;
    plain http goes only to loopback and never through a proxy."""
    if parts.scheme != "https" or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get("https") or None


def _read_capped(resp, max_bytes: int, shown: str) -> bytes:
    chunks, size = [], 0
    while True:
        chunk = resp.read(1 << 16)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise HttpError(f"{shown}: answer larger than {max_bytes} bytes")
        chunks.append(chunk)
