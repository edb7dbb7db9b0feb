"""One landing-zone scan file (bytes) -> ParsedScans, or Rejected with a reason a person understands.

Decoding and format detection live here; each format has its own reader module.
"""

from __future__ import annotations

import codecs
import gc
import hashlib
import json
from pathlib import Path
from typing import NamedTuple

import orjson

from ifc_scan.ingest.model import ParsedScan, Rejected
from ifc_scan.ingest.trivy_json import read_trivy_json
from ifc_scan.ingest.trivy_json_stream import NotStreamable, read_trivy_json_stream
from ifc_scan.ingest.trivy_k8s import is_k8s_report, is_operator_doc, read_k8s_report, read_operator
from ifc_scan.ingest.trivy_sarif import is_sarif, read_trivy_sarif


def decode_json_bytes(data: bytes):
    """Bytes -> JSON document. UTF-8 (with or without BOM) and UTF-16/32 with a BOM are accepted
    (PowerShell's `>` writes UTF-16); anything else must be valid UTF-8."""
    if not data.strip():
        raise Rejected("empty file (0 bytes of JSON)" if not data else "file holds only whitespace")
    if not data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return orjson.loads(data)   # fast path: valid UTF-8 JSON, as Trivy writes it
        except orjson.JSONDecodeError:
            pass                        # the standard decoder below says precisely what is wrong
    boms = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
            (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
    enc = next((name for bom, name in boms if data.startswith(bom)), "utf-8")
    try:
        text = data.decode(enc)
    except UnicodeDecodeError as exc:
        raise Rejected(f"not valid {enc.upper()} text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                       f"cannot be decoded") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise Rejected("JSON nested too deeply to be a scan report") from None
    except json.JSONDecodeError as exc:
        where = "at the end of the file (truncated?)" if exc.pos >= len(text.rstrip()) else \
            f"at line {exc.lineno}, column {exc.colno}"
        raise Rejected(f"broken JSON {where}: {exc.msg}") from None


def describe_foreign(doc) -> str | None:
    """Name well-known non-Trivy-report JSON so the rejection says what the file is."""
    if isinstance(doc, dict):
        if doc.get("bomFormat") == "CycloneDX":
            return "a CycloneDX SBOM, not a Trivy vulnerability report (ifc_scan reads Trivy JSON and SARIF)"
        if "spdxVersion" in doc:
            return "an SPDX SBOM, not a Trivy vulnerability report"
        if "Findings" in doc and isinstance(doc["Findings"], list):
            return "an AWS Security Hub (ASFF) template output, not a Trivy JSON report"
        if "vulnerabilities" in doc and "scan" in doc and "version" in doc:
            return "a GitLab security report template output, not a Trivy JSON report"
        if "detector" in doc and "manifests" in doc:
            return "a GitHub dependency snapshot, not a Trivy JSON report"
        if "@context" in doc and "statements" in doc:
            return "an OpenVEX document; put it under exceptions/<scope>/<date>/ to use it as exceptions"
    if isinstance(doc, list) and doc and isinstance(doc[0], dict) and "check_name" in doc[0]:
        return "a GitLab code-quality template output, not a Trivy JSON report"
    return None


# What a reader raises when a field holds a value of a shape it did not foresee ("ImageID": [null],
# "Results": "x", a number where a string belongs, nesting deeper than Python's recursion allows).
SHAPE_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError, RecursionError)


def read_scan_document(doc) -> list[ParsedScan]:
    """A parsed document -> scans, or Rejected with a reason; nothing else escapes (the reader edge)."""
    try:
        return _read_scan_document(doc)
    except Rejected:
        raise
    except SHAPE_ERRORS as exc:
        raise Rejected(f"a field has a value of an unexpected shape for a Trivy report "
                       f"({type(exc).__name__}: {str(exc)[:200]})") from None


def _read_scan_document(doc) -> list[ParsedScan]:
    foreign = describe_foreign(doc)
    if foreign:
        raise Rejected(foreign)
    if is_sarif(doc):
        return read_trivy_sarif(doc)
    if is_k8s_report(doc):
        return read_k8s_report(doc)
    if is_operator_doc(doc):
        return read_operator(doc)
    return read_trivy_json(doc)


def read_scan_bytes(data: bytes) -> list[ParsedScan]:
    return read_scan_document(decode_json_bytes(data))


STREAM_BYTES = 32 * 1024 * 1024   # above this a SchemaVersion 2 report is streamed, not parsed whole


class ChangedWhileReading(OSError):
    """The file's bytes are not the ones hashed when it was found: it is being written. Read again later."""


class _HashingReader:
    """A binary file whose every byte read is hashed, so the rows come from the bytes the sha256 names."""

    def __init__(self, fh):
        self.fh, self.h = fh, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.h.update(data)
        return data

    def rest_digest(self) -> str:
        for chunk in iter(lambda: self.fh.read(1 << 20), b""):
            self.h.update(chunk)
        return self.h.hexdigest()


def read_scan_file(path: Path, size: int, expect_sha256: str | None = None) -> list[ParsedScan]:
    """A landing-zone scan file -> scans. Large Trivy JSON is streamed so memory stays bounded.
    expect_sha256: the hash recorded for the file; ChangedWhileReading if the bytes parsed are others."""
    return read_scan_file_hashed(path, size, expect_sha256)[0]


def read_scan_file_hashed(path: Path, size: int, expect_sha256: str | None = None) -> tuple[list[ParsedScan], str]:
    """read_scan_file, and the sha256 of the bytes the scans were read from (one read of the file)."""
    with path.open("rb") as raw:
        if size > STREAM_BYTES and path.suffix.lower() == ".json":
            head = raw.read(4)
            raw.seek(0)
            if not head.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                fh = _HashingReader(raw)
                try:
                    scans = read_trivy_json_stream(fh)
                    digest = fh.rest_digest()
                    _check(path, digest, expect_sha256)
                    return scans, digest
                except NotStreamable:
                    raw.seek(0)   # another shape (legacy list, k8s report...): parsed whole below
                except (Rejected, OSError):
                    raise
                except SHAPE_ERRORS as exc:
                    raise Rejected(f"a field has a value of an unexpected shape for a Trivy report "
                                   f"({type(exc).__name__}: {str(exc)[:200]})") from None
        data = raw.read()
    digest = hashlib.sha256(data).hexdigest()
    _check(path, digest, expect_sha256)
    return read_scan_bytes(data), digest


class ScanRead(NamedTuple):
    """One landing file's reading, as a reader process sends it back: status is "ok", "rejected" (the
    file's fault, final) or "unreadable" (the machine's: read again next time). sha256 is of the bytes read
    ("" when nothing could be read)."""
    sha256: str
    status: str
    reason: str | None
    scans: list[ParsedScan]


def read_landing_scan(abspath: str, size: int, expect_sha256: str | None = None) -> ScanRead:
    """A scan file -> ScanRead; never raises for the file's content or the machine's I/O. Runs in a reader
    process as well as in the ingest process, so everything it returns must pickle."""
    path = Path(abspath)
    # A parsed report is a large acyclic tree: pausing the cyclic GC while it is built and turned
    # into rows saves its repeated scans of objects that are all alive anyway.
    gc.disable()
    try:
        scans, digest = read_scan_file_hashed(path, size, expect_sha256)
    except Rejected as exc:
        return ScanRead(_digest_or_empty(path, expect_sha256), "rejected", str(exc), [])
    except (OSError, MemoryError) as exc:
        return ScanRead(expect_sha256 or "", "unreadable", f"could not be read: {type(exc).__name__}: {exc}", [])
    except Exception as exc:      # noqa: BLE001 (a reader's bug or an input it did not foresee: this file only)
        return ScanRead(_digest_or_empty(path, expect_sha256), "rejected",
                        f"not read (reader error {type(exc).__name__}: {str(exc)[:300]})", [])
    finally:
        gc.enable()
    return ScanRead(digest, "ok", None, scans)


def read_landing_scans(args: list[tuple[str, int, str | None]]) -> list[ScanRead]:
    """read_landing_scan of several files: a reader process's task (small files go in groups, so the
    cost of a task is spread over many)."""
    return [read_landing_scan(*a) for a in args]


def _digest_or_empty(path: Path, known: str | None) -> str:
    """The hash a rejection is recorded under: the one taken when the file was found, else its bytes now."""
    if known:
        return known
    try:
        return sha256_file(path)
    except OSError:
        return ""


def undecodable_name(name: str) -> str | None:
    """None for a file name that is valid UTF-8; else the name with its undecodable bytes written as \\xNN.
    Python holds such bytes as lone surrogates, which DuckDB, JSON and HTML cannot take: the escaped form
    is what is recorded and shown (the file itself is not read: its name could not be given as evidence)."""
    try:
        name.encode("utf-8")
        return None
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check(path: Path, got: str, expected: str | None) -> None:
    if expected is not None and got != expected:
        raise ChangedWhileReading(f"{path.name} changed while it was being read (sha256 {expected[:12]}... when "
                                  f"found, {got[:12]}... when parsed)")
