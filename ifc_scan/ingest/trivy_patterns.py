"""The two pattern languages of a `.trivyignore.yaml` entry, as Trivy 0.59 applies them.

`paths`: doublestar (v4) globs, validated when the file is read (an invalid one makes Trivy refuse the
whole file) and matched against the result's target and the package path. `purls`: package URLs parsed
as packageurl-go parses them (an invalid one refuses the file); an entry's purl matches a finding's when
type, namespace and name are equal, and its version, qualifiers and subpath where it gives them.
Proven against the real Trivy by ifc_scan_tests/test_trivy_differential.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote as _unquote


class BadPattern(ValueError):
    pass


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def unquote(text: str) -> str:
    """Go's url.PathUnescape: a '%' not followed by two hex digits is an error, not a literal."""
    if _BAD_ESCAPE.search(text):
        raise BadPattern(f"invalid URL escape in {text!r}")
    return _unquote(text)


# --- doublestar globs ----------------------------------------------------------------------------------

def glob_problem(pattern: str) -> str | None:
    """doublestar's ValidatePattern: an unterminated or empty class, an unbalanced brace, a trailing escape."""
    depth, i, n = 0, 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            i += 1
            if i >= n:
                return "ends with an escape"
        elif c == "[":
            i += 1
            if i < n and pattern[i] in "^!":
                i += 1
            if i >= n or pattern[i] == "]":
                return "an empty or unterminated character class"
            while i < n and pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
            if i >= n:
                return "an unterminated character class"
        elif c == "{":
            depth += 1
        elif c == "}":
            if depth == 0:
                return "a '}' without its '{'"
            depth -= 1
        i += 1
    return "an unclosed '{'" if depth else None


def _class(pattern: str, i: int) -> tuple[str, int]:
    """[...] at i -> (regex class, index after it). Validated before, so it terminates."""
    i += 1
    neg = pattern[i] in "^!"
    if neg:
        i += 1
    out = []
    while pattern[i] != "]":
        if pattern[i] == "\\":
            i += 1
        out.append(re.escape(pattern[i]) if pattern[i] != "-" else "-")
        i += 1
    body = "".join(out)
    return (f"[^/{body}]" if neg else f"(?:(?!/)[{body}])"), i + 1


def _split_alternatives(body: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":     # a class may hold ',' '{' '}' as literals
            while i < len(body) and body[i] != "]":
                i += 2 if body[i] == "\\" else 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
        i += 1
    parts.append(body[start:])
    return parts


def _closing_brace(pattern: str, i: int) -> int:
    depth = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "[":
            while pattern[i] != "]":
                i += 2 if pattern[i] == "\\" else 1
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise BadPattern("unclosed brace")


def _glob_to_regex(pattern: str) -> str:
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        at_start = i == 0 or pattern[i - 1] == "/"
        if pattern.startswith("**", i) and at_start and (i + 2 == n or pattern[i + 2] == "/"):
            if i + 2 == n:                       # trailing /**: everything below, and the folder itself
                if out and out[-1] == "/":
                    out[-1] = "(?:/.*)?"
                else:
                    out.append(".*")
                i += 2
            else:                                # **/ : zero or more folders
                out.append("(?:.*/)?")
                i += 3
            continue
        if c == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append("[^/]*")
            continue
        if c == "?":
            out.append("[^/]")
        elif c == "[":
            cls, i = _class(pattern, i)
            out.append(cls)
            continue
        elif c == "{":
            end = _closing_brace(pattern, i)
            alts = [_glob_to_regex(a) for a in _split_alternatives(pattern[i + 1:end])]
            out.append("(?:" + "|".join(alts) + ")")
            i = end + 1
            continue
        elif c == "\\":
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "/":
            out.append("/")
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def compiled_glob(pattern: str) -> re.Pattern:
    problem = glob_problem(pattern)
    if problem:
        raise BadPattern(f"invalid path pattern {pattern!r}: {problem}")
    return re.compile(r"\A" + _glob_to_regex(pattern) + r"\Z", re.S)


def glob_matches(pattern: str, path: str) -> bool:
    return compiled_glob(pattern).match(path) is not None


# --- package URLs --------------------------------------------------------------------------------------

# packageurl-go lowercases the namespace and the name of these types (pypi also turns '_' into '-').
_LOWER_NAMESPACE = {"alpm", "apk", "bitbucket", "composer", "deb", "github", "golang", "npm", "rpm", "qpkg"}
_LOWER_NAME = {"alpm", "apk", "bitbucket", "composer", "deb", "github", "golang", "npm", "pypi"}
_TYPE = re.compile(r"[A-Za-z.+-][A-Za-z0-9.+-]*")


@dataclass(frozen=True)
class Purl:
    type: str
    namespace: str
    name: str
    version: str
    qualifiers: tuple[tuple[str, str], ...]
    subpath: str

    def covers(self, finding: "Purl") -> bool:
        """This entry purl matches the finding's: what the entry gives must be equal."""
        if (self.type, self.namespace, self.name) != (finding.type, finding.namespace, finding.name):
            return False
        if self.version and self.version != finding.version:
            return False
        if self.subpath and self.subpath != finding.subpath:
            return False
        have = dict(finding.qualifiers)
        return all(have.get(k) == v for k, v in self.qualifiers)


@lru_cache(maxsize=4096)
def parse_purl(text: str) -> Purl:
    """packageurl-go's FromString (the checks that decide whether Trivy refuses an ignore file)."""
    if text[:4].lower() != "pkg:":          # Go's url.Parse folds the scheme's case
        raise BadPattern(f"purl {text!r}: scheme is not \"pkg\"")
    rest = text[4:].lstrip("/")
    rest, _, subpath = rest.partition("#")
    rest, _, query = rest.partition("?")
    typ, _, rest = rest.partition("/")
    if not typ or not rest:
        raise BadPattern(f"purl {text!r}: missing type or name")
    if not _TYPE.fullmatch(typ):
        raise BadPattern(f"purl {text!r}: invalid type")
    typ = typ.lower()
    rest = rest.rstrip("/")
    version = ""
    if "@" in rest:
        rest, _, version = rest.rpartition("@")
        version = unquote(version)
    namespace, _, name = rest.rpartition("/")
    name = unquote(name)
    namespace = "/".join(unquote(p) for p in namespace.split("/") if p)
    if not name:
        raise BadPattern(f"purl {text!r}: missing name")
    if typ in _LOWER_NAMESPACE:
        namespace = namespace.lower()
    if typ in _LOWER_NAME:
        name = name.lower()
    if typ == "pypi":
        name = name.replace("_", "-")
    qualifiers = []
    for pair in query.split("&") if query else []:
        key, _eq, value = pair.partition("=")
        if not key:
            raise BadPattern(f"purl {text!r}: invalid qualifier key in {pair!r}")
        if value:
            qualifiers.append((key.lower(), unquote(value)))
    subpath = "/".join(unquote(s) for s in subpath.strip("/").split("/") if s not in ("", ".", ".."))
    return Purl(typ, namespace, name, version, tuple(sorted(qualifiers)), subpath)


def purl_or_none(text: str | None) -> Purl | None:
    """A finding's purl as Trivy holds it; a finding without one (or with one it cannot parse) has none."""
    if not text:
        return None
    try:
        return parse_purl(text)
    except BadPattern:
        return None
