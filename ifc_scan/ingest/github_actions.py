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
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import yaml
from pydantic import ValidationError

from ifc_scan.ingest.gha_events import CiEvent, CiPattern, JobLogReader, LogIssue, StepContext
from ifc_scan.ingest.gha_log import classify
from ifc_scan.ingest.gha_models import JobsList, WorkflowRun, why
from ifc_scan.ingest.model import Rejected
from ifc_scan.ingest.scan_files import undecodable_name
from ifc_scan.timeutil import BadTimestamp, parse_ts
from ifc_scan.yaml_budget import load_user_yaml
from ifc_scan.zip_budget import BoundedZip, ZipBomb

# Bump when the log reader reads differently: the next ingest reads every run folder again.
CI_READER_VERSION = "2"
MAX_LINE = 64 * 1024          # longer lines (progress bars, a 1 GB single line) are cut, not held
LOG_READ_ERRORS = (RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error, EOFError, OSError)
MAX_ZIP_MEMBER = 512 * 1024 * 1024
# A run's logs, decompressed, are read up to these many bytes and lines (logs.zip inflates at most 100:1,
# ifc_scan/zip_budget.py, but 40 MB of it is still 4 GB; reading costs per line, about 17 us): what lies
# beyond is not read, and the run says so; a zip member whose header says it would not fit is not
# opened. Sizes, not seconds, so that the same landing zone always gives the same warehouse whatever
# the machine's speed. A real job's log has thousands to a few hundred thousand lines.
DEFAULT_MAX_RUN_LOG_BYTES = int(float(os.environ.get("IFC_SCAN_MAX_RUN_LOG_MB", "4096")) * 1024 * 1024)
DEFAULT_MAX_RUN_LOG_LINES = int(os.environ.get("IFC_SCAN_MAX_RUN_LOG_LINES", "5000000"))


class LogBudgetExceeded(Exception):
    """The run's log budget is spent: of bytes (lines=False) or of lines. The message says what was not read."""

    def __init__(self, lines: bool, not_read: str | None = None):
        super().__init__(not_read)
        self.lines, self.not_read = lines, not_read


def _compile(rows, source: str) -> list[CiPattern]:
    try:
        return [CiPattern(p["kind"], p["name"], re.compile(p["regex"]), tuple(p.get("needs") or ())) for p in rows]
    except (re.error, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"CI patterns file {source}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]} "
                         "(each row needs kind, name and a valid regex)") from None


@lru_cache(maxsize=4)
def load_patterns(extra_path: str | None = None) -> dict:
    cfg = yaml.safe_load(resources.files("ifc_scan.ingest").joinpath("ci_patterns.yaml").read_text())
    compiled = _compile(cfg["patterns"], "ifc_scan/ingest/ci_patterns.yaml")
    extra_path = extra_path or os.environ.get("IFC_SCAN_CI_PATTERNS")
    if extra_path:
        extra = load_user_yaml(Path(extra_path).read_text(), f"CI patterns file {extra_path}",
                               mapping_hint="a mapping with 'patterns' and 'suspects'")
        compiled = _compile(extra.get("patterns") or [], extra_path) + compiled   # a team's rows are tried first
        for kind, words in (extra.get("suspects") or {}).items():
            cfg["suspects"].setdefault(kind, []).extend(words)
    words = sorted({n for p in compiled for n in p.needs} | {w for ws in cfg["suspects"].values() for w in ws},
                   key=len, reverse=True)
    # a keyword found also stands for the keywords inside it (the scan finds the longest one at a place)
    within = {w: frozenset(v for v in words if v in w) for w in words}
    return {"patterns": compiled, "suspects": cfg["suspects"], "within": within,
            "keywords": re.compile("|".join(map(re.escape, words)))}


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


def iter_lines(stream, max_line: int = MAX_LINE, budget: list | None = None):
    """Yield decoded lines from a binary stream, never holding more than max_line bytes of one.
    budget: [bytes left, lines left] shared by the logs of one run; LogBudgetExceeded once one is spent.
    Lines are cut out of each chunk by position: taking each off the front of the chunk instead copies
    the rest of the chunk per line (1 MB of 31-byte lines: 33,000 copies of half a megabyte)."""
    rest = b""              # the unfinished line carried into the next chunk (at most max_line bytes)
    truncated = False       # the line being read was cut at max_line: the rest of it is skipped
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        if budget is not None:
            budget[0] -= len(chunk)
            if budget[0] < 0:
                raise LogBudgetExceeded(lines=False)
        buf = rest + chunk if rest else chunk
        start = 0
        while (nl := buf.find(b"\n", start)) >= 0:
            if budget is not None:
                budget[1] -= 1
                if budget[1] < 0:
                    raise LogBudgetExceeded(lines=True)
            if not truncated:
                yield buf[start:min(nl, start + max_line)].decode("utf-8", "replace").rstrip("\r")
            truncated, start = False, nl + 1
        rest = buf[start:]
        if len(rest) > max_line:
            if not truncated:
                yield rest[:max_line].decode("utf-8", "replace").rstrip("\r")
            truncated, rest = True, b""
    if rest and not truncated:
        yield rest[:max_line].decode("utf-8", "replace").rstrip("\r")


@dataclass
class LogFile:
    name: str            # path shown as evidence, relative to the run folder
    opener: object       # () -> binary stream
    job_hint: str | None = None
    step_number: int | None = None
    size: int | None = None   # a zip member's inflated size as its header says: checked against the budget unopened


@dataclass
class RunResult:
    run: tuple | None = None
    jobs: list[tuple] = field(default_factory=list)
    steps: list[tuple] = field(default_factory=list)
    events: list[CiEvent] = field(default_factory=list)
    issues: list[LogIssue] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (relative file, reason) for ingest_errors


def _load_json(path: Path):
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Rejected(f"{path.name} is not valid JSON: {str(exc)[:200]}") from None


# `<n>_<step name>.txt`: one step's log; ASCII digits only, as int() would read '٣' as 3
_STEP_FILE = re.compile(r"^(\d+)_(.*)\.(?:txt|log)$", re.ASCII)


def collect_logs(run_dir: Path, result: RunResult) -> list[LogFile]:
    logs: list[LogFile] = []
    logdir = run_dir / "logs"
    if logdir.is_dir():
        for p in sorted([*logdir.rglob("*.txt"), *logdir.rglob("*.log")]):
            if undecodable_name(str(p.relative_to(run_dir))) is not None:
                continue      # not read: ingest's discovery records it, rejected under its escaped name
            if p.is_symlink():
                result.errors.append((str(p.relative_to(run_dir)), "symlink in logs/ not followed"))
                continue
            rel = p.relative_to(logdir)
            m = _STEP_FILE.match(rel.name)
            if len(rel.parts) == 2 and m:
                logs.append(LogFile(str(p.relative_to(run_dir)), lambda p=p: p.open("rb"), rel.parts[0], int(m.group(1))))
            else:
                logs.append(LogFile(str(p.relative_to(run_dir)), lambda p=p: p.open("rb"), m.group(2) if m else rel.stem))
    zpath = run_dir / "logs.zip"
    if zpath.is_file():
        try:
            archive = BoundedZip(zpath, "logs.zip")
            members = archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:   # ValueError: a member name flagged UTF-8 that is not
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
            bomb = archive.refusal(info)
            if bomb:
                result.errors.append(("logs.zip", bomb))
                continue
            m = _STEP_FILE.match(parts[-1])
            opener = (lambda info=info: archive.open(info))
            if len(parts) == 2 and m:
                logs.append(LogFile(f"logs.zip!{name}", opener, parts[0], int(m.group(1)), info.file_size))
            elif len(parts) == 1:
                logs.append(LogFile(f"logs.zip!{name}", opener, m.group(2) if m else parts[0][:-4], size=info.file_size))
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


def read_run_folder(run_dir: Path, patterns: dict | None = None, max_log_bytes: int = DEFAULT_MAX_RUN_LOG_BYTES,
                    max_log_lines: int = DEFAULT_MAX_RUN_LOG_LINES) -> RunResult:
    """Parse one ci/github-actions/<run_id>/ folder. Raises Rejected if run.json is unusable."""
    patterns = patterns or load_patterns()
    result = RunResult()
    if not (run_dir / "run.json").is_file():
        raise Rejected("run folder has no run.json")
    raw_run = _load_json(run_dir / "run.json")
    if not isinstance(raw_run, dict) or raw_run.get("id") is None:
        raise Rejected("run.json is not a GitHub workflow-run object (no numeric id)")
    try:
        run = WorkflowRun.model_validate(raw_run).model_dump()
    except ValidationError as exc:
        raise Rejected(f"run.json is not a GitHub workflow-run object: {why(exc)}") from None
    run_id = run["id"]
    if to_int(run_dir.name) not in (None, run_id):
        result.errors.append(("run.json", f"folder is named {run_dir.name} but run.json says run {run_id}"))
    jobs: list[dict] = []
    if (run_dir / "jobs.json").is_file():
        try:
            doc = _load_json(run_dir / "jobs.json")
            if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list):
                raise Rejected("jobs.json has no jobs list")
            try:
                cand = [j.model_dump() for j in JobsList.model_validate(doc).jobs]
            except ValidationError as exc:
                raise Rejected(f"jobs.json is not a GitHub jobs list: {why(exc)}") from None
            wrong = sorted({str(j["run_id"]) for j in cand if j["run_id"] not in (None, run_id)})
            if wrong:
                raise Rejected(f"jobs.json belongs to run {', '.join(wrong)[:80]}, not to run {run_id}: ignored")
            jobs = cand
        except Rejected as exc:
            result.errors.append(("jobs.json", str(exc)))
    else:
        result.issues.append(LogIssue(run_id, "jobs.json", None, "no jobs.json: job and step outcomes unknown", None))

    for j in jobs:
        jid = j["id"]
        result.jobs.append((run_id, jid, j["run_attempt"], str(j["name"])[:300], j["status"],
                            j["conclusion"], ts(j["started_at"]), ts(j["completed_at"])))
        for s in j["steps"]:
            result.steps.append((run_id, jid, s["number"], str(s["name"])[:300], s["status"],
                                 s["conclusion"], ts(s["started_at"]), ts(s["completed_at"])))

    run_vars = run_variables(run)
    unparsed = 0
    budget = [max_log_bytes, max_log_lines]
    for log in collect_logs(run_dir, result):
        try:
            if log.size is not None and log.size > budget[0]:     # its header alone spends the budget: not opened
                raise LogBudgetExceeded(lines=False, not_read=f"{log.name} ({log.size:,} bytes, more than the "
                                                              f"{max(budget[0], 0):,} left) and the logs after it, not read")
            unparsed += _scan_log(run_id, log, jobs, patterns, run_vars, result, budget)
        except LogBudgetExceeded as exc:
            what = (f"{max_log_lines:,} lines (IFC_SCAN_MAX_RUN_LOG_LINES)" if exc.lines else
                    f"{max_log_bytes:,} bytes decompressed (IFC_SCAN_MAX_RUN_LOG_MB)")
            not_read = exc.not_read or f"{log.name} from the line where the budget ran out, and the logs after it, not read"
            reason = f"the run's logs exceed {what}: {not_read}"
            result.errors.append((log.name.split("!", 1)[0], reason))
            result.issues.append(LogIssue(run_id, log.name, None, reason, None))
            break
        except ZipBomb as exc:            # this member only (the reason names it); the archive's later members
            # are held to what its count has left
            result.errors.append(("logs.zip", str(exc)))
        except LOG_READ_ERRORS as exc:    # this log only (an encrypted or Deflate64 member, a truncated one)
            result.errors.append((log.name.split("!", 1)[0],
                                  f"{log.name}: not read ({type(exc).__name__}: {str(exc)[:200]}); the run's other logs are"))
    result.run = (run_id, run["run_attempt"], (run["name"] or "")[:300], run.get("path"),
                  run.get("event"), run.get("head_branch"), run.get("head_sha"), run.get("status"), run.get("conclusion"),
                  ts(run.get("created_at")), ts(run.get("run_started_at")), ts(run.get("updated_at")),
                  run.get("html_url"), str(run_dir), unparsed)
    return result




class RunRead(NamedTuple):
    """One run folder's reading as a reader process sends it back: status "ok" (result set), "rejected"
    (the folder's fault), "unreadable" (the machine's: read again next time) or "error" (a reader error)."""
    status: str
    reason: str | None
    result: RunResult | None


def read_run_folders(args: list[tuple[str]]) -> list[RunRead]:
    """read_run_folder of several folders (a reader process's task); never raises for a folder."""
    out = []
    for (run_dir,) in args:
        try:
            out.append(RunRead("ok", None, read_run_folder(Path(run_dir), load_patterns())))
        except Rejected as exc:
            out.append(RunRead("rejected", str(exc), None))
        except OSError as exc:
            out.append(RunRead("unreadable", str(exc), None))
        except Exception as exc:      # noqa: BLE001 (this run folder only)
            out.append(RunRead("error", f"{type(exc).__name__}: {str(exc)[:300]}", None))
    return out


def run_variables(run: dict) -> dict:
    """GitHub's default variables a logged command may use unexpanded ($GITHUB_SHA ...), from run.json."""
    repo = run.get("repository") if isinstance(run.get("repository"), dict) else {}
    values = {"GITHUB_SHA": run.get("head_sha"), "GITHUB_REF_NAME": run.get("head_branch"),
              "GITHUB_HEAD_REF": None, "GITHUB_RUN_ID": run.get("id"), "GITHUB_RUN_NUMBER": run.get("run_number"),
              "GITHUB_RUN_ATTEMPT": run.get("run_attempt"), "GITHUB_REPOSITORY": repo.get("full_name"),
              "GITHUB_REPOSITORY_OWNER": (repo.get("owner") or {}).get("login") if isinstance(repo.get("owner"), dict) else None,
              "GITHUB_EVENT_NAME": run.get("event")}
    if run.get("head_branch"):
        values["GITHUB_REF"] = f"refs/heads/{run['head_branch']}"
    return {k: str(v) for k, v in values.items() if v is not None}


def _scan_log(run_id: int, log: LogFile, jobs: list[dict], patterns: dict, run_vars: dict, result: RunResult,
              budget: list | None = None) -> int:
    """Extract events from one log file; return the number of event-like lines not understood."""
    jobs_by_col: dict = {}

    def job_of(job_col):
        if job_col not in jobs_by_col:
            jobs_by_col[job_col] = _match_job(job_col if job_col is not None else log.job_hint, jobs)
        return jobs_by_col[job_col]

    def job_for(job_col):
        job = job_of(job_col)
        return to_int((job or {}).get("id")), (job or {}).get("name") or job_col or log.job_hint

    def step_for(job_col, line) -> StepContext:
        job = job_of(job_col)
        steps = (job or {}).get("steps") or []
        step = None
        if log.step_number is not None:
            step = _step_at(job, None, log.step_number)
        elif job_col is not None:                 # gh run view --log names the step on each line
            step = next((s for s in steps if s.get("name") == line.step), None)
        if step is None and steps and line.time is not None and log.step_number is None:
            step = _step_at(job, line.time, None)
        if step is None:
            # no jobs.json (or no match): the log's own step, numbered in the order the log shows it
            number = log.step_number if log.step_number is not None else line.section + 1
            return StepContext(number, line.step, None, None)
        return StepContext(to_int(step.get("number")), step.get("name"), step.get("conclusion"),
                           ts(step.get("completed_at")))

    reader = JobLogReader(run_id, log.name, patterns, job_for, step_for, run_vars)
    with log.opener() as stream:
        step_file = _STEP_FILE.match(log.name.replace("\\", "/").rsplit("/", 1)[-1])
        step_name = step_file.group(2) if step_file and log.step_number is not None else None
        for line in classify(iter_lines(stream, budget=budget), step_name=step_name):
            reader.feed(line)
    reader.close()
    events = reader.events
    if not reader.saw_time:
        result.issues.append(LogIssue(run_id, log.name, None, "log lines carry no timestamps: events dated by their "
                                      "step's completion (jobs.json) where known", None))
        for i, ev in enumerate(events):
            if ev.time is None:
                job = job_of(None)
                step = next((s for s in (job or {}).get("steps") or [] if to_int(s.get("number")) == ev.step_number), None)
                events[i] = ev._replace(time=ts((step or {}).get("completed_at")) or ts((job or {}).get("completed_at")))
    result.events.extend(sorted(events, key=lambda e: (e.line_no or 0, e.kind)))
    result.issues.extend(reader.issues)
    return reader.unparsed
