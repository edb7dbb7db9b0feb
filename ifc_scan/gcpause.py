"""Python's cyclic garbage collector paused while a stage builds many long-lived objects.

A stage that loads every scan's metadata (125,000 Scan objects at three years of 100 images) makes the
collector's full passes, triggered by allocation counts, walk an ever larger heap again and again: at three
years that was 3 of the 7 seconds the weekly stage took to load (measured with gc disabled in the same
process). Those objects are freed by reference counting; what the pause leaves for later is only cycles,
collected when the collector is enabled again.
"""

from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def cyclic_gc_paused(freeze: bool = False):
    """Disable the cyclic collector for the block (re-enabled after it, if it was enabled before).
    freeze: what the block built lives as long as the process's stage: moved out of the collector's
    passes (gc.freeze) rather than walked by every later full pass (the weekly stage's computations)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if freeze:
            gc.freeze()
        if was_enabled:
            gc.enable()
