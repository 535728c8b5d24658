"""Garbage collection for a long-running process, set once its start-up is done.

A 1 MB batch makes a few hundred thousand objects that live for the request
(parsed lines, fields, findings). With CPython's default thresholds (700, 10,
10) they trigger full collections that walk the whole heap again and again:
measured on the event-loop process, about a quarter of its CPU on such a
batch. `settle` moves everything alive after start-up (modules, the policy,
the spaCy model in a detection worker) out of the collector's sight
(`gc.freeze`) and collects the young generation less often. Cycles are still
collected; only the bookkeeping per allocation changes.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython's default: 700)


def settle() -> None:
    """Call once, when start-up is done: collect, freeze the survivors, raise the young threshold."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
