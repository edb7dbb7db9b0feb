"""Ed25519 signatures on published manifests (the `cryptography` library).

The private key lives outside the reports folder (IFC_SCAN_SIGNING_KEY, default
data/signing/ifc-scan-ed25519.pem), created on first use with mode 0600. Each week's manifest names the
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


def load_or_create(path: str | Path) -> Signer:
    """The signing key at `path`, created (0600, its folder 0700) if there is none."""
    path = Path(path)
    if path.is_file():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} is not an Ed25519 private key")
        return Signer(key, path)
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
