"""A top-level JSON array is read through a decoding window a few bytes wide
(the gateway uses 1 MiB): elements, multi-byte characters cut by the window
edge, numbers cut by it, and error positions must all come out as if the whole
body had been decoded and parsed at once."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.payload import jsonarray
from gateway.payload.fields import BodyError
from gateway.payload.formats import Shape, body_units
from gateway.payload.jsonbody import parse, parse_error
from gateway.policy.fields import RuleSet

SCALARS = (st.none() | st.booleans() | st.integers(-10**30, 10**30)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
JSON = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=4), kids, max_size=3),
                    max_leaves=12)
SHAPE = Shape(RuleSet([]), False, "block", "block")


@pytest.fixture(autouse=True)
def tiny_window(monkeypatch):
    monkeypatch.setattr(jsonarray, "PIECE", 3)


def rendered(body: bytes) -> bytes:
    """What the gateway writes for the body (array elements are always re-rendered from what was parsed)."""
    return b"".join(unit.emit({}) for unit in body_units(body, "application/json", SHAPE))


def whole_error(text: str) -> str:
    try:
        parse(text)
    except ValueError as exc:
        return str(parse_error(exc))
    raise AssertionError("expected invalid JSON")


@settings(max_examples=200, deadline=None)
@given(st.lists(JSON, max_size=5), st.sampled_from([None, 0, 2]), st.booleans())
def test_an_array_read_through_a_narrow_window_gives_the_same_elements(items, indent, ascii_only):
    body = json.dumps(items, indent=indent, ensure_ascii=ascii_only).encode()
    assert json.loads(rendered(body)) == json.loads(body)


@settings(max_examples=200, deadline=None)
@given(st.lists(JSON, min_size=1, max_size=4), st.data())
def test_a_cut_or_corrupted_array_reports_the_position_json_loads_would(items, data):
    text = json.dumps(items, indent=data.draw(st.sampled_from([None, 1])), ensure_ascii=False)
    cut = data.draw(st.integers(1, len(text) - 1))
    broken = text[:cut] + data.draw(st.sampled_from(["", "}", "x", ",]", " 1 2"]))
    try:
        json.loads(broken)
    except ValueError:
        pass
    else:
        return
    with pytest.raises(BodyError) as exc:
        rendered(broken.encode())
    assert str(exc.value) == whole_error(broken)


def test_a_long_number_cut_by_the_window_edge_stays_one_number():
    body = b"[123456789012345678901234567890, 7]"
    assert json.loads(rendered(body)) == [123456789012345678901234567890, 7]


def test_invalid_utf8_names_the_byte_of_the_whole_body():
    body = b'["abc", "def", "\xff"]'
    with pytest.raises(BodyError, match=r"not valid utf-8 \(byte 16\)"):
        rendered(body)
