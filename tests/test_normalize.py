from gateway.detection.finding import Finding
from gateway.detection.normalize import map_findings, normalize
from gateway.detection.patterns import PatternDetector

DETECTOR = PatternDetector()


def detect_original(text: str) -> list[tuple[str, str]]:
    normalized = normalize(text)
    findings = map_findings(DETECTOR.detect(normalized.text), normalized)
    return [(f.entity_type, text[f.start:f.end]) for f in findings]


def test_ascii_text_is_returned_unchanged_with_identity_map():
    n = normalize("plain ascii 123")
    assert n.text == "plain ascii 123" and not n.changed
    assert n.to_original(6, 11) == (6, 11)


def test_zero_width_space_inside_card_number_is_detected_and_maps_back():
    text = "card 4111\u200b1111 1111 1111 ok"
    assert detect_original(text) == [("CREDIT_CARD", "4111\u200b1111 1111 1111")]


def test_full_width_digits_are_folded():
    text = "card \uff14\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11 \uff11\uff11\uff11\uff11."
    n = normalize(text)
    assert "4111 1111 1111 1111" in n.text
    assert detect_original(text) == [("CREDIT_CARD", text[5:-1])]


def test_soft_hyphen_inside_email_is_removed():
    text = "mail jo\u00adhn.doe@exam\u00adple.com now"
    assert detect_original(text) == [("EMAIL_ADDRESS", "jo\u00adhn.doe@exam\u00adple.com")]


def test_all_invisible_characters_are_dropped():
    n = normalize("a\u200bb\u200cc\u200dd\u2060e\ufefff\u00adg")
    assert n.text == "abcdefg"


def test_ligature_expands_and_each_part_maps_to_the_whole_ligature():
    n = normalize("\ufb01le \u2460")
    assert n.text == "file 1"
    assert n.to_original(0, 1) == (0, 1)
    assert n.to_original(1, 3) == (0, 2)
    assert n.to_original(5, 6) == (4, 5)


def test_combining_mark_after_ascii_letter_is_composed():
    n = normalize("cafe\u0301!")
    assert n.text == "caf\u00e9!"
    assert n.to_original(3, 4) == (3, 5)
    assert n.to_original(4, 5) == (5, 6)


def test_empty_span_at_end_maps_to_original_end():
    n = normalize("x\u200b")
    assert n.text == "x"
    assert n.to_original(1, 1) == (2, 2)


def test_map_findings_keeps_other_fields():
    n = normalize("\uff11 a")
    (mapped,) = map_findings([Finding("X", 0, 1, 0.5, "r", explanation="e")], n)
    assert (mapped.start, mapped.end, mapped.score, mapped.explanation) == (0, 1, 0.5, "e")


def test_escaped_line_breaks_read_as_blanks_without_changing_length():
    from gateway.detection.normalize import with_line_breaks

    text = r"Name:\nAnn Lee\tPhone:\r\n555-201-3344"
    plain = with_line_breaks(text)
    assert len(plain) == len(text)
    assert plain == "Name: \nAnn Lee  Phone:   \n555-201-3344"
    assert with_line_breaks(r"C:\\new\\table") == r"C:\\new\\table"
    assert with_line_breaks("no escapes\n") == "no escapes\n"
