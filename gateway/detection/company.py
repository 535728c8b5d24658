"""Company-IP detectors in one place: deny-list terms, classification markings,
source code and protected-document fingerprints.

`CompanySpec` is the hashable part of a policy these detectors need; the
pipeline builds it with `company_spec` and it travels to the worker inside the
`DetectionSpec`. Each worker builds the detectors once per spec and opens the
fingerprint index of a location (data dir, or PostgreSQL DSN and schema) once;
the index reloads itself when another process adds or removes documents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gateway.detection.finding import Finding
from gateway.detection.fingerprint.detector import ENTITY_TYPE as PROTECTED_DOCUMENT
from gateway.detection.fingerprint.location import IndexLocation
from gateway.detection.fingerprint.store import FILE_NAME as INDEX_FILE
from gateway.detection.markings import ENTITY_TYPE as MARKING
from gateway.detection.markings import MarkingDetector
from gateway.detection.source_code import ENTITY_TYPE as SOURCE_CODE
from gateway.detection.source_code import SourceCodeDetector
from gateway.detection.terms import TermDetector


@dataclass(frozen=True)
class CompanySpec:
    terms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    markings: tuple[str, ...] = ()
    source_code: tuple[int, int, float] = (40, 2, 0.6)  # min_chars, min_lines, min_density
    doc_min_chars: int | None = None
    doc_min_doc_fraction: float = 0.0
    doc_min_text_fraction: float = 0.0
    doc_labels: tuple[str, ...] = ()
    data_dir: str = ""  # where the master key (and the SQLite index) live; "" means no index
    fingerprint_dsn: str = field(default="", repr=False)  # PostgreSQL index when set
    fingerprint_schema: str = "public"

    @property
    def index_location(self) -> IndexLocation:
        return IndexLocation(self.data_dir, self.fingerprint_dsn, self.fingerprint_schema)


def company_spec(policy, data_dir: Path | str | None, fingerprints=None) -> CompanySpec:
    """The company-IP settings of a `Policy`, plus where the fingerprint index lives
    (`fingerprints`: the config's `FingerprintsConfig`, None for SQLite in the data dir)."""
    sc, docs = policy.source_code, policy.protected_documents
    return CompanySpec(
        terms=tuple((name, tuple(terms)) for name, terms in sorted(policy.terms.items())),
        markings=tuple(policy.markings),
        source_code=(sc.min_chars, sc.min_lines, sc.min_density),
        doc_min_chars=docs.min_chars,
        doc_min_doc_fraction=docs.min_doc_fraction,
        doc_min_text_fraction=docs.min_text_fraction,
        doc_labels=tuple(docs.labels),
        data_dir=str(Path(data_dir).resolve()) if data_dir else "",
        fingerprint_dsn=fingerprints.dsn if data_dir and fingerprints else "",
        fingerprint_schema=fingerprints.db_schema if data_dir and fingerprints else "public",
    )


class CompanyDetector:
    """Runs only the detectors whose entity types the policy asks for."""

    def __init__(self, spec: CompanySpec, entities: frozenset[str]):
        self.spec = spec
        terms = {name: items for name, items in spec.terms if name in entities}
        self.terms = TermDetector(terms) if terms else None
        self.markings = MarkingDetector({MARKING: list(spec.markings)}) if MARKING in entities else None
        min_chars, min_lines, min_density = spec.source_code
        self.source_code = SourceCodeDetector(min_chars, min_lines, min_density) if SOURCE_CODE in entities else None
        self.documents = PROTECTED_DOCUMENT in entities and bool(spec.data_dir)

    def detect(self, text: str) -> list[Finding]:
        findings: list[Finding] = []
        for detector in (self.terms, self.markings, self.source_code):
            if detector is not None:
                findings.extend(detector.detect(text))
        if self.documents:
            findings.extend(self._documents(text))
        return findings

    def _documents(self, text: str) -> list[Finding]:
        detector = _fingerprint_detector(self.spec.index_location, self.spec.doc_min_chars)
        if detector is None:
            return []
        s = self.spec
        return [
            f
            for match in detector.index.match(text)
            if match.doc_fraction >= s.doc_min_doc_fraction
            and match.text_fraction >= s.doc_min_text_fraction
            and (not s.doc_labels or match.label in s.doc_labels)
            for f in detector.findings(match)
        ]


RECHECK_SECONDS = 1.0  # a shared (PostgreSQL) index: adds and removes reach every worker within this
_stores: dict[IndexLocation, object] = {}
_indexes: dict[IndexLocation, object] = {}


def _fingerprint_detector(location: IndexLocation, min_chars: int | None):
    """The location's index, opened once per process, or None while nothing is indexed."""
    from gateway.detection.fingerprint import FingerprintDetector, FingerprintIndex
    from gateway.keys import LocalKeyProvider

    if location not in _indexes:
        if location not in _stores:
            if not location.dsn and not (Path(location.data_dir) / INDEX_FILE).exists():
                return None
            _stores[location] = location.open_store()
        store = _stores[location]
        if not store.read_settings():
            return None
        keys = LocalKeyProvider.in_data_dir(Path(location.data_dir))
        _indexes[location] = FingerprintIndex(store, keys, recheck_seconds=RECHECK_SECONDS if location.dsn else 0.0)
    return FingerprintDetector(_indexes[location], min_chars)
