"""Named entities (people, places, organisations, nationalities, dates) with spaCy, run in batches.

spaCy's `nlp.pipe` over all texts of a batch amortises the per-call cost, and
only the `ner` component runs: in `en_core_web_sm` it has its own embedding
layer, so the tagger, parser, lemmatizer and the shared tok2vec can be skipped
without changing a single entity (`tests/test_detection_stack.py` checks that).
"""

from __future__ import annotations

import re

from gateway.detection.finding import Finding

# spaCy label -> entity type, as Presidio's default mapping (ORG kept: the small
# model often labels unfamiliar personal names ORG, and a policy may allow it).
LABELS = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
          "NORP": "NRP", "ORG": "ORGANIZATION", "DATE": "DATE_TIME", "TIME": "DATE_TIME",
          # Labels that are never PII by themselves but often a mislabelled name ("Sonoka Miki" PRODUCT):
          # gateway/detection/names.py re-types them PERSON when every word is a known name, else drops them.
          "PRODUCT": "_OTHER", "WORK_OF_ART": "_OTHER", "EVENT": "_OTHER", "LAW": "_OTHER", "LANGUAGE": "_OTHER"}
ENTITIES = frozenset(v for v in LABELS.values() if not v.startswith("_"))
SCORE = 0.85
RECOGNIZER = "spacy_ner"
CHUNK = 20_000
BATCH_SIZE = 256
BATCH_CHARS = 200_000  # spaCy's memory grows with the text in one batch: bound it, not only the count
# spaCy's entity recognizer (a transition parser) predicts in sub-batches of a
# quarter of `batch_size`, sorted by length: a request's 8 texts went through it
# two at a time. One sub-batch per call, of up to this many texts, gives the
# same entities 20-30% faster (larger matrix products per parser step).
SUB_BATCH = 64

_LETTER = re.compile(r"[^\W\d_]")
# A DATE span without letters is kept when it reads as a year, a decade or a numeric date.
_DIGIT_DATE = re.compile(r"(?:1[6-9]|20)\d\d(?:s|'s)?|'\d\d|\d{1,4}[-/.]\d{1,2}(?:[-/.]\d{1,4})?")


def has_letters(text: str) -> bool:
    """NER needs words around a value to label it; a text without letters is not parsed."""
    return _LETTER.search(text) is not None


# A DATE/TIME span with letters names a point in time only with a digit, a month or a weekday:
# "next week", "a few months ago", "the weekend" identify nobody and were most of NER's over-redaction.
_CALENDAR = re.compile(
    r"\d|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)\.?(?!\w)"
    r"|\b(?:january|february|march|april|june|july|august|september|october|november|december|monday|tuesday"
    r"|wednesday|thursday|friday|saturday|sunday|christmas|easter)", re.IGNORECASE)


def reportable(label: str, value: str) -> bool:
    """A span without letters is noise ("2", "#4"), except a DATE that reads as a year or a date;
    a DATE/TIME with letters needs a digit, a month or a weekday."""
    if has_letters(value):
        return label not in ("DATE", "TIME") or _CALENDAR.search(value) is not None
    return label in ("DATE", "TIME") and _DIGIT_DATE.fullmatch(value.strip()) is not None


def chunks(text: str, size: int = CHUNK) -> list[tuple[int, str]]:
    """`text` cut at whitespace into pieces of at most about `size` characters, with their offsets."""
    if len(text) <= size:
        return [(0, text)]
    pieces = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = max(text.rfind(" ", start + size // 2, end), text.rfind("\n", start + size // 2, end))
            end = cut + 1 if cut > start else end
        pieces.append((start, text[start:end]))
        start = end
    return pieces


def load(model_path: str):
    """The entity recognizer, its matrix products through numpy's BLAS (one thread).

    blis, thinc's default, picks its kernels by CPU model and falls back to its
    unoptimised reference kernel on CPUs it does not know (AMD family 26 here:
    37% of NER time in that kernel); OpenBLAS, numpy's, detects by features.
    Same entities (`tests/test_detection_stack.py`), about a third faster.
    One BLAS thread: detection already runs one process per core."""
    import spacy
    from thinc.api import NumpyOps
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")
    nlp = spacy.load(model_path, exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer"])
    ops = NumpyOps(use_blis=False)
    for layer in nlp.get_pipe("ner").model.walk():  # each layer keeps the ops it was built with
        layer.ops = ops
    return nlp


class NerDetector:
    """PERSON, LOCATION, ORGANIZATION, NRP and DATE_TIME from spaCy's entity recognizer."""

    def __init__(self, nlp) -> None:
        self.nlp = nlp
        self.model = f"{nlp.meta.get('name', '?')} {nlp.meta.get('version', '')}".strip()

    def detect_many(self, texts: list[str]) -> list[list[Finding]]:
        """Findings for each text; one `nlp.pipe` call over every text that has letters."""
        results: list[list[Finding]] = [[] for _ in texts]
        pieces = [(i, offset, piece) for i, text in enumerate(texts) if has_letters(text)
                  for offset, piece in chunks(text)]
        for (i, offset, _), doc in zip(pieces, self._pipe([piece for _, _, piece in pieces])):
            for ent in doc.ents:
                entity = LABELS.get(ent.label_)
                if entity is None or not reportable(ent.label_, ent.text):
                    continue
                results[i].append(Finding(entity, offset + ent.start_char, offset + ent.end_char, SCORE, RECOGNIZER,
                                          explanation=f"{RECOGNIZER}: {self.model} label {ent.label_} -> {entity}; "
                                                      f"score {SCORE:.2f}"))
        return results

    def _pipe(self, pieces: list[str]):
        """`nlp.pipe` in batches of at most BATCH_SIZE pieces and about BATCH_CHARS characters."""
        batch: list[str] = []
        size = 0
        for piece in pieces:
            if batch and (len(batch) >= BATCH_SIZE or size + len(piece) > BATCH_CHARS):
                yield from self._pipe_batch(batch)
                batch, size = [], 0
            batch.append(piece)
            size += len(piece)
        if batch:
            yield from self._pipe_batch(batch)

    def _pipe_batch(self, batch: list[str]):
        """One `nlp.pipe` call whose parser sub-batches hold min(len(batch), SUB_BATCH) texts."""
        return self.nlp.pipe(batch, batch_size=4 * min(len(batch), SUB_BATCH))
