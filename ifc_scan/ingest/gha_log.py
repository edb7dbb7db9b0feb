"""GitHub Actions job logs as GitHub writes them, turned into classified lines.

Three layouts reach the landing zone:
- the raw per-job log (API `jobs/{id}/logs`, logs.zip members): `<timestamp> <text>`;
- `gh run view --log` output: `<job>\t<step>\t<timestamp> <text>`, one file for the whole run;
- a copy from the web UI: no timestamps, step headers as bare `Run ...` lines.
Any of them with CRLF or LF endings, with ESC colour codes, with ESC replaced by U+241B (a web-UI
copy) or with ESC stripped (`[36;1m` left behind).

Each line is given the part of the job it belongs to (`role`): the runner's own set-up ("setup",
which also builds Docker container actions and pulls their images), a workflow step ("step"), the
runner's post-job cleanup ("post"), or a group the runner opens for its own work inside the job
("internal": `Build container for action use`). Only "step" lines can carry the project's events.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Iterable, Iterator, NamedTuple

from ifc_scan.timeutil import BadTimestamp, parse_ts

# The runner writes 7 fractional digits; a timestamp without a fraction at the start of a line is the
# tool's own log (trivy's `2026-02-01T00:23:47Z INFO ...`), not the runner's. ASCII digits only (the
# runner writes no others): a line stamped in other digits is text, not a time.
_RAW = re.compile(r"^\ufeff?(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+Z)(?: |$)(.*)$", re.ASCII)
_GH_CLI = re.compile(r"^\ufeff?([^\t]*)\t([^\t]*)\t\ufeff?(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+Z)(?: |$)(.*)$",
                     re.ASCII)
_COLOUR = re.compile(r"(?:\x1b|\u241b)?\[\d{1,3}(?:;\d{1,3})*m")
_STEP_HEADER = re.compile(r"^##\[group\]Run (.+)$")
_SECTION_START = re.compile(r"^##\[section\]Starting: (.+)$")      # the 2019-2021 runner's step marker
_INTERNAL_GROUP = re.compile(r"^##\[group\]Build container for action use: ")
_POST = "Post job cleanup."
# how the runner's own part of a job log begins; a log that begins otherwise (a fragment, a step's
# output saved alone) has no set-up part, and its first lines belong to a step
_RUNNER_START = re.compile(r"^(?:Current runner version|Requested labels|Job defined at|Waiting for a runner|"
                           r"Found online and idle|Job is (?:about to start|waiting)|Runner name|"
                           r"##\[section\]Starting: |##\[group\](?:Operating System|Runner Image|Virtual Environment))")


class LogLine(NamedTuple):
    line_no: int
    time: datetime | None
    text: str                 # without timestamp, layout columns and colour codes
    job: str | None           # the job column of `gh run view --log`; None in a per-job log
    step: str | None          # the step's name as the log gives it ("Run docker build ...", gh's step column)
    section: int              # ordinal of the step within its job's log (0: before the first step)
    role: str                 # setup | step | post | internal


def strip_colour(text: str) -> str:
    return _COLOUR.sub("", text) if "[" in text else text


def _ts(value: str) -> datetime | None:
    try:
        return parse_ts(value)
    except BadTimestamp:
        return None


def _role_of_step_name(name: str) -> str:
    if name == "Set up job" or name.startswith("Set up job"):
        return "setup"
    if name.startswith("Post ") or name == "Complete job":
        return "post"
    return "step"


def classify(lines: Iterable[str], ui_copy: bool | None = None, step_name: str | None = None) -> Iterator[LogLine]:
    """Classify decoded lines (no line ends). ui_copy=None decides from the first lines: a log whose
    first 50 non-blank lines carry no runner timestamp is a web-UI copy, whose step headers are bare
    `Run ...` lines. step_name: the log is one step's file (logs.zip `<job>/<n>_<step>.txt`), so its
    lines belong to that step from the first one."""
    buffered: list[str] = []
    it = iter(lines)
    if ui_copy is None:
        non_blank = 0
        for raw in it:
            buffered.append(raw)
            non_blank += bool(raw.strip())
            if non_blank >= 50:
                break
        ui_copy = not any(_RAW.match(b) or _GH_CLI.match(b) for b in buffered)

    def all_lines():
        yield from buffered
        yield from it

    # per job (gh-cli layout has several jobs in one file): section counter, role, step name
    state: dict = {}
    last_t: datetime | None = None
    for line_no, raw in enumerate(all_lines(), start=1):
        raw = raw.rstrip("\r")
        job = step_col = None
        m = _GH_CLI.match(raw) if "\t" in raw else None
        if m:
            job, step_col, stamp, text = m.group(1), m.group(2), m.group(3), m.group(4)
            last_t = _ts(stamp)
        else:
            m = _RAW.match(raw)
            if m:
                last_t = _ts(m.group(1))
                text = m.group(2)
            else:
                text = raw.lstrip("\ufeff")      # continuation of a multi-line value: keeps the previous time
        text = strip_colour(text) if "m" in text else text
        if job not in state:
            if not text.strip():
                yield LogLine(line_no, last_t, text, job, None, 0, "setup")
                continue
            if step_name:
                state[job] = {"section": 1, "role": _role_of_step_name(step_name), "step": step_name}
            elif step_col is not None or _RUNNER_START.match(text):
                state[job] = {"section": 0, "role": "setup", "step": "Set up job"}
            else:
                state[job] = {"section": 0, "role": "step", "step": None}
            state[job].update(group_role=None, gh_step=None)
        st = state[job]
        if step_col is not None:
            # gh names the step on every line: a new name is a new section
            if step_col != st["gh_step"]:
                st["gh_step"] = step_col
                st["section"] += 1 if st["gh_step"] is not None else 0
                st["step"], st["role"] = step_col, _role_of_step_name(step_col)
        else:
            header = (_STEP_HEADER.match(text) or _SECTION_START.match(text)) if text.startswith("##[") else None
            if header is None and ui_copy and text.startswith("Run ") and len(text) > 4:
                header = re.match(r"^Run (.+)$", text)
            if header is not None and header.re is _SECTION_START:
                # the 2019-2021 runner marks every step; its `##[group]Run` lines are then only echoes
                st["section"] += 1
                st["sectioned"] = True
                name = header.group(1).strip()
                st["step"], st["role"] = name, _role_of_step_name(name)
            elif header is not None and st["role"] != "post" and not st.get("sectioned"):
                st["section"] += 1
                st["step"], st["role"] = f"Run {header.group(1).strip()}", "step"
            elif text.startswith(_POST) and not st.get("sectioned"):
                st["section"] += 1
                st["step"], st["role"] = "Post job cleanup", "post"
        role = st["role"]
        if text.startswith("##[group]Build") and _INTERNAL_GROUP.match(text):
            st["group_role"] = "internal"
        if st["group_role"] == "internal":
            role = "internal"
            if text.startswith("##[endgroup]"):
                st["group_role"] = None
        yield LogLine(line_no, last_t, text, job, st["step"], st["section"], role)
