"""Stage timing: which stage ran when, for tracing (`gateway/app/tracing.py`).

The app sets a `StageClock` for the request (a context variable, so nothing is
passed through the stages' signatures); each stage of `protect` runs inside
`stage(name)`. Without a clock (tracing off, the CLI) `stage` costs one lookup.
Attributes are counts, never values.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class StageTime:
    name: str
    start: float          # time.perf_counter()
    end: float = 0.0
    attributes: dict[str, int | str] = field(default_factory=dict)


@dataclass
class StageClock:
    stages: list[StageTime] = field(default_factory=list)


CLOCK: ContextVar[StageClock | None] = ContextVar("vendorgate_stage_clock", default=None)
_NOWHERE: dict = {}


@contextmanager
def stage(name: str) -> Iterator[dict]:
    """`with stage("walk") as attrs: ...; attrs["units"] = n` (attrs is thrown away without a clock)."""
    clock = CLOCK.get()
    if clock is None:
        yield {}
        return
    timed = StageTime(name, time.perf_counter())
    clock.stages.append(timed)
    try:
        yield timed.attributes
    finally:
        timed.end = time.perf_counter()
