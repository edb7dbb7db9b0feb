"""The registry of evidence sources (ifc_scan/ingest/sources/): a new kind of evidence is one module and
one registration, with no change to the runner. Shown with the next issue's kind: CISA's Known Exploited
Vulnerabilities catalogue, saved under its own landing folder (threat-intel/kev/<date taken>/<file>.json),
whose file replaces its own rows, read by a pure function (in reader processes for a large ingest)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pytest

from ifc_scan.ingest import sources
from ifc_scan.ingest.runner import classify, ingest
from ifc_scan.ingest.sources.base import Context, EvidenceSource, ReadEach, Rejection, Unit
from ifc_scan.warehouse.db import connect

KEV_TABLE = """CREATE TABLE IF NOT EXISTS threat_kev (cve_id VARCHAR NOT NULL, vendor VARCHAR, product VARCHAR,
    date_added DATE, due_date DATE, ransomware VARCHAR, snapshot_date DATE, source_path VARCHAR)"""


def read_kev(rel: str, abspath: str):
    """CISA's known_exploited_vulnerabilities.json -> (date taken, rows) or a Rejection."""
    try:
        day = date.fromisoformat(rel.split("/")[2])
        doc = json.loads(Path(abspath).read_bytes())
        rows = [(v["cveID"], v.get("vendorProject"), v.get("product"), date.fromisoformat(v["dateAdded"]),
                 date.fromisoformat(v["dueDate"]) if v.get("dueDate") else None, v.get("knownRansomwareCampaignUse"))
                for v in doc["vulnerabilities"]]
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        return Rejection(f"KEV catalogue not read: {type(exc).__name__}: {exc}")
    return day, rows


class KnownExploited(EvidenceSource):
    name = "CISA known exploited vulnerabilities"
    unit_name = "KEV catalogues"
    folder = "threat-intel/"
    kinds = ("threat-kev",)      # not "kev": the product's own KEV kind (ingest/sources/kev.py) has it
    replaces = "the file's own rows"
    tables = {"threat_kev": ["cve_id", "vendor", "product", "date_added", "due_date", "ransomware", "snapshot_date",
                             "source_path"]}
    read = ReadEach(read_kev)
    parallel = True

    @staticmethod
    def claims(rel: str) -> str | None:
        parts = rel.split("/")
        return "threat-kev" if parts[:2] == ["threat-intel", "kev"] and len(parts) == 4 and rel.endswith(".json") else None

    def store(self, ctx: Context, unit: Unit, reading) -> int:
        (f,) = unit.files
        ctx.batch.deletes.append(("DELETE FROM threat_kev WHERE source_path = ?", (f.rel,)))
        if isinstance(reading, Rejection):
            ctx.record(f, "rejected", reading.reason)
            return 0
        day, rows = reading
        ctx.batch.extend("threat_kev", [(*r, day, f.rel) for r in rows])
        ctx.record(f, "ingested")
        return f.size


def kev_doc(*cves: tuple[str, str]) -> str:
    return json.dumps({"title": "CISA Catalog of Known Exploited Vulnerabilities", "catalogVersion": "2026.03.02",
                       "dateReleased": "2026-03-02T15:00:00.000Z", "count": len(cves), "vulnerabilities": [
                           {"cveID": cve, "vendorProject": "Microsoft", "product": "Windows",
                            "vulnerabilityName": "Windows Privilege Escalation", "dateAdded": added,
                            "shortDescription": "An attacker can run code as SYSTEM.", "requiredAction":
                                "Apply mitigations per vendor instructions.", "dueDate": "2026-03-23",
                            "knownRansomwareCampaignUse": "Known", "notes": ""} for cve, added in cves]})


@pytest.fixture
def kev_registered():
    sources.register(KnownExploited)
    yield
    sources.unregister(KnownExploited)


def kev_rows(wh: Path) -> list[tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute("SELECT cve_id, strftime(date_added, '%Y-%m-%d'), strftime(snapshot_date, '%Y-%m-%d'), "
                           "source_path FROM threat_kev ORDER BY source_path, cve_id").fetchall()
    finally:
        con.close()


def statuses(wh: Path) -> dict[str, tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return {p: (k, st, r) for p, k, st, r in con.execute(
            "SELECT path, kind, status, reason FROM source_files").fetchall()}
    finally:
        con.close()


def make_landing(tmp_path: Path) -> Path:
    landing = tmp_path / "landing"
    kev = landing / "threat-intel" / "kev" / "2026-03-02"
    kev.mkdir(parents=True)
    (kev / "known_exploited_vulnerabilities.json").write_text(
        kev_doc(("CVE-2026-21519", "2026-03-01"), ("CVE-2025-24054", "2025-04-17")))
    (landing / "threat-intel" / "kev" / "2026-03-09").mkdir()
    (landing / "threat-intel" / "kev" / "2026-03-09" / "known_exploited_vulnerabilities.json").write_text(
        '{"vulnerabilities": [{"cveID": "CVE-2026-1"')          # cut off mid-download
    return landing


def new_warehouse(tmp_path: Path) -> Path:
    wh = tmp_path / "wh.duckdb"
    with connect(wh) as con:       # the kind's table, as its schema.sql lines would create it
        con.execute(KEV_TABLE)
    return wh


def test_a_new_kind_is_one_registration_and_the_runner_reads_it(kev_registered, tmp_path):
    landing, wh = make_landing(tmp_path), new_warehouse(tmp_path)
    s = ingest(landing, wh, progress=lambda m: None)
    good = "threat-intel/kev/2026-03-02/known_exploited_vulnerabilities.json"
    bad = "threat-intel/kev/2026-03-09/known_exploited_vulnerabilities.json"
    assert kev_rows(wh) == [("CVE-2025-24054", "2025-04-17", "2026-03-02", good),
                            ("CVE-2026-21519", "2026-03-01", "2026-03-02", good)]
    st = statuses(wh)
    assert st[good] == ("threat-kev", "ingested", None)
    assert st[bad][:2] == ("threat-kev", "rejected") and "KEV catalogue not read" in st[bad][2]
    assert (s.ingested, s.rejected, s.rows["threat_kev"]) == (1, 1, 2)

    # nothing new: nothing read again
    again = ingest(landing, wh, progress=lambda m: None)
    assert (again.new_files, again.rows.get("threat_kev", 0)) == (0, 0)

    # the next day's catalogue rewritten: it replaces its own rows, the other file's stay
    (landing / "threat-intel" / "kev" / "2026-03-02" / "known_exploited_vulnerabilities.json").write_text(
        kev_doc(("CVE-2026-21519", "2026-03-01")))
    ingest(landing, wh, progress=lambda m: None)
    assert kev_rows(wh) == [("CVE-2026-21519", "2026-03-01", "2026-03-02", good)]


def test_the_new_kind_is_read_by_reader_processes_in_a_large_ingest(kev_registered, tmp_path, monkeypatch):
    monkeypatch.setenv("IFC_SCAN_READERS", "2")
    monkeypatch.setattr("ifc_scan.ingest.readers.PARALLEL_MIN_FILES", 1)
    monkeypatch.setattr("ifc_scan.ingest.readers.PARALLEL_MIN_BYTES", 0)
    said: list[str] = []
    landing, wh = make_landing(tmp_path), new_warehouse(tmp_path)
    ingest(landing, wh, progress=said.append)
    assert any("2 KEV catalogues to read, parsed by 2 reader processes" in m for m in said), said
    assert [r[0] for r in kev_rows(wh)] == ["CVE-2025-24054", "CVE-2026-21519"]


def test_without_the_registration_the_folder_is_ignored_and_named_among_those_read(tmp_path):
    landing, wh = make_landing(tmp_path), new_warehouse(tmp_path)
    ingest(landing, wh, progress=lambda m: None)
    kind, status, reason = statuses(wh)["threat-intel/kev/2026-03-02/known_exploited_vulnerabilities.json"]
    assert (kind, status) == ("other", "ignored")
    assert reason == ("not in a landing-zone folder ifc_scan reads (trivy/, ci/github-actions/, enrichment/, "
                      "exceptions/, approvals/, tickets/, inventory/)")


def test_registered_kind_is_named_in_the_ignored_reason(kev_registered, tmp_path):
    landing = tmp_path / "landing"
    (landing / "notes").mkdir(parents=True)
    (landing / "notes" / "readme.txt").write_text("not evidence")
    wh = new_warehouse(tmp_path)
    ingest(landing, wh, progress=lambda m: None)
    assert "(threat-intel/, trivy/," in statuses(wh)["notes/readme.txt"][2]


@pytest.mark.parametrize("rel, kind", [
    ("trivy/registry/app.json", "scan"), ("trivy/x/app.SARIF", "scan"), ("trivy/notes.txt", "other"),
    ("ci/github-actions/12/artifacts/trivy.json", "ci-artifact"), ("ci/github-actions/12/artifacts/log.txt", "ci-run"),
    ("ci/github-actions/12/run.json", "ci-run"), ("ci/github-actions/run.json", "other"),
    ("exceptions/_global/2026-03-02/.trivyignore", "exception"), ("exceptions/_global/.trivyignore", "other"),
    ("inventory/deployable.yaml", "inventory"), ("inventory/approvers.yml", "approvers"),
    ("inventory/other.yaml", "other"), ("approvals/_global/2026-03-02/abc.json", "approval"),
    ("approvals/_global/abc.json", "other"), ("tickets/jira/2026-03-02/search.csv", "ticket"),
    ("tickets/jira/search.json", "ticket"), ("tickets/jira/2026-03-02/notes.txt", "other"),
    ("enrichment/kev/2026-03-02/known_exploited_vulnerabilities.json", "kev"), ("enrichment/kev/x.json", "kev"),
    ("enrichment/epss/2026-03-02/epss_scores-2026-03-02.csv.gz", "epss"), ("enrichment/other/x.json", "other"),
    ("enrichment/epss/2026-03-02/.tmp-epss_scores-2026-03-02.csv.gz-123", "other"),
])
def test_each_landing_path_belongs_to_the_kind_the_layout_gives_it(rel, kind):
    assert classify(rel) == kind


def test_two_kinds_cannot_claim_the_same_source_files_kind():
    class Copy(KnownExploited):
        kinds = ("ticket",)
    with pytest.raises(ValueError, match="'ticket' is already Tickets's"):
        sources.register(Copy)
    assert Copy not in sources.SOURCES
