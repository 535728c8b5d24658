"""Each action on its own."""

import base64

from gateway.actions import ActionContext, get_action
from gateway.keys import ENV_VAR, LocalKeyProvider


def ctx(vendor="acme", entity="EMAIL_ADDRESS", **options):
    keys = LocalKeyProvider("/nonexistent", env={ENV_VAR: base64.b64encode(b"k" * 32).decode()})
    return ActionContext(vendor=vendor, entity_type=entity, keys=keys, options=options)


def test_mask_keeps_last_characters_and_separators():
    assert get_action("mask").apply("4111 1111 1111 1234", ctx(keep=4)).text == "**** **** **** 1234"
    assert get_action("mask").apply("abc", ctx(keep=0, char="#")).text == "###"


def test_redact_names_the_entity_type():
    assert get_action("redact").apply("a@b.com", ctx()).text == "<EMAIL_ADDRESS>"


def test_hash_is_keyed_per_vendor_and_truncated():
    a1 = get_action("hash").apply("536-22-8841", ctx(entity="US_SSN")).text
    a2 = get_action("hash").apply("536-22-8841", ctx(entity="US_SSN")).text
    b = get_action("hash").apply("536-22-8841", ctx(vendor="other", entity="US_SSN")).text
    assert a1 == a2 != b
    assert a1.startswith("US_SSN_") and len(a1) == len("US_SSN_") + 16


def test_allow_returns_the_value():
    assert get_action("allow").apply("x", ctx()).text == "x"
