"""The one type every detector returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True)
class Finding:
    """A sensitive span: `text[start:end]` is of `entity_type`.

    Offsets are character offsets into the text the detector was given.
    A finding never carries the matched value itself, so it is safe to log.
    """

    entity_type: str
    start: int
    end: int
    score: float
    recognizer: str
    rule: str | None = None
    explanation: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}
