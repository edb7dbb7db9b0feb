"""The publication log: reports/publications.log.jsonl, one signed record per publication, each naming
the sha256 of the line before it.

A week's chain of manifests only links backwards, so on its own it cannot tell that the newest week
was deleted, that index.html was edited, or that an older signed revision was put back in place of a
newer one. The log can: every week written (its revision and manifest sha256) and every index.html
written (its sha256) is appended before it is renamed into place, and `ifc-scan verify` replays the
log and compares the published folders with its latest state. Records are only appended (the file is
rewritten whole and renamed, so a crash never leaves a torn line); an insider who truncates the log
and rolls a week back is caught by comparing with a copy kept elsewhere (`verify --log-copy`): the
current log must begin with every line of the copy.

Record fields: seq (1, 2, ...), at, kind (baseline | week | index), weeks ({week: {revision,
manifest_sha256}}: all published weeks for the baseline, the one written for a week record),
index_sha256, previous_sha256 (of the line before, null for the first), signing_key (as in a
manifest) with key_rotated_from when the key changed, and signature (Ed25519 over the record's
canonical JSON without the signature).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LOG_FILE = "publications.log.jsonl"


def canonical(record: dict) -> bytes:
    return json.dumps({k: v for k, v in record.items() if k != "signature"}, sort_keys=True,
                      separators=(",", ":")).encode()


def published_manifests(reports: Path) -> dict[str, bytes]:
    """week -> the bytes of its published manifest.json."""
    if not reports.is_dir():
        return {}
    return {p.name: (p / "manifest.json").read_bytes() for p in sorted(reports.iterdir())
            if p.is_dir() and p.name[:2] == "20" and (p / "manifest.json").is_file()}


@dataclass
class LogState:
    """A publication log replayed: the latest record of each week, every manifest each week ever had."""
    lines: list[bytes] = field(default_factory=list)
    weeks: dict[str, dict] = field(default_factory=dict)
    history: dict[str, dict[str, int]] = field(default_factory=dict)     # week -> {manifest_sha256: revision}
    index_sha256: str | None = None
    key_fingerprint: str | None = None
    problems: list[str] = field(default_factory=list)
    unpinned_rotations: list[str] = field(default_factory=list)    # problems for a verifier, not for the writer

    @property
    def head_sha256(self) -> str | None:
        return hashlib.sha256(self.lines[-1]).hexdigest() if self.lines else None

    def apply(self, line: bytes, record: dict) -> None:
        """One record (its line) added to the replayed state."""
        self.lines.append(line)
        for week, entry in (record.get("weeks") or {}).items():
            self.weeks[week] = entry
            self.history.setdefault(week, {})[entry["manifest_sha256"]] = entry.get("revision")
        if record.get("index_sha256"):
            self.index_sha256 = record["index_sha256"]


def _check_record(i: int, line: bytes, record: dict, state: LogState, trusted: list[bytes]) -> list[str]:
    where = f"{LOG_FILE} record {i}"
    out = []
    if record.get("seq") != i:
        out.append(f"{where} has seq {record.get('seq')!r}: records were removed or reordered")
    prev = hashlib.sha256(state.lines[-1]).hexdigest() if state.lines else None
    if record.get("previous_sha256") != prev:
        out.append(f"{where} does not name the sha256 of the record before it: the log was rewritten")
    key = record.get("signing_key")
    if key is None:
        if state.key_fingerprint is not None:
            out.append(f"{where} is not signed although the records before it are")
        return out
    from ifc_scan.report.signing import fingerprint
    try:
        public_raw = base64.b64decode(key["public_key"])
        Ed25519PublicKey.from_public_bytes(public_raw).verify(base64.b64decode(record["signature"]), canonical(record))
    except (InvalidSignature, ValueError, KeyError, TypeError):
        return out + [f"{where}: the signature does not match the record"]
    fp = fingerprint(public_raw)
    if trusted and public_raw not in trusted:
        out.append(f"{where} is signed by {fp}, which is not the key given with --key")
    if state.key_fingerprint and fp != state.key_fingerprint:
        if record.get("key_rotated_from") != state.key_fingerprint:
            out.append(f"{where} is signed by {fp}, not by the log's key {state.key_fingerprint}, and records no rotation")
        elif not trusted:      # anyone holding a new key can write a rotation record: the auditor's --key decides
            state.unpinned_rotations.append(f"{where} rotates the key from {state.key_fingerprint} to {fp}: a rotation is accepted only "
                       "with --key naming the new public key")
    state.key_fingerprint = fp
    return out


def read_log(reports: Path, trusted: list[bytes] | None = None, path: Path | None = None,
             verifying: bool = True) -> LogState | None:
    """The log replayed and checked (hash chain, signatures, key continuity); None when there is none.
    `verifying`: a key rotation not pinned by `trusted` is a problem (the writer, who asked for it, reads
    with False)."""
    path = path or reports / LOG_FILE
    if not path.is_file():
        return None
    state = LogState()
    for i, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            state.problems.append(f"{LOG_FILE} record {i} is not JSON: the log was damaged")
            state.lines.append(line)
            continue
        state.problems += _check_record(i, line, record, state, trusted or [])
        state.apply(line, record)
    if verifying:
        state.problems += state.unpinned_rotations
    return state


def starts_with_copy(state: LogState, copy: Path) -> list[str]:
    """The kept copy of the log must be where the current log starts (records are only ever appended)."""
    kept = copy.read_bytes().splitlines()
    if state.lines[:len(kept)] == kept:
        return []
    same = next((i for i, (a, b) in enumerate(zip(kept, state.lines)) if a != b), min(len(kept), len(state.lines)))
    return [f"{LOG_FILE} no longer begins with the {len(kept)} record(s) of the copy {copy} (it has {len(state.lines)}, "
            f"the first difference at record {same + 1}): records were removed or rewritten, so a week may have "
            "been rolled back"]


class PublicationLog:
    """The writer's side: appends one signed record per publication, refusing to continue a broken log."""

    def __init__(self, reports: Path, signer):
        self.reports, self.signer = Path(reports), signer
        self.path = self.reports / LOG_FILE
        state = read_log(self.reports, verifying=False)
        if state is None:
            named = [w for w, data in published_manifests(self.reports).items() if b'"publication_log"' in data]
            if named:
                raise ValueError(f"{self.path} is missing but the published weeks {', '.join(named[:3])} were recorded "
                                 "in it: restore it from a copy; a new log would hide a rollback (refused)")
            state = LogState()
            self.state = state
            current = {w: {"revision": json.loads(d).get("revision"), "manifest_sha256": hashlib.sha256(d).hexdigest()}
                       for w, d in published_manifests(self.reports).items()}
            if current:   # weeks published before the log existed: its starting point
                self._append({"kind": "baseline", "weeks": current})
        elif state.problems:
            raise ValueError(f"{self.path} fails its own check ({state.problems[0]}): publishing more would "
                             "chain to a damaged log; investigate and restore it (refused)")
        self.state = state

    def _append(self, record: dict) -> None:
        st = self.state
        record = {"seq": len(st.lines) + 1, "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  **record, "previous_sha256": st.head_sha256}
        if self.signer is not None:
            record["signing_key"] = self.signer.describe()
            if st.key_fingerprint and st.key_fingerprint != self.signer.fingerprint:
                record["key_rotated_from"] = st.key_fingerprint
            record["signature"] = base64.b64encode(self.signer.key.sign(canonical(record))).decode()
            st.key_fingerprint = self.signer.fingerprint
        line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        tmp = self.path.with_suffix(".jsonl.tmp")
        with open(tmp, "wb") as fh:          # whole file rewritten and renamed: never a torn line
            fh.write(b"".join(x + b"\n" for x in st.lines + [line]))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        st.apply(line, record)

    def record_week(self, week: str, revision: int, manifest: bytes) -> None:
        self._append({"kind": "week", "weeks": {week: {"revision": revision,
                                                       "manifest_sha256": hashlib.sha256(manifest).hexdigest()}}})

    def record_index(self, index_bytes: bytes) -> None:
        sha = hashlib.sha256(index_bytes).hexdigest()
        if sha != self.state.index_sha256:
            self._append({"kind": "index", "index_sha256": sha})
