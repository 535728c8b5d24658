"""A `Unit` is the piece of a body the pipeline handles at a time: one JSON
document, one JSON Lines line, one CSV row, one multipart part. Formats yield
units lazily, so a large batch is never parsed all at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.payload.fields import Field
from gateway.policy.fields import WholeValue


@dataclass
class Unit:
    fields: list[Field]
    # parallel to `fields`: None = scan with the detectors, else the rule's whole-value action
    actions: list[WholeValue | None]
    emit: Callable[[dict[int, str]], bytes]
    altered: bool = False          # changed even without replacements (a field or line dropped)
    blocked: str = ""              # a block rule matched: the rule's label, never the value
    counts: Counter = field(default_factory=Counter)  # rule outcomes for the audit: drop, allow, ...
    passed: dict | list[dict] | None = None  # unscanned parts / media forwarded as is: type, size, sha256
    sink: str = "body"
    drop: Callable[[], bytes] | None = None  # a task of a batch: what to write instead when it is dropped


def literal(data: bytes, sink: str = "body") -> Unit:
    """Framing bytes with nothing to scan (a CSV header, a multipart boundary)."""
    return Unit([], [], lambda r: data, sink=sink)
