"""`ifc-scan collect intel` against a local HTTPS server: KEV and EPSS fetched, checked by the ingest's reader,
written one file per day; bad answers refused and not written; retries, redirects and https only."""

import gzip
import json
from datetime import datetime

from ifc_scan.collect.intel import collect_intel
from ifc_scan.ingest.runner import ingest
from ifc_scan.warehouse.db import connect
from ifc_scan_tests.servers import Reply, scripted_http, self_signed
from ifc_scan_tests.test_intel_ingest import KEV, epss_text

NOW = datetime(2026, 12, 2, 6, 0)
EPSS_GZ = gzip.compress(epss_text("2026-12-01", [("CVE-2021-44228", "0.94358", "0.99957"),
                                                 ("CVE-2024-3094", "0.84823", "0.99285")]).encode())


def _kev(released: str = "2026-12-01T17:02:40.0462Z", **more) -> bytes:
    return json.dumps({**KEV, "dateReleased": released, **more}).encode()


def _serve(routes: dict):
    """path -> Reply, or a list of Replies given in turn (the last one repeated)."""
    def answer(req):
        r = routes.get(req.path.split("?")[0], Reply(404, {"message": "Not Found"}))
        if isinstance(r, list):
            return r.pop(0) if len(r) > 1 else r[0]
        return r
    return answer


def _collect(base, tmp_path, cert, **kw):
    waits = []
    out = collect_intel(tmp_path / "landing", kev_url=kw.pop("kev_url", f"{base}/feeds/kev.json"),
                        epss_url=kw.pop("epss_url", f"{base}/epss_scores-current.csv.gz"), now=NOW,
                        sleep=waits.append, ca_file=str(cert), **kw)
    return {f.source: f for f in out}, waits


def test_both_files_are_written_by_their_own_date_and_ingested(tmp_path):
    cert, key = self_signed(tmp_path)
    routes = {"/feeds/kev.json": Reply(body=_kev()),
              # FIRST's -current URL redirects to the dated file
              "/epss_scores-current.csv.gz": Reply(302, b"", {"Location": "/epss_scores-2026-12-01.csv.gz"}),
              "/epss_scores-2026-12-01.csv.gz": Reply(body=EPSS_GZ)}
    with scripted_http(_serve(routes), tls=(cert, key)) as (base, seen):
        got, _ = _collect(base, tmp_path, cert)
        assert (got["kev"].outcome, got["kev"].path) == (
            "written", "enrichment/kev/2026-12-01/known_exploited_vulnerabilities.json")
        assert (got["epss"].outcome, got["epss"].path) == (
            "written", "enrichment/epss/2026-12-01/epss_scores-2026-12-01.csv.gz")
        assert [s.path for s in seen] == ["/feeds/kev.json", "/epss_scores-current.csv.gz",
                                          "/epss_scores-2026-12-01.csv.gz"]
        again, _ = _collect(base, tmp_path, cert)               # the same answers the next hour: nothing new
        assert (again["kev"].outcome, again["epss"].outcome) == ("unchanged", "unchanged")
    landing = tmp_path / "landing"
    assert (landing / got["epss"].path).read_bytes() == EPSS_GZ          # the file as published
    assert sorted(p.name for p in landing.rglob("*")) == sorted(
        ["enrichment", "kev", "epss", "2026-12-01", "2026-12-01", "known_exploited_vulnerabilities.json",
         "epss_scores-2026-12-01.csv.gz"])                               # no temporary file left
    s = ingest(landing, tmp_path / "w.duckdb")
    assert (s.ingested, s.rejected) == (2, 0)
    with connect(tmp_path / "w.duckdb") as con:
        assert con.execute("SELECT count(*) FROM kev_entries").fetchone() == (3,)
        assert con.execute("SELECT count(*) FROM epss_scores").fetchone() == (2,)


def test_bad_answers_are_refused_and_not_written(tmp_path):
    cert, key = self_signed(tmp_path)
    bad_epss = gzip.compress(epss_text("2026-12-01", [("CVE-2021-44228", "2.5", "0.9")]).encode())
    cases = [
        ({"/feeds/kev.json": Reply(body=b"<html>maintenance</html>")}, "kev", "not written: not valid JSON"),
        ({"/feeds/kev.json": Reply(body=[KEV])}, "kev", "not CISA's KEV catalog"),
        ({"/feeds/kev.json": Reply(body=_kev("2026-12-09T00:00:00Z"))}, "kev", "is in the future"),
        ({"/epss_scores-current.csv.gz": Reply(body=bad_epss)}, "epss", "epss 2.5 is outside [0, 1]"),
        ({"/epss_scores-current.csv.gz": Reply(body=EPSS_GZ[:-20])}, "epss", "not a whole gzip file"),
    ]
    for routes, source, why in cases:
        with scripted_http(_serve(routes), tls=(cert, key)) as (base, _seen):
            got, _ = _collect(base, tmp_path, cert, only=(source,))
        assert got[source].outcome == "refused" and why in got[source].reason, (source, got[source])
    assert not (tmp_path / "landing").exists() or not any(p.is_file() for p in (tmp_path / "landing").rglob("*"))


def test_server_errors_are_retried_and_failures_named(tmp_path):
    cert, key = self_signed(tmp_path)
    routes = {"/feeds/kev.json": [Reply(503, b"busy", {"Retry-After": "7"}), Reply(429, b"slow down"),
                                  Reply(body=_kev())],
              "/epss_scores-current.csv.gz": Reply(404, b"gone")}
    with scripted_http(_serve(routes), tls=(cert, key)) as (base, seen):
        got, waits = _collect(base, tmp_path, cert)
    assert got["kev"].outcome == "written"
    assert waits == [7.0, 2.0]                                      # Retry-After, then the backoff of try 2
    assert got["epss"].outcome == "failed" and got["epss"].reason.endswith("answered 404")
    assert len(seen) == 4


def test_https_only_also_after_a_redirect_and_urls_redacted(tmp_path):
    cert, key = self_signed(tmp_path)
    routes = {"/epss_scores-current.csv.gz": Reply(302, b"", {"Location": "http://10.0.0.1/epss.csv.gz"})}
    with scripted_http(_serve(routes), tls=(cert, key)) as (base, _seen):
        got, _ = _collect(base, tmp_path, cert, kev_url="http://mirror.example.test/kev.json?token=s3cret")
    assert got["kev"].outcome == "failed" and "only https" in got["kev"].reason
    assert "s3cret" not in got["kev"].reason and "s3cret" not in got["kev"].url
    assert got["epss"].outcome == "failed" and "refused http://10.0.0.1" in got["epss"].reason


def test_a_kev_catalog_released_later_the_same_day_replaces_the_days_file(tmp_path):
    cert, key = self_signed(tmp_path)
    answers = [Reply(body=_kev("2026-12-01T09:00:00Z")), Reply(body=_kev("2026-12-01T17:00:00Z", catalogVersion="b")),
               Reply(body=_kev("2026-12-01T12:00:00Z", catalogVersion="c"))]
    outcomes = []
    with scripted_http(_serve({"/feeds/kev.json": answers}), tls=(cert, key)) as (base, _seen):
        for _ in range(3):
            got, _ = _collect(base, tmp_path, cert, only=("kev",))
            outcomes.append(got["kev"].outcome)
    assert outcomes == ["written", "written", "kept"]
    written = json.loads((tmp_path / "landing" / got["kev"].path).read_bytes())
    assert written["catalogVersion"] == "b"


def test_the_dagster_asset_writes_what_it_can_and_fails_naming_the_source_that_failed(tmp_path):
    # plain http to 127.0.0.1 is allowed only because the configured URLs are themselves loopback (a test server)
    import dagster as dg
    from ifc_scan.defs.collect import intel_evidence
    from ifc_scan.defs.resources import IfcScanSettings
    routes = {"/feeds/kev.json": Reply(body=_kev()), "/epss_scores-current.csv.gz": Reply(404, b"gone")}
    with scripted_http(_serve(routes)) as (base, _seen):
        settings = IfcScanSettings(landing=str(tmp_path / "landing"), warehouse=str(tmp_path / "w.duckdb"),
                                   reports=str(tmp_path / "reports"), kev_url=f"{base}/feeds/kev.json",
                                   epss_url=f"{base}/epss_scores-current.csv.gz")
        res = dg.materialize([intel_evidence], resources={"settings": settings}, raise_on_error=False)
    assert not res.success
    failure = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    assert "epss failed:" in str(failure.event_specific_data.error) and "answered 404" in str(failure.event_specific_data.error)
    assert (tmp_path / "landing" / "enrichment/kev/2026-12-01/known_exploited_vulnerabilities.json").is_file()


def test_a_network_error_is_retried_three_times_then_named(tmp_path):
    # nothing listens on the port: connection refused, retried after 1, 2 and 4 s (the backoff), then failed
    from ifc_scan_tests.servers import free_port
    waits = []
    url = f"http://127.0.0.1:{free_port()}/feeds/kev.json"
    (got,) = collect_intel(tmp_path / "landing", kev_url=url, only=("kev",), now=NOW, sleep=waits.append)
    assert waits == [1.0, 2.0, 4.0]
    assert got.outcome == "failed" and "127.0.0.1" in got.reason and "Connection refused" in got.reason
