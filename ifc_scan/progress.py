"""Progress of a long step as a person reads it: items done of the total, time spent, time left.

One line per update to any log function: `print` to stderr on the command line, `context.log.info` in
Dagster. Lines are throttled (at most one every `every_s` seconds, and the last item always) so a
10,000-file ingest does not print 10,000 lines and a step of one second prints one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable


def short_duration(seconds: float) -> str:
    """'8 s', '2 min 05 s', '1 h 03 min': a person's reading of a wait, never microseconds."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    def __init__(self, what: str, total: int, log: Callable[[str], None], every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.what, self.total, self.log, self.every_s, self.clock = what, total, log, every_s, clock
        self.done = 0
        self.started = clock()
        self._last_line = self.started

    def line(self, item: str = "") -> str:
        spent = self.clock() - self.started
        text = f"{self.what}: {self.done}/{self.total}" + (f" ({item})" if item else "")
        text += f", {short_duration(spent)} spent"
        if 0 < self.done < self.total:
            # the mean time per item so far, times the items left: weeks and files are alike enough
            text += f", about {short_duration(spent / self.done * (self.total - self.done))} left"
        return text

    def advance(self, item: str = "", n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        now = self.clock()
        if self.done == self.total or now - self._last_line >= self.every_s:
            self._last_line = now
            self.log(self.line(item))


@contextlib.contextmanager
def waiting(what: str, log: Callable[[str], None], every_s: float = 15.0):
    """Around one call that reports nothing while it runs (the lifecycle build): a line every `every_s`
    seconds saying it still runs and for how long, then one with the time it took. Its length is not
    known in advance, so no time left is promised."""
    started = time.monotonic()
    stop = threading.Event()

    def beat():
        while not stop.wait(every_s):
            log(f"{what}: still running, {short_duration(time.monotonic() - started)} spent")

    beater = threading.Thread(target=beat, name="progress-heartbeat", daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join()
    log(f"{what}: done in {short_duration(time.monotonic() - started)}")
