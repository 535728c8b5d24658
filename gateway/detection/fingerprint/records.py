"""What the fingerprint index hands back: documents and matches."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DocumentInfo:
    """An indexed document. `path` is where it came from (a file path or a caller's label for text)."""

    doc_id: int
    label: str
    path: str
    n_fingerprints: int
    normalised_length: int
    mode: str = "prose"


@dataclass(frozen=True)
class DocumentMatch:
    """How much of one indexed document the outbound text carries, and where.

    `spans` are (start, end) character ranges in the original outbound text;
    `span_chars[i]` is the normalised length of `spans[i]`. Fractions are in
    normalised characters: `doc_fraction` of the document appears in the text,
    `text_fraction` of the text comes from the document.
    """

    doc_id: int
    label: str
    path: str
    matched_chars_doc: int
    doc_fraction: float
    text_fraction: float
    spans: list[tuple[int, int]] = field(default_factory=list)
    span_chars: list[int] = field(default_factory=list)
