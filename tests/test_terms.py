from gateway.detection.terms import TermDetector


def hits(detector: TermDetector, text: str) -> list[tuple[str, str]]:
    return [(f.entity_type, text[f.start:f.end]) for f in detector.detect(text)]


DETECTOR = TermDetector({"CODE_NAME": ["Atlas", "Project Blue Falcon"], "CUSTOMER": ["Acme Corp", "C++"]})


def test_term_matches_any_case_on_word_boundaries():
    text = "Atlas, atlas and ATLAS."
    assert hits(DETECTOR, text) == [("CODE_NAME", "Atlas"), ("CODE_NAME", "atlas"), ("CODE_NAME", "ATLAS")]


def test_term_inside_a_longer_word_is_not_matched():
    assert hits(DETECTOR, "we use Atlassian and reatlas") == []


def test_multiword_term_matches_across_any_whitespace_with_original_offsets():
    text = "launch of project  blue\n\tfalcon next week"
    assert hits(DETECTOR, text) == [("CODE_NAME", "project  blue\n\tfalcon")]


def test_recognizer_name_and_entity_types():
    (f,) = DETECTOR.detect("signed with acme corp")
    assert (f.entity_type, f.recognizer) == ("CUSTOMER", "terms")


def test_term_with_symbol_edges():
    assert hits(DETECTOR, "written in c++, mostly") == [("CUSTOMER", "c++")]


def test_thousands_of_terms():
    many = TermDetector({"CODE_NAME": [f"project-{i}" for i in range(5000)]})
    assert hits(many, "status of Project-4321 and project-43210") == [("CODE_NAME", "Project-4321")]


def test_no_terms_finds_nothing():
    assert TermDetector({}).detect("anything") == []


def test_allow_list_exact_case_insensitive_and_regex():
    detector = TermDetector({}, allow=["ops@example.com"], allow_regex=[r".*@example\.org"])
    assert detector.is_allowed("OPS@Example.com")
    assert detector.is_allowed("anyone@example.org")
    assert not detector.is_allowed("anyone@example.org.evil.io")
    assert not detector.is_allowed("ops@example.co")
