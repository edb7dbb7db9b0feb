"""Deterministic crash points for the reliability tests (RELIABILITY.md).

IFC_SCAN_FAULT_AT=N: the process kills itself with SIGKILL (a real crash: no cleanup, no flush) at the
N-th fault point it reaches. IFC_SCAN_FAULT_LOG=FILE: the number of points reached so far is written
there, so a clean run tells a test how many points there are. Unset, a fault point costs two lookups.
"""

from __future__ import annotations

import os
import signal

_reached = 0


def fault_point() -> None:
    global _reached
    at, log = os.environ.get("IFC_SCAN_FAULT_AT"), os.environ.get("IFC_SCAN_FAULT_LOG")
    if not at and not log:
        return
    _reached += 1
    if log:
        with open(log, "w") as fh:
            fh.write(str(_reached))
    if at and int(at) == _reached:
        os.kill(os.getpid(), signal.SIGKILL)
