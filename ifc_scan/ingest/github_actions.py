"""GitHub Actions run folders: run.json, jobs.json, job logs (per job, per step, or logs.zip).

Outcomes come from jobs.json only (a failed Trivy gate need not print ##[error]); the logs give the
events (build, push, scan, deploy, verify) with their time, image and the file + line as evidence.
"""

from __future__ import annotations

import json
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from ifc_scan.ingest.model import Rejected
from ifc_scan.lineage import lineage_of, looks_like_image_ref
from ifc_scan.timeutil import BadTimestamp, parse_ts

_LOG_TS = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z) ?(.*)$")
MAX_LINE = 64 * 1024          # longer lines (progress bars, a 1 GB single line) are cut, not held
MAX_ZIP_MEMBER = 512 * 1024 * 1024
SCAN_WITH_KEYS = ("image-ref", "scan-ref", "input", "format", "output", "severity", "exit-code",
                  "ignore-unfixed", "vuln-type", "pkg-types", "trivyignores", "scan-type", "scanners")


@lru_cache(maxsize=4)
def load_patterns(extra_path: str | None = None) -> dict:
    cfg = yaml.safe_load(resources.files("ifc_scan.ingest").joinpath("ci_patterns.yaml").read_text())
    extra_path = extra_path or os.environ.get("IFC_SCAN_CI_PATTERNS")
    if extra_path:
        extra = yaml.safe_load(Path(extra_path).read_text()) or {}
        cfg["patterns"] = list(extra.get("patterns") or []) + cfg["patterns"]
        for kind, words in (extra.get("suspects") or {}).items():
            cfg["suspects"].setdefault(kind, []).extend(words)
    compiled = [(p["kind"], p["name"], re.compile(p["regex"])) for p in cfg["patterns"]]
    return {"patterns": compiled, "suspects": cfg["suspects"]}


def to_int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def ts(value):
    try:
        return parse_ts(value)
    except BadTimestamp:
        return None


def sanitize_job_name(name: str) -> str:
    """The name GitHub gives a job's log file: '/' and ':' stripped, cut near 90 bytes."""
    cleaned = re.sub(r"[/:]", "", name or "")
    return cleaned.encode("utf-8")[:90].decode("utf-8", "ignore").strip()


def iter_lines(stream, max_line: int = MAX_LINE):
    """Yield decoded lines from a binary stream, never holding more than max_line bytes of one."""
    buf = b""
    truncated = False
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        buf += chunk
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > max_line:
                    if not truncated:
                        yield buf[:max_line].decode("utf-8", "replace").rstrip("\r")
                    truncated, buf = True, b""
                break
            line, buf = buf[:nl], buf[nl + 1:]
            if not truncated:
                yield line[:max_line].decode("utf-8", "replace").rstrip("\r")
            truncated = False
    if buf and not truncated:
        yield buf[:max_line].decode("utf-8", "replace").rstrip("\r")


@dataclass
class LogFile:
    name: str            # path shown as evidence, relative to the run folder
    opener: object       # () -> binary stream
    job_hint: str | None = None
    step_number: int | None = None


@dataclass
class RunResult:
    run: tuple | None = None
    jobs: list[tuple] = field(default_factory=list)
    steps: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    issues: list[tuple] = field(default_factory=list)     # (run_id, log_file, line_no, reason, text)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (relative file, reason) for ingest_errors


def _load_json(path: Path):
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Rejected(f"{path.name} is not valid JSON: {str(exc)[:200]}") from None


def collect_logs(run_dir: Path, result: RunResult) -> list[LogFile]:
    logs: list[LogFile] = []
    logdir = run_dir / "logs"
    if logdir.is_dir():
        for p in sorted(logdir.rglob("*.txt")):
            if p.is_symlink():
                result.errors.append((str(p.relative_to(run_dir)), "symlink in logs/ not followed"))
                continue
            rel = p.relative_to(logdir)
            m = re.match(r"^(\d+)_(.*)\.txt$", rel.name)
            if len(rel.parts) == 2 and m:
                logs.append(LogFile(str(p.relative_to(run_dir)), lambda p=p: p.open("rb"), rel.parts[0], int(m.group(1))))
            else:
                logs.append(LogFile(str(p.relative_to(run_dir)), lambda p=p: p.open("rb"), m.group(2) if m else rel.stem))
    zpath = run_dir / "logs.zip"
    if zpath.is_file():
        try:
            zf = zipfile.ZipFile(zpath)
            members = zf.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            result.errors.append(("logs.zip", f"not a readable zip archive: {exc}"))
            return logs
        for info in members:
            name = info.filename
            if info.is_dir() or name.startswith("__MACOSX/") or not name.endswith(".txt"):
                continue
            parts = name.replace("\\", "/").split("/")
            if name.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", name):
                result.errors.append(("logs.zip", f"member {name[:200]!r} would escape the run folder: skipped"))
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                result.errors.append(("logs.zip", f"member {name[:200]!r} is a symlink: skipped"))
                continue
            if info.file_size > MAX_ZIP_MEMBER:
                result.errors.append(("logs.zip", f"member {name[:200]!r} is {info.file_size} bytes, over the limit"))
                continue
            m = re.match(r"^(\d+)_(.*)\.txt$", parts[-1])
            opener = (lambda zf=zf, info=info: zf.open(info))
            if len(parts) == 2 and m:
                logs.append(LogFile(f"logs.zip!{name}", opener, parts[0], int(m.group(1))))
            elif len(parts) == 1:
                logs.append(LogFile(f"logs.zip!{name}", opener, m.group(2) if m else parts[0][:-4]))
    return logs


def _match_job(hint: str | None, jobs: list[dict]) -> dict | None:
    if not jobs:
        return None
    if hint is None:
        return jobs[0] if len(jobs) == 1 else None
    h = sanitize_job_name(hint)
    for j in jobs:
        if sanitize_job_name(j.get("name", "")) == h:
            return j
    for j in jobs:
        if sanitize_job_name(j.get("name", "")).startswith(h) or h.startswith(sanitize_job_name(j.get("name", ""))):
            return j
    return jobs[0] if len(jobs) == 1 else None


def _step_at(job: dict | None, t: datetime | None, step_number: int | None) -> dict | None:
    steps = (job or {}).get("steps") or []
    if step_number is not None:
        return next((s for s in steps if to_int(s.get("number")) == step_number), None)
    if t is None:
        return None
    best = None
    t_floor = t.replace(microsecond=0)
    for s in steps:
        start = ts(s.get("started_at"))
        if start is not None and start <= t_floor:
            if best is None or start >= ts(best.get("started_at")):
                best = s
    return best


def parse_trivy_args(args: str) -> dict:
    toks = args.split()
    out: dict = {}
    i, positional = 0, []
    while i < len(toks):
        tok = toks[i]
        key, _, val = tok.partition("=")
        flag = key.lstrip("-")
        takes_value = flag in ("severity", "s", "format", "f", "output", "o", "vuln-type", "pkg-types",
                               "ignorefile", "exit-code", "scanners", "timeout", "cache-dir", "template", "t")
        if tok.startswith("-") and takes_value:
            if not val and i + 1 < len(toks):
                val, i = toks[i + 1], i + 1
            out[{"s": "severity", "f": "format", "o": "output", "pkg-types": "vuln-type", "ignorefile": "trivyignores",
                 "t": "template"}.get(flag, flag)] = val.strip("'\"")
        elif tok.startswith("-"):
            if flag == "ignore-unfixed":
                out["ignore-unfixed"] = "true"
        else:
            positional.append(tok.strip("'\""))
        i += 1
    if positional:
        out["image-ref"] = positional[-1]
    return out


def _bool(v) -> bool | None:
    if v is None:
        return None
    return str(v).strip().lower() in ("true", "1", "yes")


def read_run_folder(run_dir: Path, patterns: dict | None = None) -> RunResult:
    """Parse one ci/github-actions/<run_id>/ folder. Raises Rejected if run.json is unusable."""
    patterns = patterns or load_patterns()
    result = RunResult()
    if not (run_dir / "run.json").is_file():
        raise Rejected("run folder has no run.json")
    run = _load_json(run_dir / "run.json")
    if not isinstance(run, dict) or to_int(run.get("id")) is None:
        raise Rejected("run.json is not a GitHub workflow-run object (no numeric id)")
    run_id = to_int(run["id"])
    if to_int(run_dir.name) not in (None, run_id):
        result.errors.append(("run.json", f"folder is named {run_dir.name} but run.json says run {run_id}"))
    jobs: list[dict] = []
    if (run_dir / "jobs.json").is_file():
        try:
            doc = _load_json(run_dir / "jobs.json")
            cand = doc.get("jobs") if isinstance(doc, dict) else None
            if not isinstance(cand, list):
                raise Rejected("jobs.json has no jobs list")
            wrong = sorted({str(j.get("run_id")) for j in cand if isinstance(j, dict) and to_int(j.get("run_id")) not in (None, run_id)})
            if wrong:
                raise Rejected(f"jobs.json belongs to run {', '.join(wrong)[:80]}, not to run {run_id}: ignored")
            jobs = [j for j in cand if isinstance(j, dict)]
        except Rejected as exc:
            result.errors.append(("jobs.json", str(exc)))
    else:
        result.issues.append((run_id, "jobs.json", None, "no jobs.json: job and step outcomes unknown", None))

    for j in jobs:
        jid = to_int(j.get("id"))
        result.jobs.append((run_id, jid, to_int(j.get("run_attempt")), str(j.get("name"))[:300], j.get("status"),
                            j.get("conclusion"), ts(j.get("started_at")), ts(j.get("completed_at"))))
        for s in j.get("steps") or []:
            if isinstance(s, dict):
                result.steps.append((run_id, jid, to_int(s.get("number")), str(s.get("name"))[:300], s.get("status"),
                                     s.get("conclusion"), ts(s.get("started_at")), ts(s.get("completed_at"))))

    unparsed = 0
    for log in collect_logs(run_dir, result):
        job = _match_job(log.job_hint, jobs)
        unparsed += _scan_log(run_id, log, job, patterns, result)
    result.run = (run_id, to_int(run.get("run_attempt")), str(run.get("name") or "")[:300], run.get("path"),
                  run.get("event"), run.get("head_branch"), run.get("head_sha"), run.get("status"), run.get("conclusion"),
                  ts(run.get("created_at")), ts(run.get("run_started_at")), ts(run.get("updated_at")),
                  run.get("html_url"), str(run_dir), unparsed)
    return result


def _merge_repeated(result: RunResult, log_name: str) -> None:
    """One deploy (or verify) step often names its digest several times (the command echo, the
    command, a notice): keep the earliest line as the event, with the environment any of them gave."""
    merged: dict[tuple, tuple] = {}
    keep = []
    for ev in result.events:
        if ev[18] == log_name and ev[5] in ("deploy", "verify") and ev[9]:
            key = (ev[1], ev[3], ev[5], ev[9])
            if key in merged:
                first = merged[key]
                if first[11] is None and ev[11] is not None:
                    i = keep.index(first)
                    keep[i] = merged[key] = first[:11] + (ev[11],) + first[12:]
                continue
            merged[key] = ev
        keep.append(ev)
    # trivy-action prints "Running Trivy with options: trivy image <ref>": the action's event has the scope
    action_steps = {(ev[1], ev[3]) for ev in keep if ev[18] == log_name and ev[20] == "trivy-action"}
    result.events[:] = [ev for ev in keep if not (ev[18] == log_name and ev[20] == "trivy-cli" and (ev[1], ev[3]) in action_steps)]


def _scan_log(run_id: int, log: LogFile, job: dict | None, patterns: dict, result: RunResult) -> int:
    """Extract events from one log file; return the number of event-like lines not understood."""
    unparsed = 0
    builds: dict[tuple, dict] = {}          # (step number, bk) -> build being assembled
    push_repo: str | None = None
    scan_block: dict | None = None          # trivy-action step whose with: block is being read
    last_t: datetime | None = None
    saw_ts = False
    job_id = to_int((job or {}).get("id"))
    job_name = (job or {}).get("name") or log.job_hint

    def step_of(t):
        return _step_at(job, t, log.step_number)

    def emit(kind, t, step, line_no, pattern, ref=None, digest=None, image_id=None, env=None, scope=None):
        step = step or {}
        conclusion = step.get("conclusion") if step else None
        if kind == "deploy" and not env:
            name = f"{job_name or ''} {step.get('name') or ''}".lower()
            env = next((e for e in ("production", "staging", "development", "dev", "qa", "test")
                        if re.search(rf"\b{e}\b|-{e}\b|{e}-", name)), None)
            env = {"dev": "development"}.get(env, env)
        scope = scope or {}
        result.events.append((
            run_id, job_id, (job_name or "")[:300], to_int(step.get("number")), (step.get("name") or "")[:300] or None,
            kind, t, (ref or "")[:500] or None, lineage_of(ref) if looks_like_image_ref(ref) else None, digest, image_id, env,
            conclusion, scope.get("severity"), _bool(scope.get("ignore-unfixed")), scope.get("vuln-type"),
            scope.get("trivyignores"), scope.get("output"), log.name, line_no, pattern))

    def finish_scan_block():
        nonlocal scan_block
        if scan_block:
            step = scan_block["step"]
            t = ts((step or {}).get("completed_at")) or scan_block["t"]
            ref = scan_block["with"].get("image-ref") or scan_block["with"].get("input")
            emit("scan", t, step, scan_block["line_no"], "trivy-action", ref=ref, scope=scan_block["with"])
            scan_block = None

    with log.opener() as stream:
        for line_no, raw in enumerate(iter_lines(stream), start=1):
            m = _LOG_TS.match(raw)
            if m:
                saw_ts = True
                last_t = ts(m.group(1))
                text = m.group(2)
            else:
                text = raw  # continuation line of a multi-line value: keeps the previous time
            t = last_t
            if scan_block is not None:
                kv = re.match(r"^\s+([\w\-]+):\s*(.*)$", text)
                if kv or text.strip() in ("with:", "env:"):
                    if kv and kv.group(1) in SCAN_WITH_KEYS:   # env: values are TRIVY_* names, not inputs
                        scan_block["with"].setdefault(kv.group(1), kv.group(2).strip())
                    continue
                # the echo of the step's inputs ends at ##[endgroup] or at any other line
                finish_scan_block()
                if text.startswith("##[endgroup]"):
                    continue
            matched_kinds = set()
            for kind, name, rx in patterns["patterns"]:
                pm = rx.search(text)
                if not pm:
                    continue
                g = {k: v for k, v in pm.groupdict().items() if v}
                matched_kinds.add(kind)
                step = step_of(t)
                if name == "trivy-action":
                    scan_block = {"with": {}, "step": step, "t": t, "line_no": line_no}
                elif name == "trivy-cli":
                    args = parse_trivy_args(g.get("args", ""))
                    cstep = step or {}
                    emit("scan", ts(cstep.get("completed_at")) or t, step, line_no, name,
                         ref=args.get("image-ref"), scope=args)
                elif "bk" in g:
                    # BuildKit lines of one step number in one log step are one build; its time and
                    # evidence line are those of its first export (writing image / exporting ...)
                    b = builds.setdefault((to_int((step or {}).get("number")), g["bk"]),
                                          {"t": None, "line_no": None, "step": step})
                    if b["t"] is None and ("image_id" in g or "digest" in g):
                        b["t"], b["line_no"] = t, line_no
                    for k in ("image_id", "digest", "ref"):
                        if k in g:
                            b.setdefault(k, g[k])
                    if name == "buildkit-pushing-manifest":
                        emit("push", t, step, line_no, name, ref=g["ref"], digest=g["digest"])
                elif name == "docker-push-repository":
                    push_repo = g["repo"]
                elif name == "docker-push-digest":
                    if push_repo:
                        emit("push", t, step, line_no, name, ref=f"{push_repo}:{g['tag']}", digest=g["digest"])
                    else:
                        unparsed += 1
                        result.issues.append((run_id, log.name, line_no, "push digest without 'The push refers to repository' line", text[:300]))
                elif kind == "deploy":
                    if "deploy" not in f"{(step or {}).get('name', '')} {job_name or ''}".lower() and name != "deploy-notice":
                        continue
                    emit("deploy", t, step, line_no, name, ref=g.get("ref"), digest=g.get("digest"), env=g.get("env"))
                elif kind == "verify":
                    emit("verify", t, step, line_no, name, ref=g.get("ref"), digest=g.get("digest"))
                break  # one pattern per line
            for kind, words in patterns["suspects"].items():
                if kind not in matched_kinds and any(w in text for w in words):
                    unparsed += 1
                    result.issues.append((run_id, log.name, line_no, f"looks like a {kind} event but matches no pattern",
                                          text[:300]))
                    break
    finish_scan_block()
    for b in sorted(builds.values(), key=lambda b: b["line_no"] or 0):
        if b["line_no"] is None:
            continue  # BuildKit step that exported nothing (a cache export, a test target)
        emit("build", b["t"], b["step"], b["line_no"], "buildkit", ref=b.get("ref"), digest=b.get("digest"),
             image_id=b.get("image_id"))
    _merge_repeated(result, log.name)
    if not saw_ts:
        result.issues.append((run_id, log.name, None, "log lines carry no timestamps: events dated by their step's "
                              "completion (jobs.json) where known", None))
        # without line times, fall back to the step (or job) completion for every event of this file
        fixed = []
        for ev in result.events:
            if ev[18] == log.name and ev[6] is None:
                step = next((s for s in (job or {}).get("steps") or [] if to_int(s.get("number")) == ev[3]), None)
                t = ts((step or {}).get("completed_at")) or ts((job or {}).get("completed_at"))
                ev = ev[:6] + (t,) + ev[7:]
            fixed.append(ev)
        result.events[:] = fixed
    return unparsed

