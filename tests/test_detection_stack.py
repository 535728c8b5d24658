"""The detector stack in the workers: NER, normalisation, custom recognizers,
allow-lists, micro-batching and a responsive event loop, through real parts."""

from __future__ import annotations

import asyncio
import json
import textwrap
from pathlib import Path

import httpx
import pytest
import spacy

from gateway.detection import ner
from gateway.detection.analyzer import spacy_model_path
from gateway.detection.engine import DetectionEngine
from gateway.detection.finding import Finding
from gateway.detection.merge import AllowList, yield_to_patterns
from gateway.detection.spec import DetectionSpec
from gateway.policy import PolicyError, load_policy

REPO = Path(__file__).resolve().parents[1]
SENTENCES = [
    "Maria Gonzalez from Acme Corp called from Berlin on Monday about her French visa.",
    "Jason had given Elinborg his address: 297 Adalgata 37, Reykjavik",
    "Michael: \"Who are you?\" Cynthia: \"I'm Shannon's daughter\".",
    "Please wire the refund to Dr. Priya Natarajan in Austin, Texas by March 3rd, 2024.",
]


def test_ner_only_pipeline_finds_the_same_entities_as_the_full_model():
    path = spacy_model_path()
    full = spacy.load(path)
    lean = ner.load(path)
    assert lean.pipe_names == ["ner"]
    for doc_full, doc_lean in zip(full.pipe(SENTENCES), lean.pipe(SENTENCES)):
        assert [(e.start_char, e.end_char, e.label_) for e in doc_full.ents] == \
               [(e.start_char, e.end_char, e.label_) for e in doc_lean.ents]


def test_the_entity_recognizer_multiplies_through_numpy_and_finds_what_blis_finds():
    path = spacy_model_path()
    lean = ner.load(path)
    layers = list(lean.get_pipe("ner").model.walk())
    assert layers and all(type(layer.ops).__name__ == "NumpyOps" and not layer.ops.use_blis for layer in layers)
    with_blis = spacy.load(path, exclude=[p for p in spacy.load(path).pipe_names if p != "ner"])
    assert with_blis.get_pipe("ner").model.ops.use_blis
    corpus = REPO / "bench" / "corpus"
    texts = SENTENCES + [json.loads(line)["text"] for name in ("handwritten.jsonl", "names.jsonl")
                         for line in (corpus / name).read_text(encoding="utf-8").splitlines()[:300]]
    entities = [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in lean.pipe(texts)]
    assert sum(map(len, entities)) > len(texts)
    assert entities == [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in with_blis.pipe(texts)]


def test_texts_without_letters_are_not_parsed_and_long_texts_are_chunked_at_blanks():
    assert not ner.has_letters("4111 1111 1111 1111 -- 12/25")
    assert ner.has_letters("Zoë")
    text = ("word " * 50_000).strip()
    pieces = ner.chunks(text, 10_000)
    assert "".join(p for _, p in pieces) == text
    assert all(text[o:o + len(p)] == p for o, p in pieces)
    assert all(p.endswith(" ") for _, p in pieces[:-1])


def test_a_name_span_swallowing_an_email_yields_to_the_email():
    text = "Email john.smith@example.com now"
    email = Finding("EMAIL_ADDRESS", 6, 28, 0.9, "email")
    person = Finding("PERSON", 0, 28, 0.85, "spacy_ner", explanation="spacy_ner")
    assert yield_to_patterns(text, [person], [email]) == []
    text = "Johnathan Smithson john@x.io"
    person = Finding("PERSON", 0, 28, 0.85, "spacy_ner", explanation="spacy_ner")
    (trimmed,) = yield_to_patterns(text, [person], [Finding("EMAIL_ADDRESS", 19, 28, 0.9, "email")])
    assert text[trimmed.start:trimmed.end] == "Johnathan Smithson"
    weak = Finding("DATE_TIME", 19, 28, 0.2, "date")
    assert yield_to_patterns(text, [person], [weak]) == [person]


def test_allow_list_matches_exact_values_case_insensitively_and_whole_regexes():
    allow = AllowList(["Acme Support"], [r"[\w.]+@acme\.example"])
    assert allow.allows(" acme support ")
    assert allow.allows("help@acme.example")
    assert not allow.allows("help@acme.example.org")
    assert not allow.allows("Acme Support Team")


async def test_concurrent_requests_with_different_policies_get_their_own_findings(engine):
    emails = DetectionSpec(entities=frozenset({"EMAIL_ADDRESS"}), min_score=0.4)
    people = DetectionSpec(entities=frozenset({"PERSON", "EMAIL_ADDRESS"}), min_score=0.4,
                           allow=("ann@example.com",))
    texts = [[f"Write to user{i}@example.com or ann@example.com, says Maria Gonzalez."] for i in range(12)]
    results = await asyncio.gather(*(engine.detect(t, emails if i % 2 else people) for i, t in enumerate(texts)))
    for i, (text_list, result) in enumerate(zip(texts, results)):
        found = {(f.entity_type, text_list[0][f.start:f.end]) for f in result[0]}
        if i % 2:
            assert found == {("EMAIL_ADDRESS", f"user{i}@example.com"), ("EMAIL_ADDRESS", "ann@example.com")}
        else:
            assert found == {("EMAIL_ADDRESS", f"user{i}@example.com"), ("PERSON", "Maria Gonzalez")}


async def test_evasion_with_full_width_digits_and_zero_width_spaces_is_caught_at_the_original_offsets(engine):
    text = "SSN ５３６-２２-８８４１ card 4111\u200b1111\u200b1111\u200b1111 mail jo\u00adhn@example.com"
    spec = DetectionSpec(entities=frozenset({"US_SSN", "CREDIT_CARD", "EMAIL_ADDRESS"}), min_score=0.4)
    (found,) = await engine.detect([text], spec)
    assert {(f.entity_type, text[f.start:f.end]) for f in found} == {
        ("US_SSN", "５３６-２２-８８４１"),
        ("CREDIT_CARD", "4111\u200b1111\u200b1111\u200b1111"),
        ("EMAIL_ADDRESS", "jo\u00adhn@example.com"),
    }


CUSTOM_POLICY = """
    name: custom
    detect: all
    min_score: 0.4
    default_action: redact
    actions:
      EMPLOYEE_ID: {action: mask, keep: 2}
      DATE_TIME: allow
    recognizers:
      - name: employee_id
        supported_entity: EMPLOYEE_ID
        patterns:
          - name: emp
            regex: "EMP-\\\\d{6}"
            score: 0.8
        context: [employee]
    allow:
      values: [support@vendorgate.example]
      regex: ['https://docs\\.vendorgate\\.example/.*']
"""


async def test_policy_custom_recognizer_and_allow_list_shape_what_the_vendor_receives(
        upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, CUSTOM_POLICY))
    body = ("employee EMP-123456 wrote from maria.gonzalez@example.com to support@vendorgate.example, "
            "see https://docs.vendorgate.example/setup")
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.post(gw.url + "/acme/x", content=body, headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, r.text
    got = upstream.received[0].text
    assert "EMP-123456" not in got and "***-****56" in got
    assert "maria.gonzalez@example.com" not in got
    assert "support@vendorgate.example" in got
    assert "https://docs.vendorgate.example/setup" in got


def test_invalid_custom_recognizer_regex_names_file_and_line(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent("""
        recognizers:
          - name: broken
            supported_entity: EMPLOYEE_ID
            patterns:
              - regex: "EMP-(\\\\d{6}"
        actions:
          EMPLOYEE_ID: redact
          BADGE_ID: redact
    """))
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    text = str(err.value)
    assert f"{path}:6: recognizers.0.patterns.0.regex" in text and "invalid regex" in text
    assert "unknown entity type 'BADGE_ID'" in text
    assert "EMPLOYEE_ID'" not in text.split("unknown entity type")[0]


NO_NER_POLICY = """
    name: patterns-only
    detect: [EMAIL_ADDRESS, CREDIT_CARD, US_SSN, SECRET]
    min_score: 0.5
    default_action: redact
"""


async def test_small_request_completes_while_a_multi_megabyte_one_is_being_scanned(
        upstream, write_config, start_gateway):
    two = DetectionEngine(workers=2, timeout_seconds=600)
    await two.start()
    try:
        gw = await start_gateway(write_config(upstream.url, NO_NER_POLICY), eng=two)
        big = "Ticket from jane.doe@example.com about card 4111 1111 1111 1111 and more words. " * 40_000
        done: list[str] = []
        async with httpx.AsyncClient(timeout=600) as client:
            async def send(name: str, content: str) -> int:
                r = await client.post(gw.url + "/acme/x", content=content, headers={"Content-Type": "text/plain"})
                done.append(name)
                return r.status_code

            big_task = asyncio.create_task(send("big", big))
            while two.in_flight == 0:
                await asyncio.sleep(0.01)
            small_status = await send("small", "mail bob@example.com")
            assert small_status == 200
            assert done == ["small"]
            assert await big_task == 200
        assert done == ["small", "big"]
        assert len(big) > 3_000_000
        assert "jane.doe@example.com" not in upstream.received[-1].text
    finally:
        await two.close()


def test_field_labels_are_not_reported_as_names_or_organisations():
    from gateway.detection.finding import Finding
    from gateway.detection.merge import yield_to_patterns

    text = "SSN 524-94-5867 for Maria"
    ner = [Finding("ORGANIZATION", 0, 3, 0.85, "spacy"), Finding("PERSON", 20, 25, 0.85, "spacy")]
    kept = yield_to_patterns(text, ner, [])
    assert [(f.entity_type, text[f.start:f.end]) for f in kept] == [("PERSON", "Maria")]


async def test_values_after_escaped_line_breaks_are_found_at_their_original_offsets(engine):
    text = r"Contact\n\nPhone:\n415-555-0132\n\nE-mail:\nann.lee@example.com\n724-49-1234"
    spec = DetectionSpec(entities=frozenset({"PHONE_NUMBER", "EMAIL_ADDRESS", "US_SSN"}), min_score=0.4)
    (found,) = await engine.detect([text], spec)
    assert {(f.entity_type, text[f.start:f.end]) for f in found} == {
        ("PHONE_NUMBER", "415-555-0132"), ("EMAIL_ADDRESS", "ann.lee@example.com"), ("US_SSN", "724-49-1234"),
    }


def test_digit_only_ner_dates_are_kept_when_they_read_as_years_or_dates():
    assert ner.reportable("DATE", "1999") and ner.reportable("DATE", "8/18/1992")
    assert ner.reportable("DATE", "1990s")
    assert not ner.reportable("DATE", "42") and not ner.reportable("CARDINAL", "1999")
    assert not ner.reportable("PERSON", "#4") and ner.reportable("PERSON", "Ann")


def test_ner_batches_are_bounded_by_characters_so_long_text_does_not_blow_up_memory():
    """A 0.9 MB text in one spaCy batch peaked at ~3 GB; batches are now capped by size."""
    from gateway.detection import ner
    from gateway.detection.analyzer import spacy_model_path

    real = ner.load(spacy_model_path())
    batches: list[int] = []

    class Recording:
        meta = real.meta

        def pipe(self, texts, batch_size):
            batches.append(sum(len(t) for t in texts))
            return real.pipe(texts, batch_size=batch_size)

    text = "Maria Gonzalez moved to Berlin last year. " * 12_000
    findings = ner.NerDetector(Recording()).detect_many([text, "Call John Smith."])
    assert len(batches) > 1
    assert max(batches) <= ner.BATCH_CHARS + ner.CHUNK
    assert any(text[f.start:f.end] == "Maria Gonzalez" for f in findings[0])
    assert [f.entity_type for f in findings[1]] == ["PERSON"]


def test_a_surrogate_quoted_back_by_the_caller_is_not_read_as_a_name():
    from gateway.detection.finding import Finding
    from gateway.detection.merge import yield_to_patterns

    text = "What does PERSON_QMBQY1AK6W stand for, Maria?"
    ner = [Finding("PERSON", 10, 27, 0.85, "spacy"), Finding("PERSON", 39, 44, 0.85, "spacy")]
    kept = yield_to_patterns(text, ner, [])
    assert [text[f.start:f.end] for f in kept] == ["Maria"]


def test_a_request_s_texts_go_through_the_entity_recognizer_together_with_unchanged_entities():
    lean = ner.load(spacy_model_path())
    alone = [ner.NerDetector(lean).detect_many([s])[0] for s in SENTENCES * 2]

    class Recording:
        meta = lean.meta

        def __init__(self):
            self.batch_sizes = []

        def pipe(self, texts, batch_size):
            self.batch_sizes.append(batch_size)
            return lean.pipe(texts, batch_size=batch_size)

    recording = Recording()
    together = ner.NerDetector(recording).detect_many(SENTENCES * 2)
    # spaCy's entity recognizer predicts in sub-batches of batch_size // 4 (transition_parser.pyx).
    assert [size // 4 for size in recording.batch_sizes] == [len(SENTENCES) * 2]
    assert [[(f.start, f.end, f.entity_type) for f in found] for found in together] == \
           [[(f.start, f.end, f.entity_type) for f in found] for found in alone]
    assert any(f.entity_type == "PERSON" for found in together for f in found)
