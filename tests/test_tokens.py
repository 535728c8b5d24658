import pytest

from gateway.reversible.tokens import (
    MAX_TOKEN_LENGTH,
    TokenError,
    b32decode,
    b32encode,
    decrypt_token,
    encrypt_token,
    find_tokens,
    surrogate_length,
    tokenize_surrogate,
)


def test_crockford_round_trips_any_bytes():
    for data in (b"", b"\x00", b"\xff" * 7, bytes(range(40))):
        assert b32decode(b32encode(data)) == data


def test_crockford_decode_ignores_case_and_reads_look_alikes():
    encoded = b32encode(b"vendorgate")
    assert b32decode(encoded.lower()) == b"vendorgate"
    assert b32decode("IO") == b32decode("10")


def test_crockford_rejects_characters_outside_the_alphabet():
    with pytest.raises(TokenError):
        b32decode("U0")


def test_same_value_and_vendor_give_the_same_surrogate(keys):
    a = tokenize_surrogate(keys, "openai", "PERSON", "Alice Smith")
    assert a == tokenize_surrogate(keys, "openai", "PERSON", "Alice Smith")
    assert a.startswith("PERSON_") and len(a) == len("PERSON_") + 10


def test_different_vendors_get_different_surrogates(keys):
    assert tokenize_surrogate(keys, "openai", "PERSON", "Alice") != tokenize_surrogate(keys, "anthropic", "PERSON", "Alice")


def test_extended_surrogate_keeps_the_short_one_as_prefix(keys):
    short = tokenize_surrogate(keys, "v", "PERSON", "Alice", surrogate_length(0))
    longer = tokenize_surrogate(keys, "v", "PERSON", "Alice", surrogate_length(1))
    assert longer.startswith(short) and len(longer) == len(short) + 4


def test_encrypt_token_round_trips_and_survives_case_changes(keys):
    token = encrypt_token(keys, "openai", "EMAIL_ADDRESS", "alice@corp.example")
    assert token.startswith("vg1k1_EMAIL_ADDRESS_")
    assert decrypt_token(keys, "openai", token.lower()) == ("EMAIL_ADDRESS", "alice@corp.example")
    assert decrypt_token(keys, "openai", token.upper()) == ("EMAIL_ADDRESS", "alice@corp.example")


def test_tampered_encrypt_token_is_rejected(keys):
    token = encrypt_token(keys, "openai", "PERSON", "Alice")
    last = token[-1]
    tampered = token[:-1] + ("0" if last != "0" else "1")
    with pytest.raises(TokenError):
        decrypt_token(keys, "openai", tampered)


def test_encrypt_token_does_not_open_for_another_vendor_or_type(keys):
    token = encrypt_token(keys, "openai", "PERSON", "Alice")
    with pytest.raises(TokenError):
        decrypt_token(keys, "anthropic", token)
    with pytest.raises(TokenError):
        decrypt_token(keys, "openai", token.replace("_PERSON_", "_LOCATION_"))


def test_encrypt_token_names_its_key_and_stays_readable_after_rotation(keys):
    old = encrypt_token(keys, "v", "PERSON", "Alice")
    keys.rotate()
    new = encrypt_token(keys, "v", "PERSON", "Alice")
    assert old.startswith("vg1k1_") and new.startswith("vg1k2_")
    assert decrypt_token(keys, "v", old) == decrypt_token(keys, "v", new) == ("PERSON", "Alice")


def test_find_tokens_sees_tokens_inside_punctuation_and_markdown(keys):
    tok = tokenize_surrogate(keys, "v", "PERSON", "Alice")
    enc = encrypt_token(keys, "v", "PERSON", "Bob")
    text = f'**{tok}** said "{enc.lower()}". Not tokens: 12PERSON_ABCDEFGHJK, PERSON_SHORT.'
    assert find_tokens(text) == {tok, enc.lower()}


def test_every_token_fits_in_max_token_length(keys):
    enc = encrypt_token(keys, "v", "A" * 40, "x" * 128)
    assert len(enc) <= MAX_TOKEN_LENGTH
