"""Findings for passages of protected documents found in outbound text."""

from __future__ import annotations

from gateway.detection.finding import Finding
from gateway.detection.fingerprint.index import FingerprintIndex
from gateway.detection.fingerprint.records import DocumentMatch

ENTITY_TYPE = "PROTECTED_DOCUMENT"


class FingerprintDetector:
    """One finding per matched passage; the rule is the document's label.

    `min_chars` (normalised characters, default the index's k) drops shorter
    passages. The explanation carries `doc_fraction` and `text_fraction` so a
    policy can act on "more than 5% of a document".
    """

    name = "fingerprint"

    def __init__(self, index: FingerprintIndex, min_chars: int | None = None):
        self.index = index
        self.min_chars = index.settings.k if min_chars is None else min_chars

    def detect(self, text: str) -> list[Finding]:
        return [f for match in self.index.match(text) for f in self.findings(match)]

    def findings(self, match: DocumentMatch) -> list[Finding]:
        explanation = (
            f"label={match.label} doc_id={match.doc_id} "
            f"doc_fraction={match.doc_fraction:.2f} text_fraction={match.text_fraction:.2f}"
        )
        return [
            Finding(ENTITY_TYPE, start, end, 1.0, self.name, rule=match.label, explanation=explanation)
            for (start, end), chars in zip(match.spans, match.span_chars)
            if chars >= self.min_chars
        ]
