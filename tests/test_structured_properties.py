"""Property tests: any JSON document in gives valid JSON out, with the same
structure except where the policy drops fields. The walk and render are tested
directly with synthetic replacements (no detectors), plus a few documents end
to end through the gateway."""

from __future__ import annotations

import json

import httpx
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from gateway.payload.formats import Shape, body_units
from gateway.payload.jsonbody import is_id_number
from gateway.policy.fields import FieldRule, RuleSet, compile_selector

KEYS = st.sampled_from(["a", "b", "secret", "name", "é", "x y", "'q'", "\\"]) | st.text(max_size=6)
SCALARS = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEYS, kids, max_size=4),
                    max_leaves=25)


def shape(rules=(), nested=False):
    return Shape(RuleSet([FieldRule.model_validate(r) for r in rules]), nested, "block", "block")


def render(doc, sh, replace) -> bytes:
    out = b""
    for unit in body_units(json.dumps(doc).encode(), "application/json", sh):
        out += unit.emit({i: replace(i, f) for i, f in enumerate(unit.fields)})
    return out


def skeleton(node):
    """Structure with every scannable text (strings, keys, id numbers) made the same."""
    if isinstance(node, dict):
        return sorted(json.dumps(skeleton(v), sort_keys=True) for v in node.values())
    if isinstance(node, list):
        return [skeleton(v) for v in node]
    if isinstance(node, str) or is_id_number(node):
        return "S"
    return node


def without(node, name):
    if isinstance(node, dict):
        return {k: without(v, name) for k, v in node.items() if k != name}
    if isinstance(node, list):
        return [without(v, name) for v in node]
    return node


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_with_every_field_replaced_is_valid_json_of_the_same_structure(doc):
    out = json.loads(render(doc, shape(), lambda i, f: f"R{i}"))
    assert skeleton(out) == skeleton(doc)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_any_json_without_replacements_round_trips_to_the_same_value(doc):
    out = json.loads(render(doc, shape([{"select": "$..nothing", "action": "drop"}]), lambda i, f: f.text))
    assert out == doc


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_a_drop_rule_removes_exactly_the_selected_members(doc):
    out = json.loads(render(doc, shape([{"select": "$..secret", "action": "drop"}]), lambda i, f: f.text))
    assert out == without(doc, "secret")


@settings(max_examples=200, deadline=None)
@given(JSON, st.text(max_size=20))
def test_nested_json_strings_stay_valid_json_strings(doc, extra):
    """An object or array in a string is walked inside and written back as a string of JSON
    of the same structure; any other string (a JSON scalar too) is one field, replaced whole."""
    wrapper = {"arguments": json.dumps(doc), "plain": extra}

    def replace(i, f):
        if f.path == "$['arguments']":  # the key, or the whole string when it was not walked inside
            return f.text if f.kind == "key" else "WHOLE"
        return f"R{i}"

    out = json.loads(render(wrapper, shape(nested=True), replace))
    assert isinstance(out["arguments"], str)
    if isinstance(doc, (dict, list)):
        assert skeleton(json.loads(out["arguments"])) == skeleton(doc)
    else:
        assert out["arguments"] == "WHOLE"


SELECTORS = ["$.a", "$['b'][0]", "$..secret", "$.*", "$[*].a", "$..[1]", "$.a..name", "$['x y']", "$..*", "$"]


def all_paths(node, segs=()):
    yield segs
    if isinstance(node, dict):
        for k, v in node.items():
            yield from all_paths(v, segs + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from all_paths(v, segs + (i,))


@settings(max_examples=300, deadline=None)
@given(JSON, st.sampled_from(SELECTORS))
def test_fast_selector_matching_agrees_with_the_jsonpath_library(doc, selector):
    from gateway.policy.fields import normalized_path

    assume(not isinstance(doc, str))  # the library reads a str argument as JSON text
    rules = RuleSet([FieldRule(select=[selector], action="drop")])
    [sel] = rules.selectors
    assert sel.steps is not None
    ours = {normalized_path(p) for p in all_paths(doc) if sel.matches(p)}
    theirs = {m.path for m in compile_selector(selector).finditer(doc)}
    assert ours == theirs


POLICY = """
name: props
detect: [EMAIL_ADDRESS]
actions:
  EMAIL_ADDRESS: redact
fields:
  - {select: "$..secret", action: drop}
  - {select: "$..token", action: tokenize}
"""

DOCS = [
    {"é": ["x@example.com", 1.5e300, -0.0, 12345678901234567890], "secret": {"deep": "x"}},
    [[], {}, [{"token": 42, "secret": None, "a": [True, False, None]}], "mail a@b.example.org now"],
    {"x@example.com": {"token": {"inner": ["v", 1234567]}}, "n": 0.1},
    "just a string with z@example.net",
]


async def test_documents_end_to_end_stay_valid_json_with_drops_applied(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, POLICY))
    async with httpx.AsyncClient(timeout=60) as client:
        for doc in DOCS:
            r = await client.post(gw.url + "/acme/x", json=doc)
            assert r.status_code == 200, r.text
    for doc, got in zip(DOCS, upstream.received):
        out = got.json()
        assert "@example" not in got.text
        assert skeleton(without(out, "token")) == skeleton(without(without(doc, "secret"), "token"))
        assert "secret" not in got.text
    assert upstream.received[1].json()[2][0]["token"].startswith("TOKEN_")
