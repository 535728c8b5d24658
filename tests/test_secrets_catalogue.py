"""gitleaks' catalogue loaded as data, its multi-pattern prefilter, and how it joins our rules."""

import json
import random
import string
from pathlib import Path

import pytest

from gateway.detection.multipattern import LiteralPositions, MultiPattern, char_view
from gateway.detection.secrets import SecretDetector, gitleaks
from gateway.detection.secrets.detector import compiled_catalogue

FIXTURES = Path(__file__).resolve().parents[1] / "bench" / "secrets_fixtures"
_rng = random.Random(20251202)


def _rand(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


SCALINGO = "tk-us-" + _rand(string.ascii_letters + string.digits, 48)  # a format only the catalogue knows


def _rules(text: str, **kw) -> list[tuple[str, str]]:
    return [(f.rule, text[f.start:f.end]) for f in SecretDetector(**kw).detect(text)]


def test_every_catalogue_rule_is_loaded_or_reported_with_a_reason():
    import tomllib

    raw = tomllib.loads(gitleaks.DATA.read_text(encoding="utf-8"))["rules"]
    catalogue = gitleaks.load()
    loaded = {r.id.removeprefix(gitleaks.RULE_PREFIX) for r in catalogue.rules}
    assert loaded | set(catalogue.skipped) == {r["id"] for r in raw}
    assert not loaded & set(catalogue.skipped)
    assert all(reason for reason in catalogue.skipped.values())
    assert len(loaded) >= 200


def test_a_rule_re2_cannot_compile_is_reported_not_dropped(tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(
        "[[rules]]\nid = \"lookahead\"\nregex = '''secret(?=x)'''\n"
        "[[rules]]\nid = \"fine\"\nregex = '''fine_[0-9]{4}'''\n", encoding="utf-8")
    catalogue = gitleaks.load(path)
    assert [r.id for r in catalogue.rules] == ["gitleaks:fine"]
    assert "RE2" in catalogue.skipped["lookahead"]


def test_catalogue_finds_a_format_our_rules_lack():
    text = f"deploy with {SCALINGO} today\n"
    assert _rules(text, catalogue=False) == []
    assert _rules(text) == [("gitleaks:scalingo-api-token", SCALINGO)]


def test_catalogue_offsets_are_characters_after_non_ascii_text():
    text = f"İstanbul ofisi, ünlü müşteri — token {SCALINGO} bitti"
    assert _rules(text, own_rules=False) == [("gitleaks:scalingo-api-token", SCALINGO)]


def test_catalogue_rule_allowlist_applies():
    assert _rules("aws_access_key_id = AKIAIOSFODNN7EXAMPLE", own_rules=False) == []


def test_catalogue_entropy_threshold_applies():
    low = "tk-us-" + "ab" * 24
    assert _rules(f"x {low} y", own_rules=False) == []


def test_disabling_a_bare_id_disables_the_catalogue_rule_too():
    text = f"token {SCALINGO}"
    assert _rules(text, disabled={"scalingo-api-token"}) == []
    assert _rules(text, disabled={"gitleaks:scalingo-api-token"}) == []


def test_our_generic_rule_passes_gitleaks_generic_allowlist():
    for text in ("keyPressed = kVK_Return.u16", "KeyPair = X25519.KeyPair"):
        assert _rules(text, catalogue=False), text  # our rule alone would report it
        assert _rules(text) == [], text


def test_our_service_rule_wins_over_the_catalogue_for_the_same_token():
    key = "AKIA" + _rand("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    assert _rules(f"aws_access_key_id = {key}", catalogue=False) == [("aws-access-key-id", key)]
    assert _rules(f"aws_access_key_id = {key}", own_rules=False) == [("gitleaks:aws-access-token", key)]
    assert _rules(f"aws_access_key_id = {key}") == [("aws-access-key-id", key)]


def _fixture_texts() -> list[str]:
    texts = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            case = json.loads(line)
            if "text" in case:
                texts.append(case["text"])
    return texts + ["Ünïcödé prefix — " + t for t in texts[:40]]


def test_hyperscan_prefilter_reports_every_rule_re2_matches():
    pytest.importorskip("hyperscan")
    rules = compiled_catalogue().rules
    prefilter = MultiPattern([r.pattern for r in rules], engine="hyperscan")
    for text in _fixture_texts():
        data = gitleaks.utf8(text)
        exact = {i for i, r in enumerate(rules) if r.regex.search(data)}
        assert exact <= prefilter.candidates(text, data), text


def test_re2_set_engine_is_exact():
    patterns = [r"ghp_[0-9a-zA-Z]{36}", r"(?i)secret\s*=\s*\S{8,}", r"\bAKIA[A-Z2-7]{16}\b"]
    prefilter = MultiPattern(patterns, engine="re2-set")
    text = "secret = hunter2hunter2 and AKIA" + "ABCDEFGHIJKLMNOP"
    assert prefilter.candidates(text, text.encode()) == {1, 2}
    assert prefilter.engine == "re2-set"


def test_char_view_has_one_byte_per_character():
    text = "naïve — 東京 ok"
    assert len(char_view(text)) == len(text)
    assert char_view("plain ascii") == b"plain ascii"


@pytest.mark.parametrize("engine", ["auto", "aho-corasick"])
def test_keyword_positions_are_every_occurrence_overlapping_ones_too(engine):
    lowered = "naïve — aaaa key=x; ://a monkey://"
    found = LiteralPositions(["aa", "key", "://", "-us"], engine=engine).starts(lowered)
    assert found == {"aa": [8, 9, 10], "key": [13, 28], "://": [20, 31]}
