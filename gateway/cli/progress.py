"""Progress of long CLI jobs (`fingerprint add`, `report`, `scan`): a rich progress bar on
stderr when stderr is a terminal, nothing at all otherwise (piped, redirected, CI), so a job's
output and logs stay clean. The bar shows counts and file names the operator typed, never a
value from inside the data."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TypeVar

T = TypeVar("T")


class Bar:
    """`advance(n)` and `describe(text)`; both do nothing without a terminal."""

    def __init__(self, progress=None, task=None):
        self._progress, self._task = progress, task

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def describe(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)

    def track(self, items: Iterable[T]) -> Iterator[T]:
        for item in items:
            yield item
            self.advance()


def on_terminal(stream: IO | None = None) -> bool:
    stream = sys.stderr if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress(description: str, total: float | None = None, unit: str = "", stream: IO | None = None) -> Iterator[Bar]:
    """A bar (with `total`) or a spinner with a count (without); transient: it is gone when the job ends."""
    stream = sys.stderr if stream is None else stream
    if not on_terminal(stream):
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    else:
        columns += [TextColumn("{task.completed:.0f}" + (f" {unit}" if unit else ""))]
    columns.append(TimeElapsedColumn())
    # Lines printed to stdout during the job go above the bar when stdout is that terminal too;
    # a redirected stdout is data and is never touched.
    with Progress(*columns, console=Console(file=stream), transient=True, redirect_stdout=on_terminal(sys.stdout),
                  redirect_stderr=False) as bar:
        yield Bar(bar, bar.add_task(description, total=total))
