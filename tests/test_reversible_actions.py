import pytest

from gateway.actions.base import ActionContext
from gateway.actions.encrypt import Encrypt
from gateway.actions.fpe import FPE, FPEDomainTooSmall, luhn_check_digit
from gateway.actions.synthetic import Synthetic
from gateway.actions.tokenize import Tokenize
from gateway.reversible.tokens import decrypt_token, fingerprint


def ctx(keys, entity_type, vendor="openai", collisions=None, **options):
    return ActionContext(vendor, entity_type, keys, options, collisions or {})


def luhn_valid(number: str) -> bool:
    return luhn_check_digit(number[:-1]) == number[-1]


def test_tokenize_issues_a_stable_surrogate(keys):
    c = ctx(keys, "PERSON")
    replaced = Tokenize().apply("Alice Smith", c)
    first = replaced.text
    assert first == Tokenize().apply("Alice Smith", c).text
    assert replaced.issued[0].surrogate == first and replaced.issued[0].original == "Alice Smith"
    assert replaced.issued[0].entity_type == "PERSON"


def test_tokenize_gives_a_longer_surrogate_after_a_collision(keys):
    plain = Tokenize().apply("Alice", ctx(keys, "PERSON")).text
    fp = fingerprint(keys, "openai", "PERSON", "Alice")
    extended = Tokenize().apply("Alice", ctx(keys, "PERSON", collisions={fp: 1})).text
    assert extended != plain and len(extended) == len(plain) + 4


def test_encrypt_makes_a_self_contained_token(keys):
    c = ctx(keys, "PERSON")
    replaced = Encrypt().apply("Alice", c)
    token = replaced.text
    assert replaced.issued == ()
    assert decrypt_token(keys, "openai", token) == ("PERSON", "Alice")


def test_encrypt_falls_back_to_a_vault_surrogate_for_long_values(keys):
    c = ctx(keys, "ADDRESS")
    replaced = Encrypt().apply("x" * 200, c)
    out = replaced.text
    assert out.startswith("ADDRESS_") and replaced.issued[0].original == "x" * 200


def test_fpe_keeps_digits_length_and_separators(keys):
    c = ctx(keys, "PHONE_NUMBER")
    replaced = FPE().apply("+1 (415) 555-0142", c)
    out = replaced.text
    assert out != "+1 (415) 555-0142"
    assert [ch.isdigit() for ch in out] == [ch.isdigit() for ch in "+1 (415) 555-0142"]
    assert [ch for ch in out if not ch.isdigit()] == list("+ () -")
    assert replaced.issued[0].surrogate == out


def test_fpe_is_deterministic_per_vendor_and_differs_across_vendors(keys):
    a = FPE().apply("123456789", ctx(keys, "ACCOUNT")).text
    assert a == FPE().apply("123456789", ctx(keys, "ACCOUNT")).text
    assert a != FPE().apply("123456789", ctx(keys, "ACCOUNT", vendor="anthropic")).text


def test_fpe_with_luhn_keeps_card_numbers_valid(keys):
    for card in ("4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"):
        assert luhn_valid("".join(ch for ch in card if ch.isdigit()))
        out = FPE().apply(card, ctx(keys, "CREDIT_CARD", luhn=True)).text
        digits = "".join(ch for ch in out if ch.isdigit())
        assert out != card and len(out) == len(card) and luhn_valid(digits)


def test_fpe_refuses_small_domains(keys):
    with pytest.raises(FPEDomainTooSmall):
        FPE().apply("4821", ctx(keys, "PIN"))
    with pytest.raises(FPEDomainTooSmall):
        FPE().apply("123456", ctx(keys, "CREDIT_CARD", luhn=True))


def test_fpe_falls_back_to_tokenize_after_a_collision(keys):
    fp = fingerprint(keys, "openai", "ACCOUNT", "123456789")
    out = FPE().apply("123456789", ctx(keys, "ACCOUNT", collisions={fp: 1})).text
    assert out.startswith("ACCOUNT_")


def test_synthetic_person_is_a_stable_realistic_name(keys):
    c = ctx(keys, "PERSON")
    replaced = Synthetic().apply("Alice Smith", c)
    fake = replaced.text
    assert fake == Synthetic().apply("Alice Smith", ctx(keys, "PERSON")).text
    assert fake != "Alice Smith" and " " in fake and "_" not in fake
    assert replaced.issued[0].surrogate == fake


def test_synthetic_differs_across_vendors(keys):
    names = {Synthetic().apply(v, ctx(keys, "PERSON", vendor="openai")).text for v in ("Alice", "Bob", "Carol")}
    other = {Synthetic().apply(v, ctx(keys, "PERSON", vendor="anthropic")).text for v in ("Alice", "Bob", "Carol")}
    assert names != other


def test_synthetic_email_uses_reserved_example_domains(keys):
    fake = Synthetic().apply("alice@corp.com", ctx(keys, "EMAIL_ADDRESS")).text
    assert fake.split("@")[1] in {"example.com", "example.org", "example.net"}


def test_synthetic_reseeds_after_a_collision(keys):
    plain = Synthetic().apply("Alice", ctx(keys, "PERSON")).text
    fp = fingerprint(keys, "openai", "PERSON", "Alice")
    assert Synthetic().apply("Alice", ctx(keys, "PERSON", collisions={fp: 1})).text != plain


def test_synthetic_falls_back_to_a_surrogate_for_types_faker_cannot_fake(keys):
    c = ctx(keys, "US_SSN")
    replaced = Synthetic().apply("078-05-1120", c)
    assert replaced.text.startswith("US_SSN_")
    assert replaced.issued[0].original == "078-05-1120"


def test_reversible_actions_say_so():
    assert all(a.reversible for a in (Tokenize(), Encrypt(), FPE(), Synthetic()))
    assert [a.name for a in (Tokenize(), Encrypt(), FPE(), Synthetic())] == ["tokenize", "encrypt", "fpe", "synthetic"]


def test_reversible_actions_are_registered_by_name():
    from gateway.actions import get_action

    assert {type(get_action(n)) for n in ("tokenize", "encrypt", "fpe", "synthetic")} == {Tokenize, Encrypt, FPE, Synthetic}
