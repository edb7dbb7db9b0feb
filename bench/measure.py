"""Wall time and peak memory of one command and every process it starts (ingest's reader processes).

/usr/bin/time and getrusage give the largest single process's peak, which undercounts a command that
runs reader processes beside it. This samples the whole process tree's resident memory (VmRSS from
/proc, summed over the command and its descendants) every 20 ms and keeps the largest sum; it also
keeps the single-process peak that the kernel records, for comparison with older rows. Linux only.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Measured:
    wall_s: float
    peak_mb: int             # the larger of: the process tree's largest sampled RSS sum, single_peak_mb
    single_peak_mb: int      # /usr/bin/time's peak RSS of the command's process (exact)
    returncode: int
    stdout: str
    stderr: str


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    out, stack = [], [root]
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, ()))
    return out


def run_measured(cmd: list[str], cwd: Path | str | None = None, env: dict | None = None) -> Measured:
    started = time.perf_counter()
    proc = subprocess.Popen(["/usr/bin/time", "-f", "%M", *cmd], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], sum(_rss_kb(p) for p in _tree(proc.pid)))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    err, _, last = err.rstrip("\n").rpartition("\n")
    single = int(last) if last.strip().isdigit() else 0
    return Measured(wall, max(peak[0], single) // 1024, single // 1024, proc.returncode, out, err)


def timed(cmd: list[str], log, cwd=None) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one command, its reader processes included; its output goes to
    `log`, and a failure stops the benchmark with the command's last words."""
    r = run_measured(cmd, cwd=cwd)
    log.write_text(r.stdout + r.stderr)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return r.wall_s, r.peak_mb

