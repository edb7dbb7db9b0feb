"""A week's manifest as an in-toto Statement v1 in a DSSE envelope, signed with the week's Ed25519 key.

attestation.dsse.json is what supply-chain tools read (cosign verify-blob-attestation, the in-toto and
securesystemslib libraries): the subjects are the week's published files (manifest.json and every
output it lists) with their sha256; the predicate holds the week, revision, inputs digest, chain link
and policy version. The signature is over DSSE's pre-authentication encoding (PAE) of the payload, so
it cannot be replayed as a signature over other bytes. The envelope itself is not in the manifest
(it signs the manifest); `ifc-scan verify` checks it against the files and the manifest's key.
"""

from __future__ import annotations

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ATTESTATION_FILE = "attestation.dsse.json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://ifc-scan.invalid/attestation/weekly-evidence/v1"


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body."""
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def statement(manifest: dict, files: dict[str, bytes]) -> dict:
    """Subjects: manifest.json and each output it lists, by name within the week's folder."""
    names = ["manifest.json", *sorted(manifest["outputs"])]
    return {"_type": STATEMENT_TYPE,
            "subject": [{"name": n, "digest": {"sha256": hashlib.sha256(files[n]).hexdigest()}} for n in names],
            "predicateType": PREDICATE_TYPE,
            "predicate": {"week": manifest["week"], "revision": manifest["revision"],
                          "inputs_manifest_sha256": manifest["inputs_manifest_sha256"],
                          "inputs_count": manifest["inputs_count"],
                          "previous_week": manifest["previous_week"], "policy_version": manifest["policy_version"],
                          "catalog_version": manifest["catalog_version"], "project_version": manifest["project_version"],
                          "generated_at": manifest["generated_at"]}}


PACK_PREDICATE_TYPE = "https://ifc-scan.invalid/attestation/period-evidence/v1"


def pack_statement(manifest: dict, files: dict[str, bytes]) -> dict:
    """An audit-period pack: subjects are its manifest.json and every file the manifest lists (by path inside
    the pack); the predicate names the period, the weeks it rests on and whether it is evidence grade."""
    names = ["manifest.json", *sorted(manifest["files"])]
    return {"_type": STATEMENT_TYPE,
            "subject": [{"name": n, "digest": {"sha256": hashlib.sha256(files[n]).hexdigest()}} for n in names],
            "predicateType": PACK_PREDICATE_TYPE,
            "predicate": {"period": manifest["period"], "weeks": manifest["weeks"],
                          "evidence_grade": manifest["evidence_grade"], "stamp": manifest["stamp"],
                          "generated_at": manifest["generated_at"]}}


def envelope(manifest: dict, files: dict[str, bytes], signer) -> bytes:
    return sign_statement(statement(manifest, files), signer)


def sign_statement(st: dict, signer) -> bytes:
    """The statement in a DSSE envelope, signed over its PAE with the signer's Ed25519 key."""
    payload = json.dumps(st, sort_keys=True, separators=(",", ":")).encode()
    sig = signer.key.sign(pae(PAYLOAD_TYPE, payload))
    doc = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode(),
           "signatures": [{"keyid": signer.fingerprint, "sig": base64.b64encode(sig).decode()}]}
    return (json.dumps(doc, indent=1) + "\n").encode()


def check_envelope(folder, manifest: dict) -> list[str]:
    """Problems with the week's envelope: its signature by the key the manifest names (verify checks that
    key against --key), its statement, and each subject's sha256 against the file in `folder`."""
    name = manifest.get("attestation")
    path = folder / str(name)
    if name != ATTESTATION_FILE or not path.is_file():
        return [f"the attestation {name} named by the manifest is missing"]
    try:
        env = json.loads(path.read_bytes())
        payload = base64.b64decode(env["payload"], validate=True)
        public = base64.b64decode(manifest["signing_key"]["public_key"])
        if env["payloadType"] != PAYLOAD_TYPE:
            return [f"{name}: payloadType is {env['payloadType']!r}, not {PAYLOAD_TYPE}"]
        if not any(_signed(public, s, payload) for s in env["signatures"]):
            return [f"{name}: no signature by the manifest's key over the envelope (DSSE PAE)"]
        st = json.loads(payload)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{name} cannot be read as a DSSE envelope: {exc}"]
    problems = []
    if st.get("_type") != STATEMENT_TYPE or st.get("predicateType") != PREDICATE_TYPE:
        problems.append(f"{name}: not an in-toto Statement v1 of type {PREDICATE_TYPE}")
    pred = st.get("predicate") or {}
    if (pred.get("week"), pred.get("revision")) != (manifest["week"], manifest["revision"]):
        problems.append(f"{name} attests {pred.get('week')} r{pred.get('revision')}, not this folder's "
                        f"{manifest['week']} r{manifest['revision']}")
    subjects = {s.get("name"): (s.get("digest") or {}).get("sha256") for s in st.get("subject", [])}
    expected = {"manifest.json", *manifest.get("outputs", {})}
    if set(subjects) != expected:
        problems.append(f"{name}: its subjects are not the published files (differ in "
                        f"{', '.join(sorted(set(subjects) ^ expected))})")
    for subject, digest in sorted(subjects.items()):
        p = folder / str(subject)
        if subject in expected and (not p.is_file() or hashlib.sha256(p.read_bytes()).hexdigest() != digest):
            problems.append(f"{name}: subject {subject} does not match its sha256")
    return problems


def check_pack_envelope(files: dict[str, bytes], manifest: dict) -> list[str]:
    """Problems with a pack's attestation: signed by the key its manifest names (whose trust the pack's
    signature check settles), an in-toto Statement of the pack type, each subject's sha256 its file's."""
    raw = files.get(ATTESTATION_FILE)
    if raw is None:
        return [f"the pack's attestation {ATTESTATION_FILE} is missing"]
    try:
        env = json.loads(raw)
        payload = base64.b64decode(env["payload"], validate=True)
        public = base64.b64decode(manifest["signing_key"]["public_key"])
        if env["payloadType"] != PAYLOAD_TYPE or not any(_signed(public, s, payload) for s in env["signatures"]):
            return [f"{ATTESTATION_FILE}: no signature by the pack's key over the envelope (DSSE PAE)"]
        st = json.loads(payload)
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{ATTESTATION_FILE} cannot be read as a DSSE envelope: {exc}"]
    if st.get("_type") != STATEMENT_TYPE or st.get("predicateType") != PACK_PREDICATE_TYPE:
        return [f"{ATTESTATION_FILE}: not an in-toto Statement v1 of type {PACK_PREDICATE_TYPE}"]
    subjects = {s.get("name"): (s.get("digest") or {}).get("sha256") for s in st.get("subject", [])}
    expected = {"manifest.json", *manifest.get("files", {})}
    problems = [] if set(subjects) == expected else [
        f"{ATTESTATION_FILE}: its subjects are not the pack's files (differ in {', '.join(sorted(set(subjects) ^ expected)[:5])})"]
    problems += [f"{ATTESTATION_FILE}: subject {n} does not match its sha256" for n, d in sorted(subjects.items())
                 if n in expected and (n not in files or hashlib.sha256(files[n]).hexdigest() != d)]
    return problems


def _signed(public: bytes, sig: dict, payload: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(base64.b64decode(sig["sig"]), pae(PAYLOAD_TYPE, payload))
        return True
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False
