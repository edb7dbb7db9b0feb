"""Exception files exactly as Trivy 0.59 reads them: `.trivyignore`, `.trivyignore.yaml`, and OpenVEX.

One reader for the gate, `exceptions lint` and `prune`, ingest of snapshots and change records, the
weekly KPIs and `verify`. It reads bytes, not text, because Trivy does:
- `.trivyignore`: Go's bufio.Scanner splits lines at LF only (one CR before it dropped); a line of
  64 KiB or more ends the reading there (the entries after it are never read); strings.TrimSpace and
  strings.Fields split on Go's whitespace (unicode.IsSpace: not the separators 0x1C-0x1F, which Python
  calls blanks); a line starting with '#' is a comment; the first field is the ID; the first field
  starting with `exp:` is the expiry (time.Parse "2006-01-02", ASCII digits); a bad expiry drops the
  line. A BOM is part of the first ID.
- `.trivyignore.yaml` (Go's filepath.Ext is `.yaml` or `.yml`, case-sensitive): the first YAML
  document decoded as yaml.v3 decodes it into Trivy's struct: duplicate keys in any mapping it decodes
  refuse the file, merge keys apply (explicit keys win, earlier merges win), unknown keys are ignored,
  a wrong shape refuses the file, `expired_at` is a YAML timestamp or a strict RFC 3339 string, and an
  invalid glob or purl in any section refuses the file. A file Trivy refuses raises FileRejected.
Where Trivy's reading differs from what a person sees (a hidden separator, a control character, a
second `exp:`, a line past the scanner's limit, a merge key carrying the expiry), the entry carries a
`deception` that lint reports at file:line. Proven against the real Trivy binary by
ifc_scan_tests/test_trivy_differential.py.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

import yaml
from yaml.composer import Composer
from yaml.resolver import BaseResolver

from ifc_scan.ingest.go_time import GoTimeError, parse_exp_field, parse_rfc3339, yaml_timestamp
from ifc_scan.ingest.trivy_patterns import BadPattern, compiled_glob, parse_purl
from ifc_scan.timeutil import BadTimestamp, day_start, parse_date
from ifc_scan.yaml_budget import yaml_budget_problem

READER_VERSION = "2"                # stored in the warehouse: a new reading re-reads every exception file
TRIVY_VERSION = "0.59.1"            # the Trivy whose reading this is (and the differential tests' oracle)
SCANNER_MAX_LINE = 64 * 1024        # bufio.MaxScanTokenSize
YAML_SECTIONS = ("vulnerabilities", "misconfigurations", "secrets", "licenses")
_FINDING_FIELDS = ("id", "paths", "purls", "expired_at", "statement")
# unicode.IsSpace: what Go's TrimSpace and Fields split on
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
           "\u2028\u2029\u202f\u205f\u3000"
_GO_FIELDS = re.compile(f"[^{re.escape(GO_SPACE)}]+")
# what an editor or a pull-request diff shows as a line break inside what Trivy reads as one line
_VISUAL_BREAKS = re.compile("[\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_DECLARED_EXPIRY = re.compile(r"(?:Expiry|Expires|Expiration)\s*:?\s*([0-9]{4}-[0-9]{2}-[0-9]{2})", re.I | re.A)


@dataclass
class Entry:
    line_no: int | None
    section: str
    vuln_id: str | None
    expiry: datetime | None        # what Trivy enforces (exp: / expired_at), naive UTC
    expiry_raw: str | None
    declared_expiry: datetime | None  # a date written only in a comment: shown, not enforced by Trivy
    reason: str | None
    paths: list[str]
    purls: list[str]
    valid: bool
    invalid_reason: str | None = None
    deception: list[str] = field(default_factory=list)   # where Trivy reads this line unlike a person


class FileRejected(Exception):
    """The whole file is refused by Trivy; entries are still returned, all invalid."""

    def __init__(self, reason: str, entries: list[Entry]):
        super().__init__(reason)
        self.entries = entries


@dataclass
class FileNotes:
    """What a reader of the file should know that belongs to no entry (lint reports it)."""
    problems: list[tuple[int | None, str]] = field(default_factory=list)   # (line, message)


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


def as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data


def decode(data: bytes) -> str:
    """Bytes -> str keeping every byte: an invalid byte becomes a lone surrogate, which no real ID equals."""
    return data.decode("utf-8", "surrogateescape")


# --- .trivyignore --------------------------------------------------------------------------------------

def scanner_lines(data: bytes) -> tuple[list[tuple[int, int, bytes]], int | None]:
    """Go's bufio.Scanner with ScanLines: [(line number, byte offset, line without its LF or one CR
    before it)], and the number of the line where the scanner stopped (too long), or None."""
    out, pos, n, no = [], 0, len(data), 0
    while pos < n:
        no += 1
        end = data.find(b"\n", pos, pos + SCANNER_MAX_LINE)
        if end == -1:
            if n - pos >= SCANNER_MAX_LINE:
                return out, no
            token, nxt = data[pos:], n
        else:
            token, nxt = data[pos:end], end + 1
        out.append((no, pos, token[:-1] if token.endswith(b"\r") else token))
        pos = nxt
    return out, None


def go_fields(line: str) -> list[str]:
    return _GO_FIELDS.findall(line)


def _line_deception(raw: str, fields: list[str]) -> list[str]:
    """How this line reads differently to a person than to Trivy."""
    out = []
    if _VISUAL_BREAKS.search(raw):
        out.append("a character that shows as a line break (CR, VT, FF, 0x1C-0x1E, NEL, U+2028/9) is inside "
                   "this line: Trivy reads one entry where a person sees several")
    hidden = sorted({f"U+{ord(c):04X}" if not 0xDC80 <= ord(c) <= 0xDCFF else f"byte 0x{ord(c) - 0xDC00:02X}"
                     for c in raw if c not in "\t " and not _VISUAL_BREAKS.match(c)
                     and (unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Co", "Cn"))})
    if hidden:
        out.append(f"hidden or invalid characters ({', '.join(hidden[:6])}): the ID or expiry Trivy reads "
                   "is not what a person sees")
    exps = [f for f in fields if f.startswith("exp:")]
    if len(exps) > 1:
        out.append(f"{len(exps)} exp: fields: Trivy enforces only the first ({exps[0][4:]})")
    return out


def parse_trivyignore(data: bytes | str) -> tuple[list[Entry], FileNotes]:
    data = as_bytes(data)
    lines, stopped_at = scanner_lines(data)
    entries, notes = [], FileNotes()
    above: str | None = None      # comment block directly above (a blank line breaks it)
    for no, _offset, raw_bytes in lines:
        raw = decode(raw_bytes)
        line = raw.strip(GO_SPACE)
        if not line:
            above = None
            continue
        if line.startswith("#"):
            c = line.lstrip("#").strip(GO_SPACE)
            above = f"{above} {c}".strip() if above else c
            if _VISUAL_BREAKS.search(raw):
                notes.problems.append((no, "a comment line holds a character that shows as a line break: text "
                                           "after it looks like an entry but Trivy reads it as comment"))
            continue
        fields = go_fields(line)
        vuln_id = fields[0]
        expiry, expiry_raw, invalid = None, None, None
        if len(fields) > 1:
            first_exp = next((f for f in fields if f.startswith("exp:")), None)
            if first_exp is not None:
                expiry_raw = first_exp[4:]
                try:
                    expiry = parse_exp_field(expiry_raw)
                except GoTimeError:
                    invalid = f"expiry date {expiry_raw!r} is not YYYY-MM-DD: Trivy drops the whole line"
        rest = line[len(vuln_id):]
        inline = (rest.split("#", 1)[1].strip() or None) if "#" in rest else None
        comment = inline or above
        entries.append(Entry(no, "any", vuln_id, None if invalid else expiry, expiry_raw, _declared(comment),
                             _reason_text(comment), [], [], invalid is None, invalid,
                             _line_deception(raw, fields)))
        above = None
    if stopped_at is not None:
        notes.problems.append((stopped_at, f"line {stopped_at} is {SCANNER_MAX_LINE} bytes or longer: Trivy stops "
                                           "reading the file there and applies no entry from this line on"))
    return entries, notes


# --- .trivyignore.yaml -----------------------------------------------------------------------------------

class _Refused(Exception):
    """yaml.v3 fails to decode the document into Trivy's struct, or Trivy's validation fails."""


try:       # libyaml: the scanner yaml.v3 was ported from (PyYAML's own refuses tabs libyaml accepts)
    from yaml._yaml import CParser as _Parser
except ImportError:                                   # pragma: no cover - PyPI's wheels carry libyaml
    from yaml.parser import Parser as _Parser
    from yaml.reader import Reader as _Reader
    from yaml.scanner import Scanner as _Scanner
else:
    _Reader = _Scanner = object


class _NodeLoader(_Parser, Composer, BaseResolver):
    """Composes a document's nodes from libyaml's events, as yaml.v3 sees them: implicit tags are left
    unresolved (tag "" means none was written), and an anchor defined again replaces the earlier one."""

    def __init__(self, stream: bytes):
        if _Parser.__module__ == "yaml._yaml":
            _Parser.__init__(self, stream)
        else:
            _Reader.__init__(self, stream)
            _Scanner.__init__(self)
            _Parser.__init__(self)
        Composer.__init__(self)
        BaseResolver.__init__(self)

    def resolve(self, kind, value, implicit):
        return ""

    def compose_node(self, parent, index):
        if not self.check_event(yaml.AliasEvent):
            anchor = getattr(self.peek_event(), "anchor", None)
            if anchor is not None:
                self.anchors.pop(anchor, None)
        return Composer.compose_node(self, parent, index)


_NULLS = ("", "~", "null", "Null", "NULL")
_MERGE_TAG, _NULL_TAG = "tag:yaml.org,2002:merge", "tag:yaml.org,2002:null"
_BINARY_TAG, _TIMESTAMP_TAG = "tag:yaml.org,2002:binary", "tag:yaml.org,2002:timestamp"


def _plain(node) -> bool:
    """A plain (unquoted, not block) scalar: libyaml's events give style '', PyYAML's None."""
    return node.style in (None, "")


def _line(node) -> int:
    return node.start_mark.line + 1


def _is_null(node) -> bool:
    if not isinstance(node, yaml.ScalarNode):
        return False
    return node.tag == _NULL_TAG or (node.tag == "" and _plain(node) and node.value in _NULLS)


def _is_merge(node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.value == "<<" and (
        node.tag == _MERGE_TAG or (node.tag == "" and _plain(node)))


def _string(node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise _Refused(f"line {_line(node)}: cannot unmarshal a {node.id} into a string")
    if node.tag == _BINARY_TAG:           # yaml.v3 decodes !!binary into the string field
        try:
            return base64.b64decode("".join(node.value.split()), validate=True).decode("utf-8", "surrogateescape")
        except (binascii.Error, ValueError):
            raise _Refused(f"line {_line(node)}: !!binary value contains invalid base64 data") from None
    return "" if _is_null(node) else node.value


def _strings(node) -> list[str]:
    if _is_null(node):
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise _Refused(f"line {_line(node)}: cannot unmarshal a {node.id} into a list of strings")
    return [_string(item) for item in node.value]


def _time(node) -> datetime | None:
    if _is_null(node):
        return None
    if not isinstance(node, yaml.ScalarNode):
        raise _Refused(f"line {_line(node)}: cannot unmarshal a {node.id} into a time")
    quoted = not _plain(node) or node.tag not in ("", _TIMESTAMP_TAG)     # a tag other than !!timestamp: text
    ts = None if quoted else yaml_timestamp(node.value)
    if ts is not None:
        return ts
    try:
        return parse_rfc3339(node.value)
    except GoTimeError as exc:
        raise _Refused(f"line {_line(node)}: expired_at {node.value!r:.60}: {exc} (Trivy: FATAL parsing time)") from None


def _unique_keys(node) -> None:
    """yaml.v3 refuses a mapping it decodes when two keys are the same (kind and text)."""
    seen: dict[tuple, int] = {}
    for key, _ in node.value:
        k = (key.id, key.value if isinstance(key, yaml.ScalarNode) else "")
        if k in seen:
            raise _Refused(f"line {_line(key)}: mapping key {k[1]!r:.60} already defined at line {seen[k]}")
        seen[k] = _line(key)


def _decode_struct(node, handlers: dict, out: dict, merged: set | None = None, via_merge: int | None = None) -> None:
    """yaml.v3's mappingStruct: known keys decoded, unknown ignored, merge keys applied last with the
    mapping's own keys (and earlier merges) winning. out[name] = (value, line of a merge key or None)."""
    if node is None or _is_null(node):     # an empty stream or a null document: nothing to apply
        return
    if not isinstance(node, yaml.MappingNode):
        raise _Refused(f"line {_line(node)}: cannot unmarshal a {node.id} into a mapping")
    _unique_keys(node)
    merge_node = None
    for key, value in node.value:
        if _is_merge(key):
            merge_node = key, value
            continue
        name = _string(key)
        if merged is not None:
            if name in merged:
                continue
            merged.add(name)
        if name in handlers:
            out[name] = (handlers[name](value), via_merge)
    if merge_node is not None:
        key, value = merge_node
        parent = merged if merged is not None else {_string(k) for k, _ in node.value if not _is_merge(k)}
        sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                raise _Refused(f"line {_line(key)}: map merge requires a map or a sequence of maps")
            _decode_struct(src, handlers, out, parent, via_merge or _line(key))


_FINDING = {"id": _string, "paths": _strings, "purls": _strings, "expired_at": _time, "statement": _string}


def _findings(node) -> list[tuple[int, dict]]:
    """An IgnoreFindings list: [(line of the item, decoded fields)]."""
    if _is_null(node):
        return []
    if not isinstance(node, yaml.SequenceNode):
        raise _Refused(f"line {_line(node)}: cannot unmarshal a {node.id} into a list of findings")
    out = []
    for item in node.value:
        fields: dict = {}
        _decode_struct(item, _FINDING, fields)
        out.append((_line(item), fields))
    return out


_CONFIG = {"filepath": _string, **{s: _findings for s in YAML_SECTIONS}}


def _validate(section: str, line: int, fields: dict) -> None:
    """Trivy's checks after decoding: every path a valid glob, every purl a valid package URL."""
    for p in (fields.get("paths") or ([], None))[0]:
        try:
            compiled_glob(p)
        except BadPattern as exc:
            raise _Refused(f"line {line}: {section}: {exc} (Trivy: invalid path pattern)") from None
    for p in (fields.get("purls") or ([], None))[0]:
        try:
            parse_purl(p)
        except BadPattern as exc:
            raise _Refused(f"line {line}: {section}: {exc} (Trivy: purl error)") from None


_BOM = "\ufeff".encode()


def _inner_bom_stand_in(data: bytes) -> tuple[bytes, str | None]:
    """yaml.v3 skips a BOM only at the start of the stream; elsewhere it is an ordinary character (a key
    `<BOM>vulnerabilities` is an unknown key). libyaml skips one at any line's start, so inner BOMs are
    replaced by a private-use character of the same length that the file does not hold, and put back."""
    head = len(_BOM) if data.startswith(_BOM) else 0
    if _BOM not in data[head:]:
        return data, None
    text = decode(data)
    stand_in = next(chr(c) for c in range(0xE000, 0xF900) if chr(c) not in text)
    return data[:head] + data[head:].replace(_BOM, stand_in.encode()), stand_in


def _put_back(node, stand_in: str, seen: set) -> None:
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        node.value = node.value.replace(stand_in, "\ufeff")
    else:
        for child in (node.value if isinstance(node, yaml.SequenceNode) else [x for kv in node.value for x in kv]):
            _put_back(child, stand_in, seen)


def first_yaml_document(data: bytes):
    """The first document's node tree (yaml.v3's Decoder.Decode reads one), None for an empty stream."""
    data, stand_in = _inner_bom_stand_in(data)
    loader = _NodeLoader(data)
    root = Composer.get_node(loader) if Composer.check_node(loader) else None
    if root is not None and stand_in:
        _put_back(root, stand_in, set())
    return root


def yaml_lines(text: str) -> list[str]:
    """The file's lines as a YAML parser counts them (LF, CR LF, CR, NEL, U+2028, U+2029), with their breaks."""
    return re.findall(r"[^\r\n\x85\u2028\u2029]*(?:\r\n|[\r\n\x85\u2028\u2029]|$)", text)[:-1] or [text]


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


def _yaml_entry(section: str, line: int, fields: dict, lines: list[str]) -> Entry:
    value = {k: v for k, (v, _m) in fields.items()}
    merged = {k: m for k, (_v, m) in fields.items() if m is not None}
    vid = value.get("id") or None
    expiry = value.get("expired_at")
    comment = _yaml_comment_above(lines, line)
    deception = [f"{k} comes from the merge key (<<) at line {m}, not from this entry's own lines"
                 for k, m in sorted(merged.items()) if k in ("id", "expired_at", "paths", "purls")]
    raw_line = lines[line - 1] if 0 < line <= len(lines) else ""
    deception += [d for d in _line_deception(raw_line.rstrip("\r\n\x85\u2028\u2029"), []) if "hidden" in d]
    return Entry(line, section, vid, expiry, None if expiry is None else expiry.isoformat(),
                 _declared(comment) if expiry is None else None,
                 (value.get("statement") or "").strip() or _reason_text(comment),
                 list(value.get("paths") or []), list(value.get("purls") or []), vid is not None,
                 None if vid else "no id: Trivy matches nothing with this entry", deception)


def _entries_of_refused(root, reason: str) -> list[Entry]:
    """The items of a refused file, as far as they can be told apart, all invalid: shown, never applied."""
    out = []
    if not isinstance(root, yaml.MappingNode):
        return out
    for key, seq in root.value:
        if isinstance(key, yaml.ScalarNode) and key.value in YAML_SECTIONS and isinstance(seq, yaml.SequenceNode):
            for item in seq.value:
                ids = [v.value for k, v in (item.value if isinstance(item, yaml.MappingNode) else [])
                       if isinstance(k, yaml.ScalarNode) and k.value == "id" and isinstance(v, yaml.ScalarNode)]
                out.append(Entry(_line(item), key.value, ids[0] if ids else None, None, None, None, None, [], [],
                                 False, reason))
    return out


def parse_trivyignore_yaml(data: bytes | str) -> tuple[list[Entry], FileNotes]:
    data = as_bytes(data)
    text = decode(data)
    notes = FileNotes()
    problem = yaml_budget_problem(text)
    if problem:
        raise FileRejected(problem, [])
    root = None
    try:
        root = first_yaml_document(data)
        config: dict = {}
        _decode_struct(root, _CONFIG, config)
        sections = {s: config[s][0] for s in YAML_SECTIONS if s in config}
        for section, items in sections.items():
            for line, fields in items:
                _validate(section, line, fields)
    except yaml.YAMLError as exc:
        raise FileRejected(f"not valid YAML: {str(exc).splitlines()[0][:200]}", []) from None
    except _Refused as exc:
        reason = f"{exc}: Trivy refuses the whole file"
        raise FileRejected(reason, _entries_of_refused(root, f"file refused by Trivy: {reason}")) from None
    lines = yaml_lines(text)
    if len(re.findall(r"^---", text, re.M)) > 1 or re.search(r"^(?:---|\.\.\.)\s*\S", text, re.M):
        notes.problems.append((None, "more than one YAML document: Trivy reads only the first"))
    entries = [_yaml_entry(section, line, fields, lines)
               for section, items in sections.items() for line, fields in items]
    return entries, notes


# --- OpenVEX ---------------------------------------------------------------------------------------------

def parse_openvex(data: bytes | str) -> list[Entry]:
    try:
        text = as_bytes(data).decode("utf-8")
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
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


def exception_format(name: str) -> str:
    """Trivy picks the YAML reader by Go's filepath.Ext, case-sensitively; ifc_scan's landing zone names
    OpenVEX files *.json (Trivy takes them with --vex, not --ignorefile)."""
    if name.lower().endswith(".json"):
        return "openvex"
    if name.endswith((".yaml", ".yml")):
        return "trivyignore-yaml"
    return "trivyignore"


def read_exception_file(name: str, data: bytes | str) -> tuple[str, list[Entry], FileNotes]:
    """-> (format, entries, notes). Raises FileRejected for a file Trivy refuses as a whole."""
    fmt = exception_format(name)
    if fmt == "openvex":
        return fmt, parse_openvex(data), FileNotes()
    if fmt == "trivyignore-yaml":
        return (fmt, *parse_trivyignore_yaml(data))
    return (fmt, *parse_trivyignore(data))


def parse_exception_file(name: str, data: bytes | str) -> tuple[str, list[Entry]]:
    """-> (format, entries). Raises FileRejected for a file Trivy refuses as a whole."""
    fmt, entries, _notes = read_exception_file(name, data)
    return fmt, entries
