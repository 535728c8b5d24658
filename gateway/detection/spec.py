"""What a policy asks the detectors for, in a form workers can cache.

`DetectionSpec` crosses the process boundary with every request, so it is a
frozen, hashable value: workers key their compiled detectors on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.detection.company import CompanySpec


@dataclass(frozen=True)
class PatternSpec:
    """A policy's custom regex recognizer (compiled in the worker as a `CustomPattern`)."""

    name: str
    entity_type: str
    regex: str
    score: float = 0.6
    validator: str | None = None
    context: tuple[str, ...] = ()
    flags: int = 0


@dataclass(frozen=True)
class DetectionSpec:
    """Entity types, threshold, custom recognizers and allow-lists of one policy."""

    entities: frozenset[str]
    min_score: float = 0.5
    extra: tuple = field(default=())
    recognizers: tuple[PatternSpec, ...] = ()
    allow: tuple[str, ...] = ()
    allow_regex: tuple[str, ...] = ()
    company: CompanySpec | None = None

    @property
    def digest(self) -> str:
        """Stable across processes (unlike `hash`), for logs and caches."""
        return hashlib.sha256(repr((sorted(self.entities), self.min_score, self.extra, self.recognizers,
                                    self.allow, self.allow_regex, self.company)).encode()).hexdigest()[:16]
