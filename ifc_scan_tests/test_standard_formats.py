"""Each week's evidence in the formats auditors' and supply-chain tools read (docs/standard-formats.md).

OSCAL: every demo week's oscal/assessment-results.json and oscal/component-definition.json validate
against NIST's OSCAL 1.1.3 JSON schemas (vendored under fixtures/oscal/, offline); what they say is
checked against kpis.json and the CSVs read by this test, never against the renderer. Attestation:
the DSSE envelope verifies with securesystemslib (an implementation that is not ours) and with a PAE
built here from the DSSE spec, and `ifc-scan verify` rejects a changed subject, a forged or edited
envelope, and an edited OSCAL file re-signed by an insider.
"""

import base64
import csv
import hashlib
import json
import re
import shutil
from datetime import date
from pathlib import Path

import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ifc_scan.cli import main
from ifc_scan.demo.generator import generate

SCHEMAS = Path(__file__).parent / "fixtures" / "oscal"
WEEKS = ("2026-W08", "2026-W09", "2026-W10")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
# the OSCAL control ids each catalog row is published under (NIST: the official SP 800-53 catalog's ids)
EXPECTED_IDS = {"A06:2021": ["owasp-2021-a06"], "A03:2025": ["owasp-2025-a03"],
                "A08:2021 / A08:2025": ["owasp-2021-a08", "owasp-2025-a08"], "8.8": ["iso27001-2022-8.8"],
                "8.32": ["iso27001-2022-8.32"], "9.1": ["iso27001-2022-9.1"], "CC7.1": ["soc2-cc7.1"],
                "CC9.1": ["soc2-cc9.1"], "CC8.1": ["soc2-cc8.1"], "CC6.8": ["soc2-cc6.8"], "CC6.6": ["soc2-cc6.6"],
                "RA-5, SI-2(3)": ["ra-5", "si-2.3"], "7.5, 7.7": ["cis-v8-7.5", "cis-v8-7.7"],
                "22-01": ["cisa-bod-22-01"], "6.3.1": ["pci-dss-4.0-6.3.1"], "6.3.3": ["pci-dss-4.0-6.3.3"],
                "11.3.1": ["pci-dss-4.0-11.3.1"]}


def schema_validator(name: str) -> jsonschema.Draft7Validator:
    """NIST's schema; its one \\p{L}/\\p{N} pattern (not in Python's re) made stricter, never looser."""
    text = (SCHEMAS / name).read_text().replace(r"\\p{L}", r"[^\\W\\d_]").replace(r"\\p{N}", r"\\d")
    return jsonschema.Draft7Validator(json.loads(text), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    land, wh, rep, key = root / "landing", root / "w.duckdb", root / "reports", root / "keys" / "k.pem"
    generate(land, weeks=4, seed=9, end=date(2026, 3, 9))
    args = ["--landing", str(land), "--warehouse", str(wh)]
    assert main(["ingest", *args]) == 0
    for week in WEEKS:
        assert main(["report", *args, "--reports", str(rep), "--week", week, "--signing-key", str(key),
                     *(["--new-key"] if week == WEEKS[0] else [])]) == 0
    return {"root": root, "land": land, "reports": rep, "key": key, "args": args}


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_weeks_oscal_files_validate_against_nists_schemas(published):
    ar_schema, cd_schema = schema_validator("oscal_assessment-results_schema.json"), schema_validator("oscal_component_schema.json")
    for week in WEEKS:
        folder = published["reports"] / week / "oscal"
        ar = json.loads((folder / "assessment-results.json").read_text())
        assert [e.message for e in ar_schema.iter_errors(ar)] == [], week
        assert [e.message for e in cd_schema.iter_errors(json.loads((folder / "component-definition.json").read_text()))] == []
    # the validator is live: a document without its plan, or with a state OSCAL does not define, is refused
    broken = json.loads((published["reports"] / "2026-W10" / "oscal" / "assessment-results.json").read_text())
    del broken["assessment-results"]["import-ap"]
    assert any("import-ap" in e.message for e in ar_schema.iter_errors(broken))
    broken = json.loads((published["reports"] / "2026-W10" / "oscal" / "assessment-results.json").read_text())
    broken["assessment-results"]["results"][0]["findings"][0]["target"]["status"]["state"] = "no-data"
    assert list(ar_schema.iter_errors(broken))


def test_the_results_say_what_kpis_json_and_the_csvs_say(published):
    week = published["reports"] / "2026-W10"
    kpis = json.loads((week / "kpis.json").read_text())
    doc = json.loads((week / "oscal" / "assessment-results.json").read_text())["assessment-results"]
    result = doc["results"][0]
    assert (result["start"], result["end"]) == (kpis["period_start"], kpis["period_end"])
    control_obs = [o for o in result["observations"] if "control-objective" in o["types"]]
    # one observation per control evaluation, with its status and method
    assert [(p["framework-control-id"], p["status"]) for p in
            ({q["name"]: q["value"] for q in o["props"]} for o in control_obs)] == [(c["id"], c["status"]) for c in kpis["controls"]]
    assert all(o["methods"] == ["TEST"] for o in control_obs)
    # a finding per OSCAL control id of every control that fails, is partial or has no data; none for a pass
    expected = sorted((cid, "satisfied" if c["status"] == "pass" else "not-satisfied")
                      for c in kpis["controls"] if c["status"] != "pass" for cid in EXPECTED_IDS[c["id"]])
    assert expected, "the demo week has failing controls"
    assert sorted((f["target"]["target-id"].removesuffix("_obj"), f["target"]["status"]["state"])
                  for f in result["findings"]) == expected
    assert {i["control-id"] for i in result["reviewed-controls"]["control-selections"][0]["include-controls"]} == \
        {cid for ids in EXPECTED_IDS.values() for cid in ids}
    # a risk per open finding past its SLA, due when findings.csv says
    overdue = [r for r in rows(week / "findings.csv") if r["state"] == "overdue"]
    assert overdue
    assert sorted((r["deadline"], r["status"]) for r in result["risks"]) == sorted((r["due_at"], "open") for r in overdue)
    # ISO 8.8 fails on overdue findings: its finding names their risks
    iso = next(f for f in result["findings"] if f["target"]["target-id"] == "iso27001-2022-8.8_obj")
    assert len(iso["related-risks"]) == len(overdue)
    # UUIDs: type-5, and no two items share one
    uuids = re.findall(r'"(?:uuid|observation-uuid|risk-uuid)": "([^"]+)"', (week / "oscal" / "assessment-results.json").read_text())
    defined = [u for u in re.findall(r'"uuid": "([^"]+)"', (week / "oscal" / "assessment-results.json").read_text())]
    assert all(UUID.match(u) for u in uuids) and len(defined) == len(set(defined))
    assert set(uuids) <= set(defined) | {json.loads((week / "oscal" / "component-definition.json").read_text())
                                          ["component-definition"]["components"][0]["uuid"]}


def test_every_evidence_link_resolves_to_the_row_or_input_file_it_names(published):
    week, land = published["reports"] / "2026-W10", published["land"]
    doc = json.loads((week / "oscal" / "assessment-results.json").read_text())["assessment-results"]
    resources = {r["uuid"]: r for r in doc["back-matter"]["resources"]}
    links = [e for o in doc["results"][0]["observations"] for e in o["relevant-evidence"]]
    csv_links = [e["href"] for e in links if "#row=" in e["href"]]
    input_links = [e["href"] for e in links if e["href"].startswith("#")]
    assert csv_links and input_links
    for href in csv_links:
        name, n = href.removeprefix("../").split("#row=")
        lines = list(csv.reader(open(week / name, newline="")))
        assert 2 <= int(n) <= len(lines), href          # RFC 7111: row 1 is the header
    # a link that names a finding or an exception lands on that item's row
    named = [(e["description"].split()[1].rstrip(":"), e["href"]) for e in links
             if e["description"].startswith(("finding ", "exception ")) and "#row=" in e["href"]]
    assert {h.split("#")[0] for _, h in named} == {"../findings.csv", "../exceptions.csv"}
    for ident, href in named:
        name, n = href.removeprefix("../").split("#row=")
        row = rows(week / name)[int(n) - 2]
        assert ident == row["vulnerability_id" if name == "findings.csv" else "id"], href
    for href in input_links:
        rlink = resources[href[1:]]["rlinks"][0]
        data = (land / rlink["href"]).read_bytes()
        assert rlink["hashes"][0] == {"algorithm": "SHA-256", "value": hashlib.sha256(data).hexdigest()}
    # an overdue finding's observation points at its own findings.csv row
    findings = rows(week / "findings.csv")
    for obs in (o for o in doc["results"][0]["observations"] if "finding" in o["types"]):
        n = int(obs["relevant-evidence"][0]["href"].split("#row=")[1])
        assert findings[n - 2]["vulnerability_id"] in obs["title"] and findings[n - 2]["state"] == "overdue"


def independent_pae(payload_type: str, body: bytes) -> bytes:
    """DSSE v1 (github.com/secure-systems-lab/dsse, protocol.md), written here from the spec."""
    return b" ".join([b"DSSEv1", str(len(payload_type)).encode(), payload_type.encode(), str(len(body)).encode(), body])


def test_the_envelope_verifies_with_securesystemslib_and_its_subjects_are_the_published_files(published):
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey
    pub = serialization.load_pem_public_key(published["key"].with_suffix(".pub.pem").read_bytes())
    for week in WEEKS:
        folder = published["reports"] / week
        raw = json.loads((folder / "attestation.dsse.json").read_text())
        keyid, sig = raw["signatures"][0]["keyid"], raw["signatures"][0]["sig"]
        env = Envelope.from_dict(json.loads(json.dumps(raw)))
        assert list(env.verify([SSlibKey.from_crypto(pub, keyid=keyid)], 1)) == [keyid]
        pub.verify(base64.b64decode(sig), independent_pae(raw["payloadType"], env.payload))
        st = json.loads(env.payload)
        assert st["_type"] == "https://in-toto.io/Statement/v1" and raw["payloadType"] == "application/vnd.in-toto+json"
        manifest = json.loads((folder / "manifest.json").read_text())
        on_disk = {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
                   if p.is_file() and p.name not in ("attestation.dsse.json", "manifest.sig.json")}
        assert {s["name"]: s["digest"]["sha256"] for s in st["subject"]} == on_disk
        assert "oscal/assessment-results.json" in on_disk
        pred = st["predicate"]
        assert (pred["week"], pred["revision"], pred["inputs_manifest_sha256"], pred["policy_version"]) == (
            week, manifest["revision"], manifest["inputs_manifest_sha256"], manifest["policy_version"])
        assert pred["previous_week"] == manifest["previous_week"]
    # another key does not verify it
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(VerificationError):
        env.verify([SSlibKey.from_crypto(other, keyid=keyid)], 1)


def _resign(folder: Path, key: Path) -> None:
    """An insider with the key: the manifest's hashes updated, manifest and envelope signed again and the
    publication recorded in the log, as a publication would."""
    from ifc_scan.report.attestation import envelope
    from ifc_scan.report.publications import PublicationLog
    from ifc_scan.report.signing import load_key
    signer = load_key(key)
    m = json.loads((folder / "manifest.json").read_text())
    m["outputs"] = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in m["outputs"]}
    data = (json.dumps(m, indent=1) + "\n").encode()
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.sig.json").write_bytes(signer.sign(data))
    files = {n: (folder / n).read_bytes() for n in ["manifest.json", *m["outputs"]]}
    (folder / "attestation.dsse.json").write_bytes(envelope(m, files, signer))
    PublicationLog(folder.parent, signer).record_week(folder.name, m["revision"], data)


def test_verify_checks_the_envelope_and_recomputes_the_oscal_files(published, tmp_path, capsys):
    pristine, rep = published["reports"], tmp_path / "reports"
    pub = str(published["key"].with_suffix(".pub.pem"))
    capsys.readouterr()
    assert main(["verify", "--reports", str(pristine), "--week", "2026-W09", "--key", pub]) == 0
    assert "ok   attestation" in capsys.readouterr().out

    def attack(fn, expected):
        shutil.rmtree(rep, ignore_errors=True)
        shutil.copytree(pristine, rep)
        fn(rep / "2026-W09")
        capsys.readouterr()
        assert main(["verify", "--reports", str(rep), "--week", "2026-W09", "--key", pub]) == 1, expected
        assert expected in capsys.readouterr().err, expected

    def subject_changed(w):       # one published file changed after signing
        (w / "tickets.csv").write_text((w / "tickets.csv").read_text() + "\n")
    attack(subject_changed, "subject tickets.csv does not match its sha256")

    def envelope_edited(w):       # the statement made to claim another revision, signature left as it was
        env = json.loads((w / "attestation.dsse.json").read_text())
        st = json.loads(base64.b64decode(env["payload"]))
        st["predicate"]["revision"] = 7
        env["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
        (w / "attestation.dsse.json").write_text(json.dumps(env))
    attack(envelope_edited, "no signature by the manifest's key")

    def envelope_deleted(w):
        (w / "attestation.dsse.json").unlink()
    attack(envelope_deleted, "attestation.dsse.json named by the manifest is missing")

    def oscal_pass_written_by_insider(w):   # a failing control turned into a pass, everything re-signed
        p = w / "oscal" / "assessment-results.json"
        p.write_text(p.read_text().replace('"state": "not-satisfied"', '"state": "satisfied"'))
        _resign(w, published["key"])
    attack(oscal_pass_written_by_insider, "oscal/assessment-results.json re-rendered from the recomputed figures differs")


def test_a_revision_gets_new_uuids_and_the_mapping_covers_the_catalog(published, tmp_path):
    from ifc_scan.controls.evaluate import CATALOG
    land, rep, wh = tmp_path / "landing", tmp_path / "reports", tmp_path / "w.duckdb"
    shutil.copytree(published["reports"], rep)
    shutil.copytree(published["land"], land)
    args = ["--landing", str(land), "--warehouse", str(wh)]
    before = json.loads((rep / "2026-W10" / "oscal" / "assessment-results.json").read_text())["assessment-results"]
    snap = land / "exceptions" / "_global" / "2026-03-03"
    snap.mkdir(parents=True)
    (snap / ".trivyignore").write_text("CVE-2099-0001  # late, never matches\n")
    assert main(["ingest", *args]) == 0
    assert main(["report", *args, "--reports", str(rep), "--week", "2026-W10", "--signing-key", str(published["key"])]) == 0
    after = json.loads((rep / "2026-W10" / "oscal" / "assessment-results.json").read_text())["assessment-results"]
    assert after["metadata"]["version"] == "2026-W10-r2" and before["metadata"]["version"] == "2026-W10-r1"
    assert after["uuid"] != before["uuid"]
    # every control of the catalog is published under the ids the component definition maps it to
    cd = json.loads((rep / "2026-W10" / "oscal" / "component-definition.json").read_text())["component-definition"]
    mapped: dict = {}
    for impl in cd["components"][0]["control-implementations"]:
        for req in impl["implemented-requirements"]:
            mapped.setdefault({p["name"]: p["value"] for p in req["props"]}["framework-control-id"], []).append(req["control-id"])
    assert mapped == EXPECTED_IDS and sorted(mapped) == sorted(c["id"] for c in CATALOG["controls"])
    nist = next(i for i in cd["components"][0]["control-implementations"] if "ra-5" in str(i))
    assert nist["source"].endswith("NIST_SP-800-53_rev5_catalog.json")


def test_a_period_packs_oscal_file_validates_and_verify_pack_recomputes_it(published, tmp_path, capsys):
    from ifc_scan.report.signing import load_key
    rep = tmp_path / "reports"
    shutil.copytree(published["reports"], rep)
    assert main(["period", "--reports", str(rep), "--from", WEEKS[0], "--to", WEEKS[-1],
                 "--signing-key", str(published["key"]), "--landing", str(published["land"])]) == 0, capsys.readouterr().err
    folder = rep / "periods" / "2026-02-16_2026-03-08"
    ar = json.loads((folder / "oscal" / "assessment-results.json").read_text())
    assert [e.message for e in schema_validator("oscal_assessment-results_schema.json").iter_errors(ar)] == []
    # one result per week, each the week's own: its period, and a finding per non-passing control id
    results = ar["assessment-results"]["results"]
    for week, result in zip(WEEKS, results, strict=True):
        kpis = json.loads((folder / "weeks" / week / "kpis.json").read_text())
        assert (result["start"], result["end"]) == (kpis["period_start"], kpis["period_end"])
        assert len(result.get("findings", [])) == sum(len(EXPECTED_IDS[c["id"]]) for c in kpis["controls"] if c["status"] != "pass")
        for href in (e["href"] for o in result["observations"] for e in o["relevant-evidence"] if "#row=" in e["href"]):
            assert href.startswith(f"../weeks/{week}/") and (folder / "oscal" / href.split("#")[0]).resolve().is_file()
    for week in WEEKS:      # each week's attestation travels with it, for cosign or in-toto inside the pack
        assert (folder / "weeks" / week / "attestation.dsse.json").read_bytes() == \
            (rep / week / "attestation.dsse.json").read_bytes()
    capsys.readouterr()
    assert main(["verify", "--pack", str(folder)]) == 0, capsys.readouterr().err
    # an insider turns the period's failing controls into passes and signs the pack's manifest again
    p = folder / "oscal" / "assessment-results.json"
    p.write_text(p.read_text().replace('"state": "not-satisfied"', '"state": "satisfied"'))
    m = json.loads((folder / "manifest.json").read_text())
    m["files"]["oscal/assessment-results.json"] = hashlib.sha256(p.read_bytes()).hexdigest()
    data = (json.dumps(m, indent=1, sort_keys=True) + "\n").encode()
    (folder / "manifest.json").write_bytes(data)
    (folder / "manifest.sig.json").write_bytes(load_key(published["key"]).sign(data))
    capsys.readouterr()
    assert main(["verify", "--pack", str(folder)]) == 1
    assert "oscal/assessment-results.json computed again from weeks/ differs from the pack's" in capsys.readouterr().err


def test_a_period_pack_has_its_own_attestation_that_verifies_without_ifc_scan(published, tmp_path, capsys):
    """The pack's attestation.dsse.json: an in-toto Statement whose subjects are the pack's manifest.json and
    every file it lists, signed with the pack's key; securesystemslib verifies it, a from-spec PAE check too;
    an envelope signed by another key makes `verify --pack` fail."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey
    from ifc_scan.report.attestation import pack_statement, sign_statement
    from ifc_scan.report.signing import Signer
    rep = tmp_path / "reports"
    shutil.copytree(published["reports"], rep)
    assert main(["period", "--reports", str(rep), "--from", WEEKS[0], "--to", WEEKS[-1],
                 "--signing-key", str(published["key"]), "--landing", str(published["land"])]) == 0, capsys.readouterr().err
    folder = rep / "periods" / "2026-02-16_2026-03-08"
    raw = json.loads((folder / "attestation.dsse.json").read_text())
    pub = serialization.load_pem_public_key(published["key"].with_suffix(".pub.pem").read_bytes())
    keyid = raw["signatures"][0]["keyid"]
    env = Envelope.from_dict(json.loads(json.dumps(raw)))
    assert list(env.verify([SSlibKey.from_crypto(pub, keyid=keyid)], 1)) == [keyid]
    pub.verify(base64.b64decode(raw["signatures"][0]["sig"]), independent_pae(raw["payloadType"], env.payload))
    st = json.loads(env.payload)
    on_disk = {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
               if p.is_file() and p.relative_to(folder).as_posix() not in ("attestation.dsse.json", "manifest.sig.json")}
    assert {s["name"]: s["digest"]["sha256"] for s in st["subject"]} == on_disk
    assert [w["week"] for w in st["predicate"]["weeks"]] == list(WEEKS) and st["predicate"]["evidence_grade"] is True
    capsys.readouterr()
    assert main(["verify", "--pack", str(folder)]) == 0, capsys.readouterr().err
    # the same statement signed by a key that is not the pack's
    m = json.loads((folder / "manifest.json").read_text())
    files = {n: (folder / n).read_bytes() for n in ["manifest.json", *m["files"]]}
    (folder / "attestation.dsse.json").write_bytes(sign_statement(pack_statement(m, files), Signer(Ed25519PrivateKey.generate(), tmp_path / "other.pem")))
    capsys.readouterr()
    assert main(["verify", "--pack", str(folder)]) == 1
    assert "attestation.dsse.json: no signature by the pack's key" in capsys.readouterr().err
