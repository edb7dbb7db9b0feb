"""Readers for exception governance evidence: the change records the exception-history collector
writes (`approvals/<scope>/<date>/<sha>.json`) and the roles file (`inventory/approvers.yaml`).

`trace_scope` follows one scope's ignore file through its changes: each entry line of each change is
traced to the change that gave it its present form (added, expiry changed, reason changed); an entry
carried over unchanged keeps the change that made it. The approval chain is judged later, by the
weekly stage (ifc_scan/kpis/approvals.py), on the change each entry in force traces to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ifc_scan.collect.exception_history import RECORD_SCHEMA
from ifc_scan.ingest import exceptions as exc_reader
from ifc_scan.timeutil import BadTimestamp, day_start, parse_date, parse_ts
from ifc_scan.yaml_budget import load_user_yaml

ROLES = ("security-engineer", "engineering-lead", "cto")


class RecordRejected(Exception):
    pass


def _ts(value):
    if value in (None, ""):
        return None
    try:
        return parse_ts(str(value))
    except BadTimestamp as exc:
        raise ValueError(str(exc)) from None


class _Signature(BaseModel):
    """The commit's signature as the collector checked it: only git's own check says "good"."""
    model_config = ConfigDict(extra="ignore")
    checked_by: str = "git"
    status: str = "none"
    key_fingerprint: str | None = None
    primary_key_fingerprint: str | None = None

    @property
    def good_keys(self) -> list[str]:
        """The fingerprints a good signature was made with (subkey and primary key for GPG); none otherwise."""
        if self.checked_by != "git" or self.status != "good":
            return []
        return [k for k in (self.key_fingerprint, self.primary_key_fingerprint) if k]


class _Commit(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sha: str
    author_login: str | None = None
    author_name: str | None = None
    author_email: str | None = None
    committed_at: datetime
    message: str = ""
    signature: _Signature | None = None
    _t = field_validator("committed_at", mode="before")(_ts)


class _Pull(BaseModel):
    model_config = ConfigDict(extra="ignore")
    number: int
    title: str | None = None
    url: str | None = None
    author: str | None = None
    merged_at: datetime | None = None
    _t = field_validator("merged_at", mode="before")(_ts)


class _Review(BaseModel):
    model_config = ConfigDict(extra="ignore")
    reviewer: str
    state: str
    submitted_at: datetime | None = None
    via: str = "github-review"
    email: str | None = None
    commit_id: str | None = None
    _t = field_validator("submitted_at", mode="before")(_ts)


class ChangeRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")
    schema_: Literal["ifc-scan.exception-change/1"] = RECORD_SCHEMA
    source: str
    repository: str | None = None
    path: str
    scope: str
    file: str
    commit: _Commit
    landed_at: datetime
    landed_by: str = "commit"
    pull_request: _Pull | None = None
    reviews: list[_Review] = []
    deleted: bool = False
    content_sha256: str | None = None
    content: str = ""
    _t = field_validator("landed_at", mode="before")(_ts)

    @property
    def title(self) -> str:
        return (self.pull_request.title if self.pull_request and self.pull_request.title
                else self.commit.message.split("\n", 1)[0])[:300]

    @property
    def author(self) -> str | None:
        """Who made the change: the pull request's author, else the commit's (login, else name)."""
        if self.pull_request and self.pull_request.author:
            return self.pull_request.author
        return self.commit.author_login or self.commit.author_name


def parse_change_record(text: str, path: str) -> ChangeRecord:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RecordRejected(f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RecordRejected("not a change record (top level is not an object)")
    if "schema" in doc:
        doc["schema_"] = doc.pop("schema")
    try:
        rec = ChangeRecord.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RecordRejected(f"not a change record: {where}: {first['msg']} ({len(exc.errors())} problem(s))") from None
    parts = path.split("/")
    if len(parts) == 4 and (parts[1] != rec.scope or parts[2] != rec.landed_at.date().isoformat()):
        raise RecordRejected(f"record of scope {rec.scope!r} landed {rec.landed_at.date()} is filed under "
                             f"{parts[1]}/{parts[2]}: the folder must be approvals/<scope>/<landed date>/")
    return rec


class LineVersion(NamedTuple):
    scope: str
    commit_sha: str          # the change whose file holds this line
    line_no: int | None
    vuln_id: str | None
    change: str              # added | expiry changed | reason changed | expiry and reason changed | unchanged
    version_sha: str         # the change that gave the entry its present form (its approvals are the ones judged)
    history: str             # every change of this entry so far, oldest first, for the report


def _entries(rec: ChangeRecord) -> list[exc_reader.Entry]:
    if rec.deleted:
        return []
    try:
        return exc_reader.parse_exception_file(rec.file, rec.content)[1]
    except exc_reader.FileRejected as exc:
        return exc.entries


def trace_scope(records: list[ChangeRecord]) -> list[LineVersion]:
    """Each entry line of each change, with the change that gave it its present form."""
    out: list[LineVersion] = []
    previous: dict[tuple, tuple] = {}      # entry key -> (expiry_raw, reason, version_sha, history)
    for rec in sorted(records, key=lambda r: (r.landed_at, r.commit.committed_at)):
        sha, label = rec.commit.sha, _label(rec)
        current: dict[tuple, tuple] = {}
        seen: dict[tuple, int] = {}
        for e in _entries(rec):
            base = (e.section, e.vuln_id, tuple(e.paths), tuple(e.purls))
            seen[base] = seen.get(base, 0) + 1
            key = (*base, seen[base])                    # the same ID listed twice: two entries
            # the expiry Trivy enforces, else the one the policy's comment declares ("# Reason, Expiry: ...")
            expiry = e.expiry_raw or (e.declared_expiry.date().isoformat() if e.declared_expiry else None)
            before = previous.get(key)
            if before is None:
                change, version, history = "added", sha, f"added {label}"
            else:
                moved = [what for what, old, new in (("expiry", before[0], expiry), ("reason", before[1], e.reason))
                         if old != new]
                if moved:
                    change = " and ".join(moved) + " changed"
                    version = sha
                    detail = "; ".join(f"{what} {old or '(none)'} -> {new or '(none)'}" for what, old, new in
                                       (("expiry", before[0], expiry), ("reason", before[1], e.reason)) if old != new)
                    history = f"{before[3]}; {detail} {label}"
                else:
                    change, version, history = "unchanged", before[2], before[3]
            current[key] = (expiry, e.reason, version, history)
            out.append(LineVersion(rec.scope, sha, e.line_no, e.vuln_id, change, version, history))
        previous = current
    return out


def _label(rec: ChangeRecord) -> str:
    pr = f" in #{rec.pull_request.number}" if rec.pull_request else " (no pull request)"
    return f"by {rec.commit.sha[:12]}{pr} at {rec.landed_at.isoformat()}Z"


# ---- inventory/approvers.yaml -------------------------------------------------------------------------

class Approver(NamedTuple):
    login: str
    role: str
    emails: list[str]
    since: datetime | None
    until: datetime | None
    keys: list[str] = []          # signing keys: "ssh-ed25519 AAAA..." (no comment) or a GPG fingerprint (hex)


_SSH_KEY = re.compile(r"^((?:sk-)?(?:ssh|ecdsa)-[a-z0-9@.\-]+)\s+([A-Za-z0-9+/]+={0,2})(?:\s.*)?$")
_GPG_FINGERPRINT = re.compile(r"^[0-9A-F]{40}$|^[0-9A-F]{64}$")


def signing_key(text: str, who: str) -> str:
    """One `keys:` item of approvers.yaml, normalised: an OpenSSH public key line ("ssh-ed25519 AAAA...",
    comment dropped) whose blob names the same key type, or a GPG fingerprint (40 or 64 hex digits, spaces
    allowed; a short key id is refused: it can be forged)."""
    line = text.strip()
    m = _SSH_KEY.match(line)
    if m:
        try:
            blob = base64.b64decode(m.group(2), validate=True)
        except binascii.Error:
            blob = b""
        n = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else -1
        if blob[4:4 + n].decode("ascii", "replace") != m.group(1) or len(blob) <= 4 + n:
            raise RecordRejected(f"approvers file: {who}: key {line[:40]!r}... is not an OpenSSH public key "
                                 f"(its data does not hold a {m.group(1)} key)")
        return f"{m.group(1)} {m.group(2)}"
    hexdigits = re.sub(r"\s+", "", line).upper().removeprefix("0X")
    if _GPG_FINGERPRINT.match(hexdigits):
        return hexdigits
    raise RecordRejected(f"approvers file: {who}: key {line[:40]!r} is neither an OpenSSH public key line "
                         "(ssh-ed25519 AAAA...) nor a full GPG fingerprint (40 hex digits)")


def key_fingerprint(key: str) -> str:
    """What git reports as the signing key (%GF): SHA256:<unpadded base64> for SSH, the hex fingerprint for GPG."""
    if " " not in key:
        return key
    digest = hashlib.sha256(base64.b64decode(key.split(" ", 1)[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _bound(v) -> datetime | None:
    """since/until: a YAML date (00:00Z of it) or an RFC 3339 time."""
    if v is None:
        return None
    if isinstance(v, datetime):
        return parse_ts(v.isoformat()) if v.tzinfo else v
    try:
        return day_start(parse_date(v))
    except BadTimestamp:
        return parse_ts(str(v))


def parse_approvers(text: str) -> list[Approver]:
    """inventory/approvers.yaml:

        approvers:
          - login: alice                 # GitHub login (or the name in an Approved-by: trailer)
            roles: [security-engineer]   # security-engineer | engineering-lead | cto
            emails: [alice@example.com]  # optional: matches commit trailers and authors
            since: 2026-01-01            # optional: the role counts from then (00:00Z) ...
            until: 2026-12-31            # ... and until then
            keys: ["ssh-ed25519 AAAA..."]  # optional: keys whose signed commits make an Approved-by:
                                         # trailer naming this approver count (SSH public key or GPG fingerprint)
    """
    doc = load_user_yaml(text, "approvers file", RecordRejected)
    items = doc.get("approvers")
    if not isinstance(items, list):
        raise RecordRejected("approvers file: no 'approvers:' list")
    out = []
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("login"), str) or not item["login"].strip():
            raise RecordRejected(f"approvers file: entry {i} has no login")
        roles = item.get("roles", item.get("role"))
        roles = [roles] if isinstance(roles, str) else roles
        if not isinstance(roles, list) or not roles:
            raise RecordRejected(f"approvers file: {item['login']}: no roles")
        for role in roles:
            if role not in ROLES:
                raise RecordRejected(f"approvers file: {item['login']}: unknown role {role!r} (roles: {', '.join(ROLES)})")
        emails = item.get("emails") or []
        emails = [emails] if isinstance(emails, str) else emails
        if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
            raise RecordRejected(f"approvers file: {item['login']}: emails must be a list of addresses")
        bounds = []
        for k in ("since", "until"):
            v = item.get(k)
            try:
                bounds.append(_bound(v))
            except BadTimestamp:
                raise RecordRejected(f"approvers file: {item['login']}: {k} {v!r} is not a date") from None
        keys = item.get("keys") or []
        keys = [keys] if isinstance(keys, str) else keys
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise RecordRejected(f"approvers file: {item['login']}: keys must be a list of public keys or fingerprints")
        keys = [signing_key(k, item["login"]) for k in keys]
        for role in roles:
            out.append(Approver(item["login"].strip(), role, [e.strip().lower() for e in emails], *bounds, keys))
    return out
