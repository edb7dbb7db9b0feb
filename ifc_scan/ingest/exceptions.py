"""Exception files as Trivy reads them: `.trivyignore`, `.trivyignore.yaml`, and OpenVEX.

Each entry keeps its line number so an auditor can find it. Validity follows Trivy exactly
(../shared/corpus/real/NOTES.md §2): a plain line with a malformed `exp:` is dropped by Trivy, so it
is kept here marked invalid and suppresses nothing; a YAML file Trivy refuses (FATAL) makes every
entry of it invalid.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime

import yaml

from ifc_scan.timeutil import BadTimestamp, day_start, parse_date, parse_ts
from ifc_scan.yaml_budget import yaml_budget_problem

_DECLARED_EXPIRY = re.compile(r"(?:Expiry|Expires|Expiration)\s*:?\s*(\d{4}-\d{2}-\d{2})", re.I)
YAML_SECTIONS = ("vulnerabilities", "misconfigurations", "secrets", "licenses")


@dataclass
class Entry:
    line_no: int | None
    section: str
    vuln_id: str | None
    expiry: datetime | None        # what Trivy enforces (exp: / expired_at), 00:00Z of the date
    expiry_raw: str | None
    declared_expiry: datetime | None  # a date written only in a comment: shown, not enforced by Trivy
    reason: str | None
    paths: list[str]
    purls: list[str]
    valid: bool
    invalid_reason: str | None = None


class FileRejected(Exception):
    """The whole file is refused by Trivy; entries are still returned, all invalid."""

    def __init__(self, reason: str, entries: list[Entry]):
        super().__init__(reason)
        self.entries = entries


def _declared(comment: str | None) -> datetime | None:
    m = _DECLARED_EXPIRY.search(comment or "")
    if not m:
        return None
    try:
        return day_start(parse_date(m.group(1)))
    except BadTimestamp:
        return None


def _reason_text(comment: str | None) -> str | None:
    """Policy convention '# Reason, Expiry: YYYY-MM-DD': the reason is what precedes the expiry."""
    if not comment:
        return None
    text = _DECLARED_EXPIRY.sub("", comment).strip().strip(",;:-").strip()
    return text or None


def parse_trivyignore(text: str) -> list[Entry]:
    entries = []
    above: str | None = None      # comment block directly above (a blank line breaks it)
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            above = None
            continue
        if line.startswith("#"):
            c = line.lstrip("#").strip()
            above = f"{above} {c}".strip() if above else c
            continue
        fields = line.split()
        vuln_id = fields[0]
        rest = line[len(vuln_id):]
        inline = rest.split("#", 1)[1].strip() or None if "#" in rest else None
        expiry, expiry_raw, invalid = None, None, None
        for f in fields[1:]:
            if f.startswith("exp:"):
                expiry_raw = f[4:]
                try:
                    expiry = day_start(parse_date(expiry_raw))
                except BadTimestamp:
                    invalid = f"expiry date {expiry_raw!r} is not YYYY-MM-DD: Trivy drops the whole line"
        comment = inline or above
        entries.append(Entry(no, "any", vuln_id, None if invalid else expiry, expiry_raw, _declared(comment),
                             _reason_text(comment), [], [], invalid is None, invalid))
        above = None
    return entries


def _yaml_lines(text: str) -> dict[tuple[str, int], int]:
    """(section, index) -> 1-based line of that list item, from the YAML node tree."""
    out = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return out
    if isinstance(root, yaml.MappingNode):
        for knode, vnode in root.value:
            if isinstance(vnode, yaml.SequenceNode):
                for i, item in enumerate(vnode.value):
                    out[(knode.value, i)] = item.start_mark.line + 1
    return out


def _yaml_comment_above(lines: list[str], line_no: int) -> str | None:
    """Comment on the item's own line or directly above it (YAML loses comments)."""
    own = lines[line_no - 1] if 0 < line_no <= len(lines) else ""
    if "#" in own:
        return own.split("#", 1)[1].strip() or None
    block = []
    i = line_no - 2
    while i >= 0 and lines[i].strip().startswith("#"):
        block.insert(0, lines[i].strip().lstrip("#").strip())
        i -= 1
    return " ".join(block) or None


def _shape_problem(item: dict) -> str | None:
    """What Trivy's struct (id, statement, expired_at: strings; paths, purls: lists of strings) cannot hold."""
    for key in ("id", "statement", "expired_at"):
        if isinstance(item.get(key), (list, dict)):
            return f"{key} is a {type(item[key]).__name__}, not a string"
    for key in ("paths", "purls"):
        value = item.get(key)
        if value not in (None, "") and (not isinstance(value, list) or any(isinstance(v, (list, dict)) for v in value)):
            return f"{key} is not a list of strings"
    return None


def parse_trivyignore_yaml(text: str) -> list[Entry]:
    problem = yaml_budget_problem(text)
    if problem:
        raise FileRejected(problem, [])
    try:
        # BaseLoader keeps every scalar a string, so we can tell `2020-01-01` from `"2020-01-01"` below.
        doc = yaml.load(text, Loader=yaml.BaseLoader)
        typed = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FileRejected(f"not valid YAML: {str(exc).splitlines()[0][:200]}", []) from None
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise FileRejected("top level is not a mapping of sections (Trivy: yaml unmarshal error)", [])
    where = _yaml_lines(text)
    lines = text.splitlines()
    entries: list[Entry] = []
    fatal = None
    for section in YAML_SECTIONS:
        items = doc.get(section)
        typed_items = (typed or {}).get(section) or []
        if items is None or items == "":
            continue
        if not isinstance(items, list):
            fatal = fatal or f"section {section!r} is not a list (Trivy: yaml unmarshal error)"
            continue
        for i, item in enumerate(items):
            no = where.get((section, i))
            if not isinstance(item, dict):
                fatal = fatal or f"line {no}: entry {item!r:.60} is not a mapping (Trivy: yaml unmarshal errors)"
                entries.append(Entry(no, section, str(item)[:200], None, None, None, None, [], [], False, "not a mapping"))
                continue
            shape = _shape_problem(item)
            if shape:    # Go's yaml unmarshal into Trivy's struct fails: Trivy refuses the file
                fatal = fatal or f"line {no}: {shape} (Trivy: yaml unmarshal error)"
                entries.append(Entry(no, section, None, None, None, None, None, [], [], False, shape))
                continue
            vid = item.get("id")
            paths = [str(p) for p in item.get("paths") or []]
            purls = [str(p) for p in item.get("purls") or []]
            raw_exp = item.get("expired_at")
            typed_exp = typed_items[i].get("expired_at") if i < len(typed_items) and isinstance(typed_items[i], dict) else None
            expiry, invalid = None, None
            if raw_exp is not None:
                if isinstance(typed_exp, datetime):
                    expiry = typed_exp.replace(tzinfo=None) if typed_exp.tzinfo is None else parse_ts(typed_exp.isoformat())
                elif isinstance(typed_exp, date):
                    expiry = day_start(typed_exp)   # unquoted date: YAML timestamp, Trivy accepts it
                else:
                    try:
                        expiry = parse_ts(str(raw_exp))
                        if expiry is None or not re.search(r"T\d", str(raw_exp)):
                            raise BadTimestamp("date only")
                    except BadTimestamp:
                        fatal = fatal or (f"line {no}: expired_at {raw_exp!r} is a quoted string that is not RFC 3339 "
                                          f"(Trivy: FATAL parsing time): the whole file is refused")
            if not vid:
                invalid = "no id: released Trivy matches nothing with this entry"
            statement = item.get("statement")
            comment = _yaml_comment_above(lines, no) if no else None
            entries.append(Entry(no, section, vid, expiry, str(raw_exp) if raw_exp is not None else None,
                                 _declared(comment) if raw_exp is None else None,
                                 (str(statement).strip() if statement else None) or _reason_text(comment),
                                 paths, purls, invalid is None, invalid))
    if fatal:
        for e in entries:
            e.valid, e.invalid_reason = False, e.invalid_reason or f"file refused by Trivy: {fatal}"
        raise FileRejected(fatal, entries)
    return entries


def parse_openvex(text: str) -> list[Entry]:
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise FileRejected(f"OpenVEX file is not valid JSON: {exc}", []) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("statements"), list):
        raise FileRejected("not an OpenVEX document (no statements list)", [])
    lines = text.splitlines()
    entries = []
    for st in doc["statements"]:
        if not isinstance(st, dict):
            continue
        vuln = st.get("vulnerability")
        vid = vuln.get("name") or vuln.get("@id") if isinstance(vuln, dict) else vuln
        status = st.get("status")
        purls = []
        for prod in st.get("products") or []:
            pid = prod.get("@id") if isinstance(prod, dict) else prod
            if isinstance(pid, str):
                purls.append(pid)
            for sub in (prod.get("subcomponents") or []) if isinstance(prod, dict) else []:
                if isinstance(sub, dict) and isinstance(sub.get("@id"), str):
                    purls.append(sub["@id"])
        no = next((i + 1 for i, ln in enumerate(lines) if vid and f'"{vid}"' in ln), None)
        reason = st.get("impact_statement") or st.get("justification") or st.get("status_notes")
        ok = status == "not_affected"
        entries.append(Entry(no, "vulnerabilities", vid, None, None, None, reason, [], purls, ok,
                             None if ok else f"status {status!r}: only not_affected suppresses"))
    return entries


def parse_exception_file(name: str, text: str) -> tuple[str, list[Entry]]:
    """-> (format, entries). Raises FileRejected for a file Trivy refuses as a whole."""
    lower = name.lower()
    if lower.endswith(".json"):  # OpenVEX (*.openvex.json and the like)
        return "openvex", parse_openvex(text)
    if lower.endswith((".yaml", ".yml")):
        return "trivyignore-yaml", parse_trivyignore_yaml(text)
    return "trivyignore", parse_trivyignore(text)
