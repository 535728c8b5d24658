import base64
import importlib.util
import re
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from gateway.detection.secrets import RULES, SecretDetector, rule

_spec = importlib.util.spec_from_file_location(
    "secret_cases", Path(__file__).parent / "data" / "secret_cases.py"
)
cases = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("secret_cases", cases)
_spec.loader.exec_module(cases)

DETECTOR = SecretDetector()
GENERIC_IDS = {"generic-password", "generic-api-key"}


def _spans(text):
    return [(f.rule, text[f.start:f.end]) for f in DETECTOR.detect(text)]


@pytest.mark.parametrize("case", cases.HITS, ids=lambda c: c.rule)
def test_rule_finds_exactly_the_secret_value(case):
    assert (case.rule, case.value) in _spans(case.text)


@pytest.mark.parametrize("case", cases.MISSES, ids=lambda c: c.rule)
def test_rule_ignores_near_misses_and_placeholders(case):
    assert case.rule not in {rule for rule, _ in _spans(case.text)}


@pytest.mark.parametrize("text", cases.PROSE)
def test_ordinary_prose_has_no_secret(text):
    assert DETECTOR.detect(text) == []


def test_every_rule_has_a_positive_and_a_negative_case():
    regex_ids = {r.id for r in RULES} - {
        "generic-assignment", "generic-quoted-statement", "generic-xml-element", "generic-key-value-attributes", "generic-cli-flag",
        "generic-c-define", "generic-terraform-variable",
    }
    expected = regex_ids | GENERIC_IDS
    assert expected <= {c.rule for c in cases.HITS}
    assert expected <= {c.rule for c in cases.MISSES}


def test_catalog_has_at_least_sixty_formats_with_unique_ids():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 60


def test_findings_carry_secret_entity_and_recognizer():
    finding = DETECTOR.detect("export GITHUB_TOKEN=" + cases.GITHUB_PAT)[0]
    assert finding.entity_type == "SECRET"
    assert finding.recognizer == "secrets"
    assert finding.rule == "gitleaks:github-pat"
    assert 0.0 <= finding.score <= 1.0


def test_password_assignment_covers_value_not_keyword():
    text = "password=hunter2xyz!"
    [finding] = DETECTOR.detect(text)
    assert text[finding.start:finding.end] == "hunter2xyz!"


def test_specific_rule_wins_over_generic_for_the_same_span():
    text = "GITHUB_TOKEN=" + cases.GITHUB_PAT
    findings = DETECTOR.detect(text)
    assert [(f.rule, text[f.start:f.end]) for f in findings] == [("gitleaks:github-pat", cases.GITHUB_PAT)]


def test_database_url_wins_over_generic_url_credentials():
    text = "postgres://app:Zq81vLw02xPe@db:5432/prod"
    assert [f.rule for f in DETECTOR.detect(text)] == ["database-url-password"]


def test_findings_never_overlap():
    text = (
        'config = {"api_key": "' + cases.GITHUB_PAT + '", "password": "hunter2!",'
        ' "url": "https://u:Zq81vLw02xPe@host/x"}\nAuthorization: Bearer ' + cases.GITHUB_PAT
    )
    findings = sorted(DETECTOR.detect(text), key=lambda f: f.start)
    assert len(findings) == 4
    for a, b in zip(findings, findings[1:]):
        assert a.end <= b.start


def test_several_secrets_in_one_text_are_all_found_in_order():
    text = "a=" + cases.GITHUB_PAT + "\nb: sk_live_" + "Zq81vLw02xPe4KdR7mTy9sNb" + "\n"
    assert [f.rule for f in DETECTOR.detect(text)] == ["gitleaks:github-pat", "gitleaks:stripe-access-token"]


def test_base64_wrapped_secret_is_reported_over_the_whole_blob():
    blob = base64.b64encode(f"token={cases.GITHUB_PAT}".encode()).decode()
    text = f'{{"data": "{blob}"}}'
    [finding] = DETECTOR.detect(text)
    assert finding.rule == "base64:gitleaks:github-pat"
    assert text[finding.start:finding.end] == blob


def test_base32_wrapped_secret_is_reported_over_the_whole_blob():
    blob = base64.b32encode(cases.GITHUB_PAT.encode()).decode().rstrip("=")
    text = f"blob {blob} end"
    [finding] = DETECTOR.detect(text)
    assert finding.rule == "base32:gitleaks:github-pat"
    assert text[finding.start:finding.end] == blob


def test_base64_value_assigned_to_a_name_without_quotes_is_decoded():
    blob = base64.b64encode(f"token={cases.GITHUB_PAT}".encode()).decode()
    text = f"GITHUB_CONFIG_B64={blob}\n"
    [finding] = DETECTOR.detect(text)
    assert finding.rule == "base64:gitleaks:github-pat"
    assert text[finding.start:finding.end] == blob


def test_base64_blob_with_one_mangled_byte_still_decodes():
    raw = bytearray(f"# deploy settings, keep private\nregion = eu-west-1\ntoken={cases.GITHUB_PAT}\n".encode())
    raw[10] = 0xA1  # a lone continuation byte: not UTF-8
    blob = base64.b64encode(bytes(raw)).decode()
    [finding] = DETECTOR.detect(f"data: {blob}")
    assert finding.rule == "base64:gitleaks:github-pat"


def test_bytes_that_are_mostly_not_utf8_are_not_decoded_text():
    from gateway.detection.secrets.encoded import _decoded_text

    noise = bytes(range(128, 256)) * 2
    assert _decoded_text(noise) is None
    text = b"plain text, long enough to be a key's blob: " + noise[:1] + b" and more of it, to sixty-four bytes"
    assert _decoded_text(text) is not None
    assert _decoded_text(b"short text " + noise[:1] + b" with a bad byte") is None


def test_base64_of_plain_prose_is_not_a_secret():
    blob = base64.b64encode(b"just a harmless sentence about the weather today").decode()
    assert DETECTOR.detect(f"payload: {blob}") == []


def test_percent_encoded_secret_is_reported_over_the_whole_string():
    encoded = quote(f"password=Tr0ub4dor&3 token={cases.GITHUB_PAT}", safe="")
    text = f"next={encoded} done"
    [finding] = DETECTOR.detect(text)
    assert finding.rule.startswith("percent:")
    assert text[finding.start:finding.end] == "next=" + encoded


def test_decoding_stops_after_one_level():
    inner = base64.b64encode(f"token={cases.GITHUB_PAT}".encode()).decode()
    outer = base64.b64encode(f"payload {inner} end".encode()).decode()
    assert DETECTOR.detect(outer) == []


def test_disabled_rule_ids_are_not_reported():
    detector = SecretDetector(disabled={"github-pat", "generic-api-key"})
    assert detector.detect("GITHUB_TOKEN=" + cases.GITHUB_PAT) == []


def test_extra_rules_are_applied():
    extra = rule("acme-key", "ACME internal key", r"(?P<secret>acme_[0-9a-f]{24})", ["acme_"])
    text = "k acme_" + "0f1e2d3c4b5a69788796a5b4 end"
    findings = SecretDetector(extra_rules=[extra]).detect(text)
    assert [(f.rule, text[f.start:f.end]) for f in findings] == [("acme-key", "acme_0f1e2d3c4b5a69788796a5b4")]


def test_offsets_stay_exact_after_text_that_changes_length_when_lowercased():
    text = "İstanbul office: GITHUB_TOKEN=" + cases.GITHUB_PAT
    [finding] = DETECTOR.detect(text)
    assert text[finding.start:finding.end] == cases.GITHUB_PAT


def test_finding_repr_does_not_contain_the_secret():
    findings = DETECTOR.detect("GITHUB_TOKEN=" + cases.GITHUB_PAT)
    assert cases.GITHUB_PAT not in repr(findings)


def test_every_rule_has_a_description_and_compiled_regex():
    for r in RULES:
        assert r.description
        assert isinstance(r.regex, re.Pattern)


@pytest.mark.parametrize("text", [
    "my_password=m{{h}o)p${e]nob(ody[finds>-_$#thisone}}",
    "apikey:=m{{h}o)p${e]nob(ody[finds>-_$#thisone}}",
    "some_dict['secret'] = m{{h}o)p${e]nob(ody[finds>-_$#thisone}}",
])
def test_unquoted_value_keeps_brackets_it_opens_and_closes(text):
    assert _spans(text) == [("generic-api-key" if "password" not in text else "generic-password",
                             "m{{h}o)p${e]nob(ody[finds>-_$#thisone}}")]


@pytest.mark.parametrize("text, value", [
    ("connect(password=s3cr3t!9x)", "s3cr3t!9x"),
    ("{token: Ab3kd9Qx7Lm2Pz8}", "Ab3kd9Qx7Lm2Pz8"),
    ("<td>token=Ab3kd9Qx7Lm2Pz8</td>", "Ab3kd9Qx7Lm2Pz8"),
])
def test_unquoted_value_stops_before_the_code_around_it(text, value):
    assert [v for _, v in _spans(text)] == [value]


@pytest.mark.parametrize("text", ["DB_PASSWORD=[value]", "apikey: {{h}o)p${e]nob(ody[finds>-_$#thisone}}",
                                  "login(username=username, password=password)"])
def test_whole_template_or_placeholder_after_trimming_is_not_a_secret(text):
    assert _spans(text) == []


@pytest.mark.parametrize("text", ['api_key "Zq8s!kd92LmXr0Pw";', "fooprivate_key'Zq8s!kd92LmXr0Pw';"])
def test_directive_with_quoted_literal_and_semicolon_is_a_credential(text):
    assert [v for _, v in _spans(text)] == ["Zq8s!kd92LmXr0Pw"]


def test_directive_with_quoted_path_is_not_a_credential():
    assert _spans('private_key "some/dir/aint/a/secret";') == []


def test_discord_token_layout_counts_even_when_its_id_does_not_decode():
    # Discord's documentation example: the layout of a token, its first part not an id in base64.
    token = "MZ1yGvKTjE0rY0cV8i47CjAa.uRHQPq.Xb1Mk2nEhe-4iUcrGOuegj57zMC"
    [found] = DETECTOR.detect(f"bot.run('{token}')")
    assert (found.rule, found.score) == ("discord-bot-token", 0.7)
    bot_id = base64.b64encode(b"198622483471925248").decode()
    [certain] = DETECTOR.detect(f"{bot_id}.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs")
    assert (certain.rule, certain.score) == ("discord-bot-token", 0.9)


@pytest.mark.parametrize("first", ["MZ1yGvKTj0rY0cV8i47CjAa", "MTAyOTQ4MTN5OTU5MTDwMEcxNg0"])
def test_discord_shaped_text_of_another_id_length_needs_a_decodable_id(first):
    assert _spans(f"{first}.uRHQPq.Xb1Mk2nEhe-4iUcrGOuegj57zMC") == []


def test_name_of_an_assignment_does_not_reach_into_the_line_before():
    # "…CzPub" ending the line above once made the name "…CzPubpassword": a public key's name.
    text = "Authorization: Bearer YBJaUlrSvcBfQlmRsH9NmgNptCzPubCMoDBBKIss\npassword: hunter2!\n"
    assert ("generic-password", "hunter2!") in _spans(text)


def test_base64_blob_is_a_whole_run_even_next_to_non_ascii_text():
    from gateway.detection.secrets.encoded import base64_spans

    blob = base64.b64encode(b"password=Zq8s!kd92LmXr0Pw").decode()
    assert list(base64_spans(f"key\u2014{blob}\u2014end")) == [(4, 4 + len(blob))]
    assert list(base64_spans(f"\u00e9{blob}")) == []  # part of a longer word
    assert list(base64_spans(f"{blob}=x")) == []


@pytest.mark.parametrize("data, decoded", [
    ("aGVsbG8gd29ybGQ", b"hello world"), ("aGVsbG8gd29ybGQ=", b"hello world"),
    ("-_8", b"\xfb\xff"), ("+/8=", b"\xfb\xff"), ("aGVsbG8*", None), ("a", None),
])
def test_loose_base64_takes_either_alphabet_with_or_without_padding(data, decoded):
    from gateway.detection.secrets.validators import b64decode_loose

    assert b64decode_loose(data) == decoded


def test_rule_with_a_required_pattern_runs_only_on_texts_that_have_it():
    gated = rule("t-gated", "test", r"zz(?P<secret>\d{6})'", ["zz"], requires=r"!")
    detector = SecretDetector(extra_rules=[gated], own_rules=False, catalogue=False)
    assert [f.rule for f in detector.detect("zz830517' !")] == ["t-gated"]
    assert detector.detect("zz830517'") == []
