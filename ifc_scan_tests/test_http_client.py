"""The one HTTP client of the collectors and delivery (ifc_scan/collect/http.py), on its own: proxies,
TLS checked end to end, against local servers on 127.0.0.1."""

import base64
import json

import pytest

from ifc_scan.collect.http import HttpClient, HttpError
from ifc_scan_tests.servers import Reply, connect_proxy, scripted_http, self_signed


def test_https_goes_through_the_environments_proxy_with_tls_checked_end_to_end(tmp_path, monkeypatch):
    """HTTPS_PROXY is honoured as urllib honoured it: a CONNECT tunnel (its credentials sent to the proxy
    only), the server's certificate checked by the client, not the proxy."""
    cert, key = self_signed(tmp_path)
    for var in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    with scripted_http(lambda req: Reply(body={"ok": True}), tls=(cert, key)) as (base, seen), \
            connect_proxy() as (proxy, tunnels):
        monkeypatch.setenv("https_proxy", proxy.replace("http://", "http://puser:p%40ss@"))
        answer = HttpClient(ca_file=str(cert)).send("GET", base + "/repos/acme/app?token=T")
        with pytest.raises(HttpError, match="CERTIFICATE_VERIFY_FAILED") as err:
            HttpClient().send("GET", base + "/x")         # the system's CAs do not know this certificate
    assert (answer.status, json.loads(answer.body)) == (200, {"ok": True})
    expected = "Basic " + base64.b64encode(b"puser:p@ss").decode()
    assert tunnels == [(base.split("//")[1], expected)] * 2
    assert [r.path for r in seen] == ["/repos/acme/app?token=T"] and "Proxy-Authorization" not in seen[0].headers
    assert "p@ss" not in str(err.value) and "p%40ss" not in str(err.value)
