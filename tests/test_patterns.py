import json
import random
from pathlib import Path

import pytest

from gateway.detection.patterns import CustomPattern, PatternDetector, validators
from gateway.detection.patterns.recognizers import BUILT_IN

DETECTOR = PatternDetector()


def found(text: str, entity: str | None = None, min_score: float = 0.0) -> list[tuple[str, str]]:
    return [
        (f.entity_type, text[f.start:f.end])
        for f in DETECTOR.detect(text)
        if (entity is None or f.entity_type == entity) and f.score >= min_score
    ]


def score_of(text: str, entity: str) -> float:
    return max(f.score for f in DETECTOR.detect(text) if f.entity_type == entity)


# --- validators ---------------------------------------------------------------

def test_luhn_accepts_test_cards_and_rejects_a_changed_digit():
    assert validators.luhn("4111 1111 1111 1111")
    assert not validators.luhn("4111 1111 1111 1112")


def test_iban_rejects_bad_checksum_and_wrong_country_length():
    assert validators.iban("GB82 WEST 1234 5698 7654 32")
    assert not validators.iban("GB83 WEST 1234 5698 7654 32")
    assert not validators.iban("GB82 WEST 1234 5698 7654 3")


@pytest.mark.parametrize("value", ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"])
def test_ssn_rules_reject_reserved_numbers(value):
    assert not validators.ssn(value)


def test_aba_checksum():
    assert validators.aba("021000021")
    assert not validators.aba("021000022")


def test_ip_validators_reject_out_of_range_octets_and_bad_ipv6():
    assert validators.ipv4("192.168.1.1") and not validators.ipv4("999.1.1.1")
    assert validators.ipv6("2001:db8::1") and not validators.ipv6("2001:db8:::1")


# --- recognizers ----------------------------------------------------------------

def test_email_with_exact_offsets():
    text = "write to maria.gonzalez@example.co.uk today"
    (f,) = DETECTOR.detect(text)
    assert (f.entity_type, f.start, f.end, f.recognizer) == ("EMAIL_ADDRESS", 9, 37, "email")


@pytest.mark.parametrize("phone", [
    "(555) 123-4567", "555.123.4567", "+1 555 123 4567", "555-123-4567 x89",
    "+44 20 7946 0958", "+49 30 901820", "+1 (212) 555-0198 ext. 12", "020 7946 0958",
])
def test_phone_formats(phone):
    assert found(f"call me on {phone} please", "PHONE_NUMBER") == [("PHONE_NUMBER", phone)]


def test_phone_not_found_in_short_number_without_context():
    assert found("we shipped 1234-567 units", "PHONE_NUMBER") == []


def test_phone_score_lowered_by_order_number_context():
    assert score_of("order number 415-555-0132", "PHONE_NUMBER") < score_of("mobile 415-555-0132", "PHONE_NUMBER")


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111", "3782 822463 10005"])
def test_credit_card_with_separators(card):
    assert found(f"card {card} exp 12/27", "CREDIT_CARD") == [("CREDIT_CARD", card)]


def test_credit_card_failing_luhn_is_not_reported():
    assert found("card 4111 1111 1111 1112", "CREDIT_CARD") == []


def test_card_score_lowered_by_invoice_context_and_says_why():
    (f,) = [f for f in DETECTOR.detect("invoice ref 4111111111111111") if f.entity_type == "CREDIT_CARD"]
    assert f.score < 0.9
    assert "'invoice'" in f.explanation or "'ref'" in f.explanation


def test_ssn_dashed_and_spaced():
    assert found("SSN 123-45-6789", "US_SSN") == [("US_SSN", "123-45-6789")]
    assert found("ssn: 123 45 6789", "US_SSN") == [("US_SSN", "123 45 6789")]


def test_ssn_invalid_area_is_not_reported():
    assert found("SSN 000-45-6789") == []
    assert found("SSN 666-45-6789") == []


def test_unseparated_ssn_needs_context():
    assert found("social security number 123456789", "US_SSN") == [("US_SSN", "123456789")]
    assert found("build 123456789 passed") == []


def test_ssn_context_raises_score_and_is_explained():
    plain = score_of("value 123-45-6789", "US_SSN")
    (f,) = DETECTOR.detect("her SSN is 123-45-6789")
    assert f.score > plain
    assert "context 'ssn'" in f.explanation


def test_itin_is_told_apart_from_ssn():
    assert found("ITIN 912-70-1234") == [("US_ITIN", "912-70-1234")]


def test_iban_with_spaces_and_bad_checksum():
    assert found("IBAN GB82 WEST 1234 5698 7654 32 thanks") == [("IBAN_CODE", "GB82 WEST 1234 5698 7654 32")]
    assert found("IBAN GB83 WEST 1234 5698 7654 32", "IBAN_CODE") == []


def test_ipv4_and_ipv6():
    assert found("from 10.0.0.1.", "IP_ADDRESS") == [("IP_ADDRESS", "10.0.0.1")]
    assert found("host 999.1.1.1", "IP_ADDRESS") == []
    assert found("peer 2001:db8::8a2e:370:7334 up", "IP_ADDRESS") == [("IP_ADDRESS", "2001:db8::8a2e:370:7334")]
    assert found("at 10:22:01 today", "IP_ADDRESS") == []


def test_mac_address():
    assert found("device 00:1A:2B:3C:4D:5E joined") == [("MAC_ADDRESS", "00:1A:2B:3C:4D:5E")]


def test_url_scores_like_a_domain_reserved_hosts_low_and_credentials_url_is_left_to_secrets():
    (f,) = DETECTOR.detect("see https://example.com/docs?page=2.")
    assert f.entity_type == "URL" and f.score < 0.4
    assert score_of("my site https://janedoe-photos.fi/", "URL") == 0.5
    assert score_of("health http://localhost:8080/x", "URL") < 0.4
    assert found("db postgres://admin:hunter2@db.internal:5432/app") == []
    assert found("see https://admin:hunter2@example.com/x", "URL") == []


def test_a_url_to_a_private_host_or_a_cloud_bucket_is_a_url():
    # a private-use name is the company's own network: scored like any host (RFC 2606 names stay low)
    assert score_of("scan at https://files.acme.internal/tickets/scan-17.png", "URL") == 0.5
    assert score_of("printer http://printer.office.local/status", "URL") == 0.5
    assert found("row gs://acme-private/tickets/scan-17.png", "URL") == [("URL", "gs://acme-private/tickets/scan-17.png")]
    assert found("row S3://acme-private/scan.png.", "URL") == [("URL", "S3://acme-private/scan.png")]
    assert found("see bugs://x and aws3://y", "URL") == []  # the schemes, not a word ending in them


def test_routing_number_needs_context_and_checksum():
    assert found("routing number 021000021") == [("US_BANK_ROUTING", "021000021")]
    assert found("routing number 021000022") == []


def test_street_address_with_unit_city_state_zip():
    text = "Lives at 123 Main St, Apt 4B, Springfield, IL 62704 since May."
    assert ("STREET_ADDRESS", "123 Main St, Apt 4B, Springfield, IL 62704") in found(text)
    assert ("ZIP_CODE", "62704") in found(text)


def test_street_address_across_lines_without_known_suffix():
    text = "Ship to:\n4759 William Haven Apt. 194\nWest Corey, CA 90152\n"
    assert ("STREET_ADDRESS", "4759 William Haven Apt. 194\nWest Corey, CA 90152") in found(text)


def test_uk_flat_address_and_po_box():
    assert ("STREET_ADDRESS", "Flat 3, 12 Baker Street, London NW1 6XE") in found(
        "Send it to Flat 3, 12 Baker Street, London NW1 6XE please")
    assert found("mail PO Box 1234 only") == [("STREET_ADDRESS", "PO Box 1234")]


def test_lowercase_prose_is_not_an_address():
    assert found("it took 2 hours on the way", "STREET_ADDRESS") == []


def test_zip_only_in_address_context():
    assert found("zip code: 94107") == [("ZIP_CODE", "94107")]
    assert found("Austin, TX 78701") == [("ZIP_CODE", "78701")]
    assert found("we sold 94107 units") == []


def test_dates_are_birth_dates_only_with_birth_context():
    assert found("DOB: 03/15/1985") == [("DATE_OF_BIRTH", "03/15/1985")]
    assert found("born March 3, 1991") == [("DATE_OF_BIRTH", "March 3, 1991")]
    (f,) = DETECTOR.detect("meeting on 2024-01-15")
    assert f.entity_type == "DATE_TIME" and f.score == 0.6
    assert found("DOB 13/45/1985") == []


@pytest.mark.parametrize("text,age", [("he is 42 years old", "42 years old"), ("aged 42", "aged 42"),
                                      ("age: 42", "age: 42"), ("a 42-year-old man", "42-year-old")])
def test_age(text, age):
    assert found(text, "AGE") == [("AGE", age)]


def test_passport_driver_license_and_mrn_need_their_keyword():
    assert found("passport number: 123456789") == [("US_PASSPORT", "123456789")]
    assert found("driver's license D1234567") == [("US_DRIVER_LICENSE", "D1234567")]
    assert found("MRN 00123456") == [("MEDICAL_RECORD_NUMBER", "00123456")]
    assert found("code D1234567") == []


def test_failed_candidate_lets_later_recognizers_try_the_same_position():
    # 17 digits: not a card (no issuer starts with 21) but the first ten are a phone number.
    text = "call 212 555 0198 7777 1234"
    assert ("PHONE_NUMBER", "212 555 0198") in found(text)


def test_entity_filter_limits_findings():
    only_email = PatternDetector(entities={"EMAIL_ADDRESS"})
    text = "a@b.io 123-45-6789"
    assert [f.entity_type for f in only_email.detect(text)] == ["EMAIL_ADDRESS"]
    assert only_email.supported_entities == {"EMAIL_ADDRESS"}


def test_findings_never_carry_the_value():
    (f,) = DETECTOR.detect("SSN 123-45-6789")
    assert "6789" not in repr(f) and "6789" not in (f.explanation or "")


# --- custom patterns -----------------------------------------------------------------

def test_custom_pattern_with_validator_and_context():
    employee_card = CustomPattern(name="corp_card", entity_type="CORP_CARD", regex=r"\bCC-\d{16}\b",
                                  score=0.5, context=["corporate"])
    luhn_only = CustomPattern(name="acct", entity_type="ACCOUNT", regex=r"\d{16}", validator="luhn")
    detector = PatternDetector(entities={"CORP_CARD", "ACCOUNT"}, custom=[employee_card, luhn_only])
    text = "corporate CC-4111111111111111 and 4111111111111112"
    result = [(f.entity_type, text[f.start:f.end], f.score) for f in detector.detect(text)]
    assert ("CORP_CARD", "CC-4111111111111111", 0.8) in result
    assert ("ACCOUNT", "4111111111111111", 0.6) in result
    assert not any(value == "4111111111111112" for _, value, _ in result)


def test_custom_pattern_rejects_unknown_validator_and_bad_regex():
    with pytest.raises(ValueError):
        CustomPattern(name="x", entity_type="X", regex=r"\d+", validator="nope")
    with pytest.raises(ValueError):
        CustomPattern(name="x", entity_type="X", regex=r"(")


def test_custom_patterns_from_presidio_yaml_shape():
    spec = {
        "name": "Zip code recognizer",
        "supported_language": "en",
        "supported_entity": "EMPLOYEE_ID",
        "patterns": [{"name": "emp id", "regex": r"\bEMP-\d{6}\b", "score": 0.7}],
        "context": ["employee"],
        "deny_list": ["Project Orion"],
    }
    patterns = CustomPattern.from_presidio_yaml(spec)
    assert [p.entity_type for p in patterns] == ["EMPLOYEE_ID", "EMPLOYEE_ID"]
    detector = PatternDetector(custom=patterns, entities={"EMPLOYEE_ID"})
    text = "employee emp-123456 on project orion"
    assert [text[f.start:f.end] for f in detector.detect(text)] == ["emp-123456", "project orion"]


def test_iso_date_with_time_is_one_date_time():
    assert found("When: 1995-12-19 20:10:13.495621\nWhere") == [("DATE_TIME", "1995-12-19 20:10:13.495621")]
    assert found("since 8/18/1992.", min_score=0.4) == [("DATE_TIME", "8/18/1992")]
    assert found("version 1.2.3 at 10:30", "DATE_TIME") == []


@pytest.mark.parametrize("text, age", [
    ("I just turned 74", "74"),
    ("My birthday is on the weekend. I'll turn 55.", "55"),
    ("Written when he was 85.", "85"),
    ("she is 42 years old", "42 years old"),
])
def test_age_phrases(text, age):
    assert found(text, "AGE") == [("AGE", age)]


@pytest.mark.parametrize("text", [
    "turn 3 pages", "turned 180 degrees", "when she was 12:30", "when he was 5 minutes late",
    "when it was 5 pm", "turn 5 left at the lights",
])
def test_numbers_after_turn_or_was_that_are_not_ages(text):
    assert found(text, "AGE") == []


def test_twelve_digit_maestro_needs_card_context_and_jcb_35_prefix_is_a_card():
    assert found("Please block card no 503838061748", "CREDIT_CARD") == [("CREDIT_CARD", "503838061748")]
    assert found("invoice 503838061748 paid", "CREDIT_CARD") == []
    assert found("What is the limit for card 3507406500425484?", "CREDIT_CARD") == [
        ("CREDIT_CARD", "3507406500425484")]
    assert found("card 3507406500425485", "CREDIT_CARD") == []


@pytest.mark.parametrize("text, phone", [
    ("How can we reach you? You can call 74 849 807", "74 849 807"),
    ("Can someone call me on 92 34 70?", "92 34 70"),
    ("office 0494 41 18 24", "0494 41 18 24"),
])
def test_short_local_phone_numbers_with_a_phone_word(text, phone):
    assert found(text, "PHONE_NUMBER", min_score=0.4) == [("PHONE_NUMBER", phone)]


@pytest.mark.parametrize("text", ["order 12 34 56 shipped", "we sold 74 849 807 units", "Invoice total 1 234 567"])
def test_grouped_digits_without_a_phone_word_are_not_phones(text):
    assert found(text, "PHONE_NUMBER", min_score=0.4) == []


@pytest.mark.parametrize("text, code", [
    ("ZIP: 7736 PJ", "7736 PJ"), ("My zip code is 81-521", "81-521"), ("postal code 2680-043", "2680-043"),
    ("ZIP: 4242", "4242"),
])
def test_international_postcodes_after_a_zip_keyword(text, code):
    assert found(text, "ZIP_CODE") == [("ZIP_CODE", code)]


@pytest.mark.parametrize("text, place", [
    ('{"customer": {"name": "Isabella Rossi", "city": "Rome"}}', "Rome"),
    ("City: Leeds\n", "Leeds"),
    ("place of birth: São Paulo", "São Paulo"),
    ("country=US;", "US"),
])
def test_value_of_a_place_field_is_a_location(text, place):
    assert ("LOCATION", place) in [(f.entity_type, text[f.start:f.end]) for f in DETECTOR.detect(text)]


@pytest.mark.parametrize("text", ["town: null", "the city is lovely in spring", "velocity: 42"])
def test_place_words_without_a_field_value_are_no_location(text):
    assert [f for f in DETECTOR.detect(text) if f.entity_type == "LOCATION"] == []


# --- the multi-pattern prefilter ------------------------------------------------

CORPUS = Path(__file__).resolve().parent.parent / "bench" / "corpus" / "handwritten.jsonl"


def _corpus_texts() -> list[str]:
    texts = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(13)
    cut = []
    for text in texts:  # pieces and one-character edits: matches cut short, glued, split
        for _ in range(5):
            i, j = sorted(rng.randrange(len(text) + 1) for _ in range(2))
            cut += [text[i:j], text[:i] + rng.choice(" \n,.:-@/#0123456789") + text[i:]]
    return texts + cut


def test_prefiltered_scan_finds_what_the_full_scan_finds():
    pytest.importorskip("hyperscan")
    full, prefiltered = PatternDetector(prefilter=False), PatternDetector()
    texts = _corpus_texts()
    assert len(texts) > 500
    for text in texts:
        assert prefiltered.detect(text) == full.detect(text), text


def test_prefilter_rules_out_every_recognizer_for_plain_prose():
    pytest.importorskip("hyperscan")
    detector = PatternDetector()
    assert detector.candidates("the customer asked about a refund for the order placed last week") == frozenset()
    names = {BUILT_IN[i].name for i in detector.candidates("write to maria.gonzalez@example.co.uk today")}
    assert "email" in names and "phone" not in names


def test_text_beyond_ascii_is_scanned_by_every_recognizer():
    detector = PatternDetector()
    assert len(detector.candidates("São Paulo, no digits here")) == len(BUILT_IN)
    assert found("place of birth: São Paulo", "LOCATION") == [("LOCATION", "São Paulo")]
