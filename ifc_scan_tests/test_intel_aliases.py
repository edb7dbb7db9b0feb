"""The CVE ids of a finding (ifc_scan/intel/aliases.py): its id when a CVE, else the CVE record pages and CVE
VendorIDs its Trivy report carries, from the scans observed before the week's end."""

import json
import shutil
from datetime import datetime

import pytest

from ifc_scan.ingest.runner import ingest
from ifc_scan.intel.aliases import finding_cves, report_cve_aliases, row_cves
from ifc_scan.warehouse.db import connect


def _report(created_at: str, vulns: list[dict], tag: str = "registry.example.com/shop/api:1") -> dict:
    return {"SchemaVersion": 2, "CreatedAt": created_at, "ArtifactName": tag, "ArtifactType": "container_image",
            "Metadata": {"ImageID": "sha256:" + "a" * 64, "RepoTags": [tag]},
            "Results": [{"Target": "app (debian 12)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vulns}]}


def _vuln(vid: str, refs=(), vendor_ids=None) -> dict:
    v = {"VulnerabilityID": vid, "PkgName": "libx", "InstalledVersion": "1.0", "Severity": "HIGH",
         "References": list(refs)}
    if vendor_ids is not None:
        v["VendorIDs"] = vendor_ids
    return v


def test_what_a_report_carries_is_read_as_cve_aliases():
    # a CVE id is its own alias: nothing is stored (None), whatever its references say
    assert report_cve_aliases("CVE-2024-3094", ["https://nvd.nist.gov/vuln/detail/CVE-2021-44228"], None) is None
    # record pages of NVD, cve.org, MITRE, SUSE (trailing slash), Red Hat (lower case), AVD: each names one CVE
    refs = ["https://nvd.nist.gov/vuln/detail/CVE-2023-0001", "https://www.cve.org/CVERecord?id=CVE-2023-0002",
            "https://cve.mitre.org/cgi-bin/cvename.cgi?name=CVE-2023-0003",
            "https://www.suse.com/security/cve/CVE-2023-0004/", "https://access.redhat.com/security/cve/cve-2023-0005",
            "https://avd.aquasec.com/nvd/cve-2023-0006",
            # not record pages: a commit, a mailing list post naming a CVE, a GitHub advisory, an unknown host
            "https://github.com/x/y/commit/CVE-2023-0007", "https://lists.debian.org/msg/CVE-2023-0008",
            "https://github.com/advisories/GHSA-aaaa-bbbb-cccc", "https://evil.example/CVE-2023-0009",
            "ftp://nvd.nist.gov/vuln/detail/CVE-2023-0010", 42, None]
    assert report_cve_aliases("GHSA-aaaa-bbbb-cccc", refs, ["CVE-2023-0011", "DSA-1-1", "cve-2023-0012"]) == [
        "CVE-2023-0001", "CVE-2023-0002", "CVE-2023-0003", "CVE-2023-0004", "CVE-2023-0005", "CVE-2023-0006",
        "CVE-2023-0011"]
    assert report_cve_aliases("GMS-2022-20", "not a list", None) == []
    assert row_cves("CVE-2024-3094", None) == ("CVE-2024-3094",)
    assert row_cves("GHSA-aaaa-bbbb-cccc", ["CVE-2023-2", "CVE-2023-1", "CVE-2023-1"]) == ("CVE-2023-1", "CVE-2023-2")


@pytest.mark.corpus
def test_a_real_opensuse_advisory_matches_the_cves_it_fixes(corpus, tmp_path):
    # Trivy's own golden output for openSUSE Tumbleweed: the finding's id is openSUSE-SU-2024:13065-1 and its
    # References are https://www.suse.com/security/cve/CVE-2023-2975/ and .../CVE-2023-3446/ (and a rating page).
    # CreatedAt 2021-08-25T12:20:30Z: a week ending 2021-08-30 knows the aliases, one ending 2021-08-23 does not.
    landing = tmp_path / "landing" / "trivy"
    landing.mkdir(parents=True)
    shutil.copy(corpus / "trivy-json" / "trivy-golden__opensuse-tumbleweed.json", landing / "tw.json")
    ingest(tmp_path / "landing", tmp_path / "w.duckdb")
    with connect(tmp_path / "w.duckdb") as con:
        ids = ["openSUSE-SU-2024:13065-1", "CVE-2099-0001", "GHSA-none-none-none"]
        assert finding_cves(con, ids, datetime(2021, 8, 30)) == {
            "openSUSE-SU-2024:13065-1": ("CVE-2023-2975", "CVE-2023-3446"),
            "CVE-2099-0001": ("CVE-2099-0001",), "GHSA-none-none-none": ()}
        assert finding_cves(con, ["openSUSE-SU-2024:13065-1"], datetime(2021, 8, 23)) == {
            "openSUSE-SU-2024:13065-1": ()}


def test_aliases_come_only_from_scans_observed_before_the_end(tmp_path):
    # Scan 1 (2026-11-25) shows GHSA-1 naming CVE-2026-1000 (NVD page); scan 2 (2026-12-02) shows the same GHSA
    # naming also CVE-2026-2000 (cve.org). The week ending 2026-11-30 sees CVE-2026-1000 only; the week ending
    # 2026-12-07 sees both. A GHSA whose report names no CVE record maps to no CVE.
    landing = tmp_path / "landing" / "trivy"
    landing.mkdir(parents=True)
    ghsa = "GHSA-9wx4-h78v-vm56"
    (landing / "a.json").write_text(json.dumps(_report("2026-11-25T02:00:00Z", [
        _vuln(ghsa, ["https://nvd.nist.gov/vuln/detail/CVE-2026-1000"]), _vuln("GHSA-2222-3333-4444", [])])))
    (landing / "b.json").write_text(json.dumps(_report("2026-12-02T02:00:00Z", [
        _vuln(ghsa, ["https://nvd.nist.gov/vuln/detail/CVE-2026-1000", "https://www.cve.org/CVERecord?id=CVE-2026-2000"])])))
    ingest(tmp_path / "landing", tmp_path / "w.duckdb")
    with connect(tmp_path / "w.duckdb") as con:
        assert finding_cves(con, [ghsa, "GHSA-2222-3333-4444"], datetime(2026, 11, 30)) == {
            ghsa: ("CVE-2026-1000",), "GHSA-2222-3333-4444": ()}
        assert finding_cves(con, [ghsa], datetime(2026, 12, 7)) == {ghsa: ("CVE-2026-1000", "CVE-2026-2000")}
        stored = con.execute("SELECT vulnerability_id, cve_aliases FROM scan_vulnerabilities ORDER BY scan_id, "
                             "vulnerability_id").fetchall()
        assert sorted(map(str, stored)) == sorted(map(str, [
            (ghsa, ["CVE-2026-1000"]), ("GHSA-2222-3333-4444", []),
            (ghsa, ["CVE-2026-1000", "CVE-2026-2000"])]))


def test_a_warehouse_of_the_previous_scan_reader_gains_the_aliases_once(tmp_path):
    # A warehouse ingested before issue 31 has cve_aliases NULL and no scan_reader_version. The next ingest reads
    # each stored scan file once more and fills the aliases in: GHSA-1 in a.json names CVE-2026-1000, so
    # finding_cves maps it; the row counts stay (2 scans, 3 vulnerability rows), and a later ingest reads nothing.
    landing = tmp_path / "landing" / "trivy"
    landing.mkdir(parents=True)
    ghsa = "GHSA-9wx4-h78v-vm56"
    (landing / "a.json").write_text(json.dumps(_report("2026-11-25T02:00:00Z", [
        _vuln(ghsa, ["https://nvd.nist.gov/vuln/detail/CVE-2026-1000"]), _vuln("CVE-2026-3000", [])])))
    (landing / "b.json").write_text(json.dumps(_report("2026-11-26T02:00:00Z", [_vuln("CVE-2026-3000", [])])))
    ingest(tmp_path / "landing", tmp_path / "w.duckdb")
    with connect(tmp_path / "w.duckdb") as con:      # as the previous release left it
        con.execute("UPDATE scan_vulnerabilities SET cve_aliases = NULL")
        con.execute("DELETE FROM derived_meta WHERE key = 'scan_reader_version'")
        assert finding_cves(con, [ghsa], datetime(2026, 12, 7)) == {ghsa: ()}
    said: list[str] = []
    summary = ingest(tmp_path / "landing", tmp_path / "w.duckdb", progress=said.append)
    assert any("the scan reader changed (version unrecorded -> 2): reading 2 stored scan files again" in m
               for m in said), said
    assert summary.ingested == 0 and summary.rejected == 0
    with connect(tmp_path / "w.duckdb") as con:
        assert finding_cves(con, [ghsa, "CVE-2026-3000"], datetime(2026, 12, 7)) == {
            ghsa: ("CVE-2026-1000",), "CVE-2026-3000": ("CVE-2026-3000",)}
        assert con.execute("SELECT count(*) FROM scans").fetchone()[0] == 2
        assert con.execute("SELECT count(*) FROM scan_vulnerabilities").fetchone()[0] == 3
        assert con.execute("SELECT count(*) FROM source_files").fetchone()[0] == 2
    said.clear()
    ingest(tmp_path / "landing", tmp_path / "w.duckdb", progress=said.append)
    assert not any("scan reader changed" in m for m in said)
