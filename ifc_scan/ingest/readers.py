"""Reader processes: parse landing files on the other cores while the ingest process stores rows.

A large ingest (many files, many MB) hands its scan files and CI run folders to processes, one per core,
in tasks of a few MB, and gets the readings back in the order it asked for them, so what it stores,
and in what order, is the same as when it reads everything itself. A process that dies (killed for
memory, say) costs no file: what it had not returned is read in the ingest process.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Callable, Iterator, Sequence

from ifc_scan.progress import Progress

# Worth their start-up (about 0.3 s each) only for a large ingest: below these, files are read here.
PARALLEL_MIN_FILES = int(os.environ.get("IFC_SCAN_PARALLEL_MIN_FILES", "64"))
PARALLEL_MIN_BYTES = int(float(os.environ.get("IFC_SCAN_PARALLEL_MIN_MB", "48")) * 1024 * 1024)
TASK_BYTES = 2 * 1024 * 1024      # a task: consecutive items up to this many bytes ...
TASK_ITEMS = 256                  # ... or this many items


def reader_processes() -> int:
    """IFC_SCAN_READERS, else one per core the process may use (0 or 1: read in the ingest process)."""
    configured = os.environ.get("IFC_SCAN_READERS")
    if configured:
        return max(0, int(configured))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        cores = os.cpu_count() or 1
    return min(cores, 8)


def worth_processes(n_items: int, n_bytes: int) -> bool:
    return reader_processes() >= 2 and n_items >= PARALLEL_MIN_FILES and n_bytes >= PARALLEL_MIN_BYTES


class ReaderPool:
    """`ordered(read_many, items, ...)`: (item, reading) in the items' order. `read_many` is a module-level
    function taking a list of argument tuples and returning one reading per tuple, which never raises
    for an item's content (it returns the failure as the reading). With processes=0 everything is read
    here by the same function."""

    def __init__(self, processes: int, ahead_bytes: int, progress: Callable[[str], None] | None = None):
        self.processes, self.ahead_bytes = processes, ahead_bytes
        self.progress = progress or (lambda msg: None)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the ingest process holds DuckDB's threads, whose locks a fork would copy
            self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=get_context("spawn"))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ordered(self, read_many: Callable, items: Sequence, args: Callable, size: Callable[[object], int],
                what: str) -> Iterator[tuple[object, object]]:
        tick = Progress(f"ingest: {what} read", len(items), self.progress)
        if self.processes < 2 or not items:
            for it in items:
                yield it, read_many([args(it)])[0]
                tick.advance()
            return
        tasks, task, task_bytes = [], [], 0
        for it in items:
            task.append(it)
            task_bytes += size(it)
            if task_bytes >= TASK_BYTES or len(task) >= TASK_ITEMS:
                tasks.append((task, task_bytes))
                task, task_bytes = [], 0
        if task:
            tasks.append((task, task_bytes))
        self.progress(f"ingest: {len(items)} {what} to read, parsed by {self.processes} reader processes")
        done = 0
        try:
            pool = self._executor()
            # read ahead up to ahead_bytes of input, so the readers keep parsing while a batch is stored
            window: deque = deque()
            ahead = 0
            pending = iter(tasks)
            nxt = next(pending, None)
            while window or nxt is not None:
                while nxt is not None and (len(window) < 2 * self.processes or ahead + nxt[1] <= self.ahead_bytes):
                    window.append((nxt, pool.submit(read_many, [args(it) for it in nxt[0]])))
                    ahead += nxt[1]
                    nxt = next(pending, None)
                (task, task_bytes), fut = window.popleft()
                readings = fut.result()
                ahead -= task_bytes
                for it, reading in zip(task, readings):
                    done += 1
                    yield it, reading
                    tick.advance()
        except BrokenProcessPool as exc:
            self.progress(f"ingest: a reader process stopped ({exc}); reading the remaining {len(items) - done} "
                          f"{what} in this process")
            broken, self._pool = self._pool, None
            if broken is not None:
                broken.shutdown(wait=False, cancel_futures=True)
            self.processes = 0        # the rest of this ingest reads here
            for it in items[done:]:
                yield it, read_many([args(it)])[0]
                tick.advance()
