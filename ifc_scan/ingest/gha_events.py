"""CI events from one GitHub Actions job log: builds, pushes, scans, deploys and verifications.

The log is read step by step (ifc_scan.ingest.gha_log gives each line its step and role). Within a
step, evidence that belongs together is assembled before an event is emitted: a BuildKit build's
export lines, build-push-action's `--tag`, ImageID, Digest and Metadata groups, the legacy builder's
`Successfully built/tagged`, a `docker push`'s repository line and its digest or refusal. What a log
cannot say is left empty, never guessed:
- a reference with `***` in it (GitHub masked a secret) is recorded as masked, with no lineage;
- a `$VAR` the log does not resolve (step `env:` echo, GitHub's own variables) stays unresolved;
- lines of the runner's set-up, its action-container builds and post-job cleanup are not the
  project's and yield no event (they are counted per log).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from ifc_scan.ingest.gha_log import LogLine
from ifc_scan.lineage import lineage_of, looks_like_image_ref

MASK = "***"
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_ENV_LINE = re.compile(r"^\s{2,}([\w\-]+):\s*(.*)$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
ENVIRONMENTS = ("production", "staging", "development", "dev", "qa", "test")


class CiEvent(NamedTuple):
    """One row of ci_events (column order = the table's)."""
    run_id: int
    job_id: int | None
    job_name: str | None
    step_number: int | None
    step_name: str | None
    kind: str                      # build | push | scan | deploy | verify
    time: datetime | None
    image_ref: str | None
    lineage: str | None            # None when the reference is masked, unresolved or not an image
    digest: str | None
    image_id: str | None
    environment: str | None
    outcome: str | None            # the step's conclusion from jobs.json: the gate result
    scope_severity: str | None
    scope_ignore_unfixed: bool | None
    scope_vuln_type: str | None
    scope_trivyignores: str | None
    scan_output: str | None
    log_file: str
    line_no: int | None
    pattern: str
    status: str                    # what the log says of the event itself: ok | failed
    masked: bool                   # the reference or digest carries GitHub's *** secret mask
    detail: str | None             # evidence in words: other tags, reported totals, why it failed


class CiPattern(NamedTuple):
    kind: str
    name: str
    regex: re.Pattern
    needs: tuple            # substrings of which a line must contain one for the regex to be tried


class LogIssue(NamedTuple):
    run_id: int
    log_file: str | None
    line_no: int | None
    reason: str
    text: str | None


@dataclass
class StepContext:
    """Where events of one log step are attributed: filled by the run reader."""
    step_number: int | None
    step_name: str | None
    conclusion: str | None
    completed_at: datetime | None


@dataclass
class _Build:
    line_no: int | None = None
    time: datetime | None = None
    refs: list = field(default_factory=list)
    digest: str | None = None
    list_digest: str | None = None
    image_id: str | None = None
    failed: str | None = None
    pattern: str = "buildkit"
    short_id: str | None = None           # the legacy builder's 12-hex image id
    failed_at: tuple = (None, None)       # (line_no, time) of the first error line
    pushed_refs: list = field(default_factory=list)


@dataclass
class _Push:
    repo: str
    line_no: int
    time: datetime | None
    done: bool = False


@dataclass
class _Step:
    key: tuple
    ctx: StepContext
    header: str | None
    env: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    in_header: bool = True
    block: str | None = None              # with: | env: while reading the header echo
    builds: dict = field(default_factory=dict)     # (invocation, bk) -> _Build
    invocation: int = 0
    command_tags: list = field(default_factory=list)
    output_group: str | None = None
    metadata_lines: list = field(default_factory=list)
    bpa: dict = field(default_factory=dict)        # build-push-action ImageID / Digest / Metadata
    legacy: _Build | None = None
    legacy_done: list = field(default_factory=list)
    push: _Push | None = None
    events: list = field(default_factory=list)      # indices into JobLogReader.events, resolved at the step's end
    failed_line: tuple | None = None      # (line_no, text) of a build failure
    deploy_failed: bool = False
    action_scan: dict | None = None       # trivy-action's header: its scan is emitted at the step's end


def parse_trivy_args(args: str) -> dict:
    toks = args.split()
    out: dict = {}
    i, positional = 0, []
    while i < len(toks):
        tok = toks[i]
        if tok in ("|", ">", ">>", "&&", "||", ";", "2>&1"):
            break
        key, _, val = tok.partition("=")
        flag = key.lstrip("-")
        takes_value = flag in ("severity", "s", "format", "f", "output", "o", "vuln-type", "pkg-types",
                               "ignorefile", "exit-code", "scanners", "timeout", "cache-dir", "template", "t",
                               "input", "i", "platform", "skip-dirs", "skip-files", "config", "c")
        if tok.startswith("-") and takes_value:
            if not val and i + 1 < len(toks):
                val, i = toks[i + 1], i + 1
            name = {"s": "severity", "f": "format", "o": "output", "pkg-types": "vuln-type", "ignorefile": "trivyignores",
                    "t": "template", "i": "input"}.get(flag, flag)
            out[name] = val.strip("'\"")
        elif tok.startswith("-"):
            if flag == "ignore-unfixed":
                out["ignore-unfixed"] = "true"
        else:
            positional.append(tok.strip("'\""))
        i += 1
    if positional:
        out["image-ref"] = positional[-1]
    elif "input" in out:
        out["image-ref"] = out["input"]
    return out


def build_tags(args: str) -> list[str]:
    """The --tag/-t values of a docker build command line."""
    out = []
    toks = args.split()
    for i, tok in enumerate(toks):
        if tok in ("-t", "--tag") and i + 1 < len(toks):
            out.append(toks[i + 1].strip("'\""))
        elif tok.startswith("--tag="):
            out.append(tok[6:].strip("'\""))
        elif tok.startswith("-t") and len(tok) > 2 and not tok.startswith("--"):
            out.append(tok[2:].strip("'\""))
    return [t for t in out if t]


def _bool(v) -> bool | None:
    if v is None:
        return None
    return str(v).strip().lower() in ("true", "1", "yes")


def environment_of(job_name: str | None, step_name: str | None) -> str | None:
    """The environment a deploy names when no pattern gave one: a word of the job or step name."""
    name = f"{job_name or ''} {step_name or ''}".lower()
    env = next((e for e in ENVIRONMENTS if re.search(rf"\b{e}\b|-{e}\b|{e}-", name)), None)
    return {"dev": "development"}.get(env, env)


class JobLogReader:
    """Reads one log file (one job, or a `gh run view --log` file of several) into CiEvents."""

    def __init__(self, run_id: int, log_file: str, patterns: dict, job_for, step_for, run_vars: dict):
        self.run_id, self.log_file, self.patterns = run_id, log_file, patterns
        self.job_for = job_for        # job column (or None) -> (job_id, job_name)
        self.step_for = step_for      # (job column, LogLine) -> StepContext
        self.run_vars = run_vars      # GITHUB_SHA, GITHUB_REF_NAME, ... from run.json
        self.events: list[CiEvent] = []
        self.issues: list[LogIssue] = []
        self.unparsed = 0
        self.internal_event_lines = 0
        self.saw_time = False
        self._step: _Step | None = None
        self._last_action_scan: dict = {}      # job -> index in self.events of its last trivy-action scan
        self._last_scan: int | None = None
        self._tables: dict = {}                # scan event index (or "pending": the action's) -> table totals
        self._dropped: set[int] = set()        # indices of events merged into an earlier one
        self._no_needs: list | None = None     # patterns tried on every line (a team's rows without needs)

    # --- input ------------------------------------------------------------------------------------
    def feed(self, line: LogLine) -> None:
        if line.time is not None:
            self.saw_time = True
        if line.role != "step":
            if self._step is not None and self._step.key[0] == line.job:
                self._finish_step()
            if self._looks_like_event(line.text):
                self.internal_event_lines += 1
            return
        key = (line.job, line.section)
        if self._step is None or self._step.key != key:
            self._finish_step()
            self._step = _Step(key, self.step_for(line.job, line), line.step,
                               in_header=line.text.startswith("##[group]"))  # the echo GitHub opens a step with
        self._read(line)

    def close(self) -> None:
        self._finish_step()
        if self._dropped:
            self.events = [e for i, e in enumerate(self.events) if i not in self._dropped]
            self._dropped = set()
        if self.internal_event_lines:
            self.issues.append(LogIssue(self.run_id, self.log_file, None,
                                        f"{self.internal_event_lines} build/push lines of the runner's own set-up or "
                                        "cleanup (container actions, tool images): not the project's images", None))

    # --- helpers ----------------------------------------------------------------------------------
    def _looks_like_event(self, text: str) -> bool:
        return any(w in text for words in self.patterns["suspects"].values() for w in words)

    def _resolve(self, ref: str | None) -> tuple[str | None, bool, str | None]:
        """(reference with $VARs expanded where the log says their value, masked, what stayed unresolved)."""
        if not ref:
            return ref, False, None
        unresolved = []
        masked = MASK in ref

        def sub(m):
            nonlocal masked
            name = m.group(1) or m.group(2)
            value = self._step.env.get(name) if self._step else None
            if value is None:
                value = self.run_vars.get(name)
            if value is None:
                unresolved.append(name)
                return m.group(0)
            if MASK in value:
                masked = True
            return value

        if "$" in ref:
            ref = _VAR.sub(sub, ref)
        return ref, masked, (", ".join(f"${u}" for u in unresolved) or None)

    def _emit(self, kind: str, line_no: int | None, time: datetime | None, pattern: str, ref: str | None = None,
              digest: str | None = None, image_id: str | None = None, env: str | None = None, scope: dict | None = None,
              status: str = "ok", detail: str | None = None, step: _Step | None = None) -> int:
        """Record an event with its reference as the log wrote it; the step's end resolves it (a step's
        env: echo, which names the values of its $VARs, follows the script lines that use them)."""
        step = step or self._step
        ref = ref.strip("'\"") if ref else ref
        ctx = step.ctx
        job_id, job_name = self.job_for(step.key[0])
        masked = False
        if digest and "$" not in digest and (MASK in digest or not _DIGEST.match(digest)):
            masked = MASK in digest
            digest = None                  # a $VAR digest is resolved with the step's env at its end
        if kind == "deploy" and not env:
            env = environment_of(job_name, ctx.step_name)
        scope = scope or {}
        self.events.append(CiEvent(
            self.run_id, job_id, (job_name or "")[:300] or None, ctx.step_number, (ctx.step_name or "")[:300] or None,
            kind, time, (ref or "")[:500] or None, None, digest, image_id, env, ctx.conclusion,
            scope.get("severity"), _bool(scope.get("ignore-unfixed")), scope.get("vuln-type"),
            scope.get("trivyignores"), scope.get("output"), self.log_file, line_no, pattern, status, masked,
            (detail or "")[:1000] or None))
        step.events.append(len(self.events) - 1)
        return len(self.events) - 1

    def _settle(self, idx: int) -> None:
        """Expand the event's $VARs, mark masking, give the lineage when the reference is certain."""
        e = self.events[idx]
        ref, masked, unresolved = self._resolve(e.image_ref)
        masked = masked or e.masked
        digest = e.digest
        if digest and "$" in digest:
            digest, digest_masked, digest_unresolved = self._resolve(digest)
            masked = masked or digest_masked
            unresolved = ", ".join(u for u in (unresolved, digest_unresolved) if u) or None
            if not _DIGEST.match(digest or ""):
                digest = None
        details = [e.detail] if e.detail else []
        for said, note in ((masked, "reference masked by GitHub (***): not matched to a lineage"),
                           (unresolved, f"unresolved variable {unresolved}: not matched to a lineage")):
            if said and note not in (e.detail or ""):
                details.append(note)
        lineage = None
        if ref and not masked and not unresolved and looks_like_image_ref(ref):
            lineage = lineage_of(ref)
        self.events[idx] = e._replace(image_ref=(ref or "")[:500] or None, lineage=lineage, digest=digest, masked=masked,
                                      detail="; ".join(details)[:1000] or None)

    def _step_events(self, kind: str):
        return [self.events[i] for i in self._step.events if self.events[i].kind == kind]

    def _unparsed(self, line: LogLine, reason: str) -> None:
        self.unparsed += 1
        self.issues.append(LogIssue(self.run_id, self.log_file, line.line_no, reason, line.text[:300]))

    # --- one line of a step -----------------------------------------------------------------------
    def _read(self, line: LogLine) -> None:
        st, text = self._step, line.text
        if text.startswith("##[group]Run "):     # (again, in the 2021 format, inside its ##[section])
            st.in_header, st.block = True, None
        if st.in_header:
            if self._read_header(line):
                return
        if st.output_group is not None:
            if self._read_output_group(line):
                return
        matched_kinds = set()
        found = set(self.patterns["keywords"].findall(text)) if text else set()
        if self._no_needs is None:
            self._no_needs = [p for p in self.patterns["patterns"] if not p.needs]
        if found:
            within = self.patterns["within"]
            present = set().union(*(within[w] for w in found))
            candidates = [p for p in self.patterns["patterns"] if not p.needs or not present.isdisjoint(p.needs)]
        else:
            candidates = self._no_needs
        for kind, name, rx, needs in candidates:
            m = rx.search(text)
            if not m:
                continue
            g = {k: v for k, v in m.groupdict().items() if v}
            matched_kinds.add(kind)
            handler = getattr(self, "_on_" + name.replace("-", "_"), None)
            if handler is not None:
                handler(line, g)
            else:
                self._on_team_pattern(line, kind, name, g)
            break  # one pattern per line
        # a step's script echo is the command, not its output: what it did is logged below it
        for kind, words in self.patterns["suspects"].items() if found and not st.in_header else ():
            if kind not in matched_kinds and any(w in text for w in words):
                self._unparsed(line, f"looks like a {kind} event but matches no pattern")
                break

    def _read_header(self, line: LogLine) -> bool:
        """The step's echo: `##[group]Run ...`, script lines, shell:, with:/env: blocks, ##[endgroup].
        Returns True when the line is header-only (inputs and env values are not commands)."""
        st, text = self._step, line.text
        if text.startswith("##[endgroup]"):
            st.in_header, st.block = False, None
            return True
        if text in ("with:", "env:"):
            st.block = text[:-1]
            return True
        kv = _ENV_LINE.match(text)
        if st.block is not None and kv:
            (st.inputs if st.block == "with" else st.env).setdefault(kv.group(1), kv.group(2).strip())
            return True
        if st.block is not None:
            st.block = None
        if text.startswith("shell: "):
            return True
        return False

    def _read_output_group(self, line: LogLine) -> bool:
        st, text = self._step, line.text
        if text.startswith("##[endgroup]"):
            if st.output_group == "Metadata":
                try:
                    doc = json.loads("\n".join(st.metadata_lines))
                except (ValueError, RecursionError):
                    doc = None
                if isinstance(doc, dict):
                    st.bpa["metadata"] = doc
                    st.bpa.setdefault("line_no", line.line_no)
            st.output_group, st.metadata_lines = None, []
            return True
        if st.output_group == "Metadata":
            if len(st.metadata_lines) < 20000:
                st.metadata_lines.append(text)
        elif st.output_group in ("ImageID", "Digest") and _DIGEST.match(text.strip()):
            st.bpa[st.output_group] = text.strip()
            st.bpa.setdefault("line_no", line.line_no)
            st.bpa.setdefault("time", line.time)
        return True

    # --- builds -----------------------------------------------------------------------------------
    def _build(self, g: dict) -> _Build:
        st = self._step
        return st.builds.setdefault((st.invocation, g["bk"]), _Build())

    def _export(self, line: LogLine, g: dict) -> _Build:
        b = self._build(g)
        if b.line_no is None:
            b.line_no, b.time = line.line_no, line.time
        return b

    def _on_buildkit_writing_image(self, line, g):
        b = self._export(line, g)
        b.image_id = b.image_id or g["image_id"]

    _on_buildkit_exporting_config = _on_buildkit_writing_image

    def _on_buildkit_exporting_manifest_list(self, line, g):
        self._export(line, g).list_digest = g["digest"]

    def _on_buildkit_exporting_manifest(self, line, g):
        b = self._export(line, g)
        b.digest = b.digest or g["digest"]

    def _on_buildkit_naming(self, line, g):
        b = self._export(line, g)
        if g["ref"] not in b.refs:
            b.refs.append(g["ref"])

    def _on_buildkit_step_error(self, line, g):
        b = self._build(g)
        if b.failed is None:
            b.failed, b.failed_at = line.text[:300], (line.line_no, line.time)
        self._step.failed_line = self._step.failed_line or (line.line_no, line.text[:300])

    def _on_build_failed(self, line, g):
        self._step.failed_line = self._step.failed_line or (line.line_no, line.text[:300])
        if self._step.legacy is not None:
            self._step.legacy.failed = line.text[:300]

    def _on_build_command(self, line, g):
        for t in build_tags(g.get("args", "")):
            if t not in self._step.command_tags:
                self._step.command_tags.append(t)
        if line.text.startswith(("[command]", "##[command]")):
            self._step.invocation += 1

    def _on_build_push_action_output(self, line, g):
        self._step.output_group = g["group"]

    def _on_legacy_step(self, line, g):
        st = self._step
        if st.legacy is None:
            st.legacy = _Build(pattern="legacy-builder")
            st.legacy.line_no, st.legacy.time = line.line_no, line.time

    def _on_legacy_built(self, line, g):
        st = self._step
        b = st.legacy or _Build(pattern="legacy-builder")
        b.line_no, b.time = line.line_no, line.time
        b.image_id = g["image_id"] if len(g["image_id"]) == 64 else None
        b.short_id = g["image_id"]
        st.legacy_done.append(b)
        st.legacy = None

    def _on_legacy_tagged(self, line, g):
        st = self._step
        if st.legacy_done and g["ref"] not in st.legacy_done[-1].refs:
            st.legacy_done[-1].refs.append(g["ref"])

    def _on_legacy_failed(self, line, g):
        st = self._step
        st.failed_line = st.failed_line or (line.line_no, line.text[:300])
        if st.legacy is not None:
            st.legacy.failed = line.text[:300]

    # --- pushes -----------------------------------------------------------------------------------
    def _on_buildkit_pushing_manifest(self, line, g):
        ref, digest = g["ref"], g["digest"]
        b = self._build(g)             # names the build when neither `naming to` nor the command's --tag did
        if ref not in b.pushed_refs:
            b.pushed_refs.append(ref)
        if any(e.image_ref == ref and e.digest == digest for e in self._step_events("push")):
            return                                  # the same line again with " 0.5s done"
        self._emit("push", line.line_no, line.time, "buildkit-pushing-manifest", ref=ref, digest=digest)

    def _on_buildkit_push_failed(self, line, g):
        if any(e.status == "failed" and e.image_ref == g.get("ref") for e in self._step_events("push")):
            return                                  # BuildKit's line and build-push-action's ##[error] echo
        self._emit("push", line.line_no, line.time, "buildkit-push-failed", ref=g.get("ref"), status="failed",
                   detail=line.text[:300])

    def _on_docker_push_repository(self, line, g):
        self._close_push(line)
        self._step.push = _Push(g["repo"], line.line_no, line.time)

    def _on_docker_push_digest(self, line, g):
        p = self._step.push
        if p is None:
            self._unparsed(line, "push digest without 'The push refers to repository' line")
            return
        p.done = True
        self._emit("push", line.line_no, line.time, "docker-push-digest", ref=f"{p.repo}:{g['tag']}", digest=g["digest"])

    def _on_docker_push_refused(self, line, g):
        p = self._step.push
        if p is not None and not p.done:
            self._emit("push", line.line_no, line.time, "docker-push-refused", ref=p.repo, status="failed",
                       detail=line.text[:300])
            p.done = True

    def _close_push(self, line: LogLine | None) -> None:
        p = self._step.push
        if p is not None and not p.done:
            self._emit("push", p.line_no, p.time, "docker-push-repository", ref=p.repo, status="failed",
                       detail="the push printed no digest")
        self._step.push = None

    # --- scans ------------------------------------------------------------------------------------
    def _action_scan(self, line, g, name):
        st = self._step
        st.action_scan = {"line_no": line.line_no, "time": line.time, "name": name, "version": g.get("version")}

    def _on_trivy_action(self, line, g):
        self._action_scan(line, g, "trivy-action")

    _on_trivy_action_ui = _on_trivy_action

    def _on_setup_trivy(self, line, g):
        pass                                        # installs trivy; the scan is the command that follows

    def _on_trivy_action_options(self, line, g):
        st = self._step
        args = parse_trivy_args(g.get("args", ""))
        if st.action_scan is not None:      # the action's own step: its scan, emitted at the end
            if args.get("image-ref"):
                st.inputs.setdefault("image-ref", args["image-ref"])
            return
        idx = self._last_action_scan.get(st.key[0])
        if idx is None:
            self._on_trivy_cli(line, g, pattern="trivy-action-options")
            return
        ev = self.events[idx]
        if ev.image_ref is None and args.get("image-ref"):
            self.events[idx] = ev._replace(image_ref=args["image-ref"][:500])
            self._settle(idx)

    def _on_trivy_cli(self, line, g, pattern="trivy-cli"):
        st = self._step
        args = parse_trivy_args(g.get("args", ""))
        ref = args.get("image-ref")
        if any(e.image_ref == ref for e in self._step_events("scan")):
            return                                  # the header, the echoed script line and [command] of one scan
        t = st.ctx.completed_at or line.time
        self._last_scan = self._emit("scan", line.line_no, t, pattern, ref=ref, scope=args)

    def _on_trivy_table_total(self, line, g):
        """Trivy's table prints `Total: n (HIGH: a, CRITICAL: b)` per target: kept, summed, with the scan."""
        idx = self._last_scan if self._step.action_scan is None else "pending"
        if idx is None:
            return
        tally = self._tables.setdefault(idx, {"targets": 0, "total": 0, "counts": {}})
        tally["targets"] += 1
        tally["total"] += int(g["total"])
        for sev, n in re.findall(r"([A-Z]+): (\d+)", g["counts"]):
            tally["counts"][sev] = tally["counts"].get(sev, 0) + int(n)
        if idx != "pending":
            self._note_table(idx)

    def _note_table(self, idx: int, tally: dict | None = None) -> None:
        tally = tally or self._tables[idx]
        counts = ", ".join(f"{k}: {v}" for k, v in tally["counts"].items())
        note = f"trivy table: {tally['total']} in {tally['targets']} target(s) ({counts})"
        ev = self.events[idx]
        kept = [d for d in (ev.detail or "").split("; ") if d and not d.startswith("trivy table:")]
        self.events[idx] = ev._replace(detail="; ".join(kept + [note])[:1000])

    # --- deploys and verifications ----------------------------------------------------------------
    def _deploy(self, line, g, name):
        st = self._step
        ref, digest = g.get("ref"), g.get("digest")
        for i in st.events:
            e = self.events[i]
            if e.kind == "deploy" and (e.image_ref, e.digest) == (ref, digest):
                if g.get("env") and e.environment != g["env"]:
                    self.events[i] = e._replace(environment=g["env"])
                return
        self._emit("deploy", line.line_no, line.time, name, ref=ref, digest=digest, env=g.get("env"))

    def _on_deploy_notice(self, line, g):
        _job_id, job_name = self.job_for(self._step.key[0])
        if "deploy" not in f"{job_name or ''} {self._step.ctx.step_name or ''}".lower():
            self._unparsed(line, "a deploy notice outside a deploy step or job: not counted as a deploy")
            return
        self._deploy(line, g, "deploy-notice")

    def _on_kubectl_set_image(self, line, g):
        self._deploy(line, g, "kubectl-set-image")

    def _on_kubectl_create_image(self, line, g):
        self._deploy(line, g, "kubectl-create-image")

    def _on_kustomize_set_image(self, line, g):
        self._deploy(line, g, "kustomize-set-image")

    def _on_helm_set_image(self, line, g):
        self._deploy(line, g, "helm-set-image")

    def _on_rollout_failed(self, line, g):
        self._step.deploy_failed = True

    def _on_cosign_verify(self, line, g):
        if any(e.digest == g.get("digest") for e in self._step_events("verify")):
            return
        self._emit("verify", line.line_no, line.time, "cosign-verify", ref=g.get("ref"), digest=g.get("digest"))

    def _on_team_pattern(self, line, kind, name, g):
        if kind == "scan":
            self._on_trivy_cli(line, {"args": g.get("args", "")}, pattern=name)
        elif kind == "deploy":
            self._deploy(line, g, name)
        else:
            self._emit(kind, line.line_no, line.time, name, ref=g.get("ref"), digest=g.get("digest"),
                       image_id=g.get("image_id"), env=g.get("env"))

    # --- end of a step: assemble what spans lines ---------------------------------------------------
    def _finish_step(self) -> None:
        st = self._step
        if st is None:
            return
        self._close_push(None)
        action = st.action_scan
        if action is not None:
            ref = st.inputs.get("image-ref") or st.inputs.get("input")
            t = st.ctx.completed_at or action["time"]
            idx = self._emit("scan", action["line_no"], t, action["name"], ref=ref, scope=st.inputs)
            self._last_action_scan[st.key[0]] = idx
            self._last_scan = idx
            if "pending" in self._tables:
                self._tables[idx] = self._tables.pop("pending")
                self._note_table(idx)
        builds = [b for b in st.builds.values() if b.line_no is not None]
        exported = {inv for (inv, _bk), b in st.builds.items() if b.line_no is not None}
        for (inv, _bk), b in st.builds.items():   # a failed invocation is one failed build, not one per #N
            if b.line_no is None and b.failed and inv not in exported:
                b.line_no, b.time = b.failed_at
                builds.append(b)
                exported.add(inv)
        builds += st.legacy_done
        if st.legacy is not None:                  # Step n/m without Successfully built: it failed
            st.legacy.failed = st.legacy.failed or (st.failed_line[1] if st.failed_line else "the build did not finish")
            builds.append(st.legacy)
        meta = st.bpa.get("metadata") or {}
        if st.bpa and not builds:                  # build-push-action whose BuildKit output was not in the log
            builds.append(_Build(line_no=st.bpa.get("line_no"), time=st.bpa.get("time"), pattern="build-push-action"))
        if not builds and st.failed_line and (st.command_tags or st.inputs.get("tags")):
            builds.append(_Build(line_no=st.failed_line[0], pattern="build-failed", failed=st.failed_line[1]))
        for b in builds:
            if st.failed_line and not b.failed and len(builds) == 1 and not (b.digest or b.list_digest or b.image_id):
                b.failed = st.failed_line[1]
        single = len(builds) == 1
        for b in sorted(builds, key=lambda b: b.line_no or 0):
            refs = list(b.refs)
            if single:
                if st.bpa:
                    b.image_id = b.image_id or (meta.get("containerimage.config.digest") or st.bpa.get("ImageID"))
                    b.list_digest = b.list_digest or meta.get("containerimage.digest") or st.bpa.get("Digest")
                if not refs:
                    refs = list(st.command_tags) or [r.strip() for r in str(meta.get("image.name") or "").split(",")
                                                     if r.strip()]
                if not refs and st.inputs.get("tags"):
                    refs = [r.strip() for r in re.split(r"[,\n]", st.inputs["tags"]) if r.strip()]
            refs = refs or list(b.pushed_refs)
            digest = b.list_digest or b.digest
            if b.image_id and digest == b.image_id and b.list_digest is None and b.digest is None:
                digest = None
            detail = []
            if b.short_id and not b.image_id:
                detail.append(f"legacy builder image {b.short_id}")
            if b.failed:
                detail.append(f"failed: {b.failed}")
            status = "failed" if b.failed else "ok"
            # one event per lineage the build named (two tags of one repository are one image)
            by_lineage: dict = {}
            for r in refs or [None]:
                resolved = self._resolve(r)[0]
                key = lineage_of(resolved) if resolved and looks_like_image_ref(resolved) else resolved
                by_lineage.setdefault(key, []).append(r)
            for names in by_lineage.values():
                extra = [f"also tagged {', '.join(names[1:])}"] if len(names) > 1 else []
                self._emit("build", b.line_no, b.time, b.pattern, ref=names[0], digest=digest, image_id=b.image_id,
                           status=status, detail="; ".join(detail + extra) or None, step=st)
        for i in st.events:
            self._settle(i)
        self._merge_repeated(st)
        for i in st.events:
            e = self.events[i]
            if st.deploy_failed and e.kind == "deploy":
                self.events[i] = e._replace(status="failed", detail="; ".join(
                    x for x in (e.detail, "the rollout did not finish") if x))
        self._resolve_deploy_digests(st)
        self._step = None

    def _merge_repeated(self, st: _Step) -> None:
        """A deploy step often names its image several times (the script echo, the command, a notice):
        once its variables are resolved, one (reference, digest) is one deploy, at its first line, with
        the environment any of them named."""
        first: dict = {}
        for i in list(st.events):
            e = self.events[i]
            if e.kind not in ("deploy", "verify"):
                continue
            key = (e.kind, e.image_ref, e.digest)
            if key not in first:
                first[key] = i
                continue
            keep = self.events[first[key]]
            if e.environment and e.environment != keep.environment and e.pattern == "deploy-notice":
                self.events[first[key]] = keep._replace(environment=e.environment)
            st.events.remove(i)
            self._dropped.add(i)

    def _resolve_deploy_digests(self, st: _Step) -> None:
        """A deploy by tag takes the digest this run pushed under the same reference (said in detail)."""
        pushed = {(e.image_ref, e.digest): e.line_no for e in self.events
                  if e.kind == "push" and e.status == "ok" and e.digest and not e.masked}
        by_ref = {}
        for (ref, digest), line_no in pushed.items():
            by_ref.setdefault(ref, set()).add((digest, line_no))
        for i in st.events:
            e = self.events[i]
            if e.kind != "deploy" or e.digest or e.masked or not e.image_ref:
                continue
            cands = by_ref.get(e.image_ref) or by_ref.get(f"docker.io/{e.image_ref}") or set()
            if len({d for d, _ in cands}) == 1:
                digest, line_no = next(iter(cands))
                note = f"digest of the push of {e.image_ref} at line {line_no}"
                self.events[i] = e._replace(digest=digest, detail=f"{e.detail}; {note}" if e.detail else note)
