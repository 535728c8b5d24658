"""Classification markings: found in their usual spellings, scored by how marking-like they look."""

from gateway.detection.markings import ENTITY_TYPE, MarkingDetector


def spans(text, detector=None):
    return [(text[f.start:f.end], f.score, f.rule) for f in (detector or MarkingDetector()).detect(text)]


def test_all_caps_banner_at_top_of_document_scores_high():
    text = "STRICTLY CONFIDENTIAL\n\nQ3 board pack: revenue by region follows."
    assert spans(text) == [("STRICTLY CONFIDENTIAL", 0.95, "STRICTLY CONFIDENTIAL")]


def test_longest_marking_wins_over_the_word_inside_it():
    found = MarkingDetector().detect("PRIVILEGED & CONFIDENTIAL")
    assert [(f.rule, f.start, f.end) for f in found] == [("PRIVILEGED & CONFIDENTIAL", 0, 25)]


def test_whitespace_and_hyphen_variants_match():
    for text in ["ATTORNEY-CLIENT PRIVILEGED", "Attorney Client Privileged", "attorney \u2013 client   privileged",
                 "INTERNAL-USE-ONLY", "Internal\nUse Only", "Privileged and Confidential"]:
        found = MarkingDetector().detect(text)
        assert len(found) == 1 and found[0].end - found[0].start == len(text), text
        assert found[0].entity_type == ENTITY_TYPE


def test_government_style_banners_are_matched_whole():
    text = "TOP SECRET//SI//REL TO USA, FVEY\nThe source reports..."
    assert spans(text)[0] == ("TOP SECRET//SI//REL TO USA, FVEY", 0.95, "BANNER")
    assert spans("x SECRET//NOFORN y")[0][0] == "SECRET//NOFORN"


def test_confidential_in_ordinary_prose_is_low_score():
    [(_, score, rule)] = spans("Please keep this confidential until the offer is signed, thanks.")
    assert (score, rule) == (0.3, "CONFIDENTIAL")
    [(_, score, _)] = spans("We rely on proprietary tooling from a small vendor for the build.")
    assert score == 0.3


def test_multi_word_marking_in_prose_is_medium_score():
    [(_, score, _)] = spans("Attached is the draft; please do not distribute it outside the team yet.")
    assert score == 0.6


def test_labelled_and_footer_markings_score_high():
    assert spans("Owner: finance\nClassification: Confidential\n")[0][1] == 0.95
    assert [s for _, s, _ in spans("Page 3 of 9\nConfidential - Do not distribute\n")] == [0.95, 0.95]


def test_words_that_merely_contain_a_marking_do_not_match():
    for text in ["Sign the confidentiality agreement first.", "The proprietor was away.",
                 "It is no secret that the top team won.", "Nondisclosure terms are standard (NDA)."]:
        assert MarkingDetector().detect(text) == [], text


def test_custom_markings_with_own_entity_type():
    detector = MarkingDetector({"PROJECT_CODENAME": ["Project Nightingale"], ENTITY_TYPE: ["ACME RESTRICTED"]})
    found = detector.detect("ACME RESTRICTED\nStatus of project nightingale, and CONFIDENTIAL numbers.")
    assert [(f.entity_type, f.rule) for f in found] == [
        (ENTITY_TYPE, "ACME RESTRICTED"), ("PROJECT_CODENAME", "PROJECT NIGHTINGALE"), (ENTITY_TYPE, "CONFIDENTIAL")]


def test_defaults_can_be_left_out():
    detector = MarkingDetector({"PROJECT_CODENAME": ["Nightingale"]}, include_defaults=False)
    assert [f.rule for f in detector.detect("CONFIDENTIAL: Nightingale")] == ["NIGHTINGALE"]


def test_findings_do_not_carry_the_text():
    [finding] = MarkingDetector().detect("TOP SECRET plans")
    assert "TOP SECRET plans" not in repr(finding) and finding.explanation == "capitals"
