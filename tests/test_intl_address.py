"""International street addresses and US military mail (patterns/intl_address.py, address.py)."""

import pytest

from gateway.detection.patterns import PatternDetector

DETECTOR = PatternDetector({"STREET_ADDRESS", "ZIP_CODE"})


def addresses(text: str, min_score: float = 0.4) -> list[str]:
    return [text[f.start:f.end] for f in DETECTOR.detect(text)
            if f.entity_type == "STREET_ADDRESS" and f.score >= min_score]


@pytest.mark.parametrize("text, street", [
    ("Please ship it to Favoritenstrasse 36, 1040 Wien.", "Favoritenstrasse 36, 1040 Wien"),
    ("Our office: Paul-Nevermann-Platz 77", "Paul-Nevermann-Platz 77"),
    ("Elle habite 8 rue Hedi Labidi depuis mars", "8 rue Hedi Labidi"),
    ("Endereço: Rua Arapiraca 1943 Apt. 559", "Rua Arapiraca 1943 Apt. 559"),
    ("Biuro: ul. Nad Jarem 22", "ul. Nad Jarem 22"),
    ("Sendes til Pernilles vei 115", "Pernilles vei 115"),
    ("Leverans till Alingsåsvägen 42", "Alingsåsvägen 42"),
    ("Ufficio in Via Guantai Nuovi 58", "Via Guantai Nuovi 58"),
    ("office is at 817 4301 Ethels Lane", "817 4301 Ethels Lane"),
])
def test_street_forms_in_many_languages(text, street):
    assert street in addresses(text)


def test_address_block_runs_through_unit_city_country_and_postcode_one_finding_per_line():
    text = "Lena Wirth\n78932 ul. Nad Jarem 22\n Apt. 649\n Gdańsk\n\n Poland 50-346\nThanks for your help"
    assert addresses(text) == ["78932 ul. Nad Jarem 22", "Apt. 649", "Gdańsk", "Poland 50-346"]


def test_number_name_number_needs_a_unit_tail_or_address_word():
    assert addresses("324 Helmstok 174\n Apt. 861\n Almere") == ["324 Helmstok 174", "Apt. 861", "Almere"]
    assert addresses("his address: 9112 Kuuse 53") == ["9112 Kuuse 53"]
    assert addresses("In 2003 Apple sold 3 Macs and Team Alpha 2 won.") == []


@pytest.mark.parametrize("text", [
    "During 2022, Yamato Kogyo invested heavily.",
    "We met at Google 2019 and Version 3 of Python 3 ships.",
    "Call Route 66 or via Slack 3.",
    "Windows 2000 was released in 2000.",
    "The Tie 5 fighters and String 3 quartet.",
])
def test_prose_with_capitalised_words_and_numbers_is_not_an_address(text):
    assert addresses(text) == []


def test_us_military_mail_addresses_and_their_zip():
    text = "Send it to PSC 6291, Box 6032\nAPO AA 82825 or USNS Comfort\nFPO AE 09587."
    found = [(f.entity_type, text[f.start:f.end]) for f in DETECTOR.detect(text)]
    assert ("STREET_ADDRESS", "PSC 6291, Box 6032\nAPO AA 82825") in found
    assert ("STREET_ADDRESS", "USNS Comfort\nFPO AE 09587") in found
    assert ("ZIP_CODE", "82825") in found
    assert addresses("PSC 6291 was discussed at the APO meeting") == []


def test_a_capitalised_label_after_the_address_is_not_part_of_it():
    text = "address 2419 Mission St\nSan Francisco, CA 94110, DOB Aug 19, 1988"
    assert addresses(text) == ["2419 Mission St\nSan Francisco, CA 94110"]
