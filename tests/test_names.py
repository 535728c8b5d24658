"""The names layer: people that the small NER model misses or mislabels (issue 11)."""

from __future__ import annotations

import pytest

from gateway.detection.finding import Finding
from gateway.detection.names import NameFinder, public_org


@pytest.fixture(scope="module")
def finder():
    return NameFinder()


def person_values(finder, text, ner=()):
    return {text[f.start:f.end] for f in finder.detect(text, list(ner)) if f.entity_type == "PERSON"}


@pytest.mark.parametrize("text, name", [
    ("Thanks Priya", "Priya"),
    ("Hi Wei, the invoice is attached.", "Wei"),
    ("please forward this to priya raman today", "priya raman"),
    ("ATTN: MARIA GONZALEZ - RETURN AUTHORISATION", "MARIA GONZALEZ"),
    ("Passenger EWELINA SKOTARCZAK missed the connection.", "EWELINA SKOTARCZAK"),
    ("张伟 called about the refund", "张伟"),
    ("[Priya] hi, my router keeps rebooting", "Priya"),
    ("Regards,\nOlusegun Adebayo\nLagos", "Olusegun Adebayo"),
    ("Ms. Ефремова says the parcel arrived damaged", "Ms. Ефремова"),
    ("please forward this to enzio moresi, she handles the account", "enzio moresi"),
    ("Escalated to ökkaş seven, he is on call", "ökkaş seven"),
    ("Spoke with Jun about order 89", "Jun"),
])
def test_names_that_ner_misses_are_found(finder, text, name):
    assert name in person_values(finder, text)


def test_a_team_handed_a_ticket_is_no_person(finder):
    assert person_values(finder, "please forward this to the billing team, she said it is urgent") == set()


def test_surname_comma_given_name_marks_both_parts(finder):
    found = person_values(finder, "Gonzalez, Maria\nAccount manager")
    assert {"Gonzalez", "Maria"} <= found


def test_email_built_from_a_name_confirms_the_name_next_to_it(finder):
    text = "Customer Priya Raman wrote from p.raman@example.net"
    assert [text[f.start:f.end] for f in finder.emails(text)] == ["Priya Raman"]
    assert [text[f.start:f.end] for f in finder.emails("Customer Priya Raman wrote from support@example.net")] == []


def test_honorific_joins_the_person_span(finder):
    text = "Please correct it to Dr. Emma Tyndall."
    ner = [Finding("PERSON", text.index("Emma"), text.index("Emma") + len("Emma Tyndall"), 0.85, "spacy_ner")]
    assert "Dr. Emma Tyndall" in person_values(finder, text, ner)


def test_org_span_of_known_names_is_retyped_person(finder):
    text = "Priya Raman explained the plan."
    ner = [Finding("ORGANIZATION", 0, 11, 0.85, "spacy_ner", explanation="spacy")]
    out = finder.detect(text, ner)
    assert any(f.entity_type == "PERSON" and (f.start, f.end) == (0, 11) for f in out)


def test_company_span_is_not_retyped(finder):
    text = "Amkor Technology Inc. reported results."
    ner = [Finding("ORGANIZATION", 0, 21, 0.85, "spacy_ner", explanation="spacy")]
    out = finder.detect(text, ner)
    assert any(f.entity_type == "ORGANIZATION" and (f.start, f.end) == (0, 21) for f in out)


@pytest.mark.parametrize("text", [
    "Please send the invoice for order 48213 by Monday.",
    "The Pro plan renews next week; the router ships from the warehouse.",
    "Mission Statement: we will grant access to the billing team.",
    "Latency was 40 ms under load.",
])
def test_ordinary_text_has_no_person(finder, text):
    assert person_values(finder, text) == set()


def test_a_name_found_by_several_rules_is_one_finding(finder):
    text = "Customer Priya Raman wrote from p.raman@example.net"
    assert [text[f.start:f.end] for f in finder.detect(text, []) if f.entity_type == "PERSON"] == ["Priya Raman"]


def test_job_titles_are_found(finder):
    text = "I used to work there as Semiconductor processing technician, but quit."
    titles = {text[f.start:f.end] for f in finder.detect(text, []) if f.entity_type == "TITLE"}
    assert titles == {"Semiconductor processing technician"}


def test_public_organisations_are_recognised_and_customers_are_not():
    assert public_org("OpenAI") and public_org("the GitHub")
    assert not public_org("Brightpath Consulting")


def _ner(text, value, label="PERSON"):
    start = text.index(value)
    return Finding(label, start, start + len(value), 0.85, "spacy_ner")


@pytest.mark.parametrize("text, ner_span, name", [
    ("Customer Lucía Fernández asked to close the account.", "Customer Lucía Fernández", "Lucía Fernández"),
    ("hey marco,\ncan you check", "hey marco", "marco"),
    ("Payroll correction: Nadia Hassan's SSN was keyed wrong.", "Nadia Hassan's", "Nadia Hassan"),
])
def test_ner_person_span_loses_the_words_around_the_name(finder, text, ner_span, name):
    found = [f for f in finder.detect(text, [_ner(text, ner_span)]) if f.recognizer == "spacy_ner"]
    assert [text[f.start:f.end] for f in found] == [name]


@pytest.mark.parametrize("text, ner_span, label", [
    ("Visitor badge 223 was returned.", "Visitor", "ORGANIZATION"),
    ("Attacker changed the recovery email.", "Attacker", "PERSON"),
    ("she might intro us to them", "intro", "PERSON"),
    ("Step 4/9 : TODO check", "TODO", "ORGANIZATION"),
    ("[ci] retrying with REDIS_PASSWORD=r3d1s", "REDIS_PASSWORD=", "PERSON"),
    ("outage for 40 minutes on EU traffic", "40 minutes", "DATE_TIME"),
    ("Reports migraines 3x/week.", "3x/week", "DATE_TIME"),
    ("update the delivery address on order 1009-22-1187 to:", "1009-22-1187", "DATE_TIME"),
])
def test_ner_span_that_is_no_name_or_date_is_dropped(finder, text, ner_span, label):
    assert [f for f in finder.detect(text, [_ner(text, ner_span, label)]) if f.recognizer == "spacy_ner"] == []


@pytest.mark.parametrize("text, ner_span, label, kept", [
    ("Grace Hopper wrote the compiler.", "Grace Hopper", "PERSON", "Grace Hopper"),
    ("Thanks again, Grace.", "Grace", "PERSON", "Grace"),
    ("Mr. White is a 55 year old man.", "White", "PERSON", "Mr. White"),
    ("I am zairean but I live in Canada.", "zairean", "PERSON", "zairean"),
    ("We'll meet at 722 Hudevad Byvej 50, Ishøj", "722 Hudevad Byvej", "PERSON", "722 Hudevad Byvej"),
    ("Seen on 2024-03-02 at the clinic.", "2024-03-02", "DATE_TIME", "2024-03-02"),
    ("Born 04/17/1985 in Ohio.", "04/17/1985", "DATE_TIME", "04/17/1985"),
])
def test_ner_names_places_and_dates_are_kept(finder, text, ner_span, label, kept):
    found = [f for f in finder.detect(text, [_ner(text, ner_span, label)]) if f.recognizer == "spacy_ner"]
    assert [text[f.start:f.end] for f in found] == [kept]


def test_a_name_found_once_is_found_again_as_a_whole_word_only(finder):
    text = "Thanks Advik. Advik-Rao is his team; ask Advik again, not Advikar."
    found = [(f.start, f.end) for f in finder.detect(text, []) if f.entity_type == "PERSON"]
    starts = [i for i in range(len(text)) if text.startswith("Advik", i)]
    assert [(s, s + 5) for s in starts[:3]] == [span for span in found if text[span[0]:span[1]] == "Advik"]
    assert all(text[s:e] != "Advikar" and not (s <= starts[3] < e) for s, e in found)
