"""Ed25519 signatures on published manifests (the `cryptography` library).

The private key lives outside the reports folder and the landing zone (a key under either is refused)
(IFC_SCAN_SIGNING_KEY, default data/signing/ifc-scan-ed25519.pem). A missing key is created (mode 0600)
only when asked (`report --new-key`) or on the first use of the default path while no published week
is signed yet; otherwise a missing key is an error, never a silent new key. A key other than the one
that signed the published weeks is refused unless the rotation is asked for (`--rotate-key`), which is
then recorded in the signed chain (`key_rotated_from`) and in the publication log. Each week's manifest names the
public key and its fingerprint; `manifest.sig.json` beside it holds the signature over the manifest's
bytes. Whoever rewrites a manifest chain without the private key cannot sign it again with the key an
auditor pinned (`ifc-scan verify --key`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_FILE = "manifest.sig.json"


def fingerprint(public_raw: bytes) -> str:
    return "SHA256:" + hashlib.sha256(public_raw).hexdigest()


@dataclass
class Signer:
    key: Ed25519PrivateKey
    path: Path

    @property
    def public_raw(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    def describe(self) -> dict:
        return {"algorithm": "Ed25519", "public_key": self.public_key_b64, "fingerprint": self.fingerprint}

    def sign(self, data: bytes) -> bytes:
        doc = {**self.describe(), "signed_file": "manifest.json", "signed_sha256": hashlib.sha256(data).hexdigest(),
               "signature": base64.b64encode(self.key.sign(data)).decode()}
        return (json.dumps(doc, indent=1) + "\n").encode()


class KeyRefused(ValueError):
    """A signing key that must not be used as given (missing, misplaced, or another key than the chain's)."""


def load_key(path: str | Path) -> Signer:
    """The existing signing key at `path`; a missing file is an error (KeyRefused), never a new key."""
    path = Path(path)
    if not path.is_file():
        raise KeyRefused(f"signing key {path} does not exist: restore it (a new key is created only with --new-key)")
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return Signer(key, path)


def refuse_if_published(path: Path, folders: dict[str, Path]) -> None:
    """A private key under the reports folder or the landing zone would be published with the evidence."""
    # as written and with links followed, on both sides: a link in the reports folder is published too
    wheres = {Path(os.path.abspath(path)), path.resolve()}
    for what, folder in folders.items():
        if folder is None:
            continue
        inside = {Path(os.path.abspath(folder)), Path(folder).resolve()}
        if any(w.is_relative_to(f) for w in wheres for f in inside):
            raise KeyRefused(f"signing key {path} is inside the {what} ({folder}): a private key there is published "
                             "with the evidence it signs; keep it outside (refused)")


def load_or_create(path: str | Path) -> Signer:
    """The signing key at `path`, created (0600, its folder 0700) if there is none. Callers decide whether
    creating is allowed (signer_for_publication); tests use it to stand for an insider's own key."""
    path = Path(path)
    if path.is_file():
        return load_key(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path.with_suffix(".pub.pem").write_bytes(pub)
    return Signer(key, path)


def read_public_key(path: str | Path) -> bytes:
    """A public key file (PEM, as written beside the private key) -> its raw 32 bytes."""
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path} is not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def check(manifest_bytes: bytes, sig_bytes: bytes | None, trusted: list[bytes]) -> tuple[bool, str]:
    """(ok, what was checked). With `trusted` keys given, the signing key must be one of them."""
    manifest = json.loads(manifest_bytes)
    declared = manifest.get("signing_key")
    if sig_bytes is None:
        if declared is None and not trusted:
            return True, "not signed (published by a release without signing); pass --key to require signatures"
        return False, f"{SIGNATURE_FILE} is missing"
    try:
        sig = json.loads(sig_bytes)
        public_raw = base64.b64decode(sig["public_key"])
        Ed25519PublicKey.from_public_bytes(public_raw).verify(base64.b64decode(sig["signature"]), manifest_bytes)
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return False, "the signature does not match manifest.json"
    fp = fingerprint(public_raw)
    if declared is None or declared.get("public_key") != sig["public_key"]:
        return False, "the manifest names another signing key than the one that signed it"
    if trusted:
        if public_raw not in trusted:
            return False, f"signed by {fp}, which is not the key given with --key"
        return True, f"Ed25519 signature valid, key {fp} (pinned with --key)"
    return True, f"Ed25519 signature valid, key {fp} (not pinned: compare the fingerprint or pass --key)"


def chain_key_fingerprint(reports: Path) -> str | None:
    """The fingerprint of the key that signed the latest publication: the publication log's last signed
    record, else (reports published before the log) the newest signed week's manifest."""
    from ifc_scan.report.publications import published_manifests, read_log
    state = read_log(Path(reports), verifying=False)
    if state is not None and state.key_fingerprint:
        return state.key_fingerprint
    for _week, data in sorted(published_manifests(Path(reports)).items(), reverse=True):
        key = json.loads(data).get("signing_key")
        if key:
            return key.get("fingerprint")
    return None


def is_default_path(path: str | Path) -> bool:
    from ifc_scan.settings import ENV
    return Path(path).resolve() == Path(ENV["signing_key"][1]).resolve()


def signer_for_publication(path: str | Path, reports: Path, landing: Path | None, new_key: bool = False,
                           rotate: bool = False) -> Signer:
    """The key that signs this publication, by the rules in this module's docstring (KeyRefused otherwise)."""
    path = Path(path)
    refuse_if_published(path, {"reports folder": Path(reports), "landing zone": landing})
    chain_fp = chain_key_fingerprint(reports)
    if not path.is_file():
        first_use = chain_fp is None and is_default_path(path)
        if not (new_key or first_use):
            raise KeyRefused(f"signing key {path} does not exist: restore it, or pass --new-key to create one"
                             + (" (with --rotate-key: the published weeks are signed by " + chain_fp + ")"
                                if chain_fp else ""))
        if chain_fp is not None and not rotate:
            raise KeyRefused(f"a new key at {path} would replace the key that signed the published weeks ({chain_fp}): "
                             "pass --rotate-key as well to record the rotation")
        return load_or_create(path)
    if new_key:
        raise KeyRefused(f"--new-key: signing key {path} exists already; a new key is created only where there is none")
    signer = load_key(path)
    if chain_fp is not None and signer.fingerprint != chain_fp and not rotate:
        raise KeyRefused(f"signing key {path} ({signer.fingerprint}) is not the key that signed the published weeks "
                         f"({chain_fp}): pass --rotate-key to rotate to it (recorded in the chain)")
    return signer
