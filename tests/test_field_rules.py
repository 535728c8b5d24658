"""Field rules without the detectors: selectors, precedence, drop/allow/block,
whole-value actions, nested JSON, and the format readers' errors."""

from __future__ import annotations

import json
import textwrap

import pytest

from gateway.payload.fields import BodyError
from gateway.payload.formats import Shape, body_units
from gateway.policy import Policy, PolicyError, load_policy
from gateway.policy.fields import FieldRule, RuleSet, lint

TASK = {"id": 7, "data": {"text": "call me"}, "meta": {"customer_id": 12345, "internal_notes": "vip", "ssn": ""}}


def shape(rules, default="scan", nested=False, bad_lines="block", unknown="block"):
    return Shape(RuleSet([FieldRule.model_validate(r) for r in rules], default), nested, bad_lines, unknown)


def units(body: bytes, ctype: str, sh: Shape):
    return list(body_units(body, ctype, sh))


def rendered(body: bytes, ctype: str, sh: Shape, replace=None) -> bytes:
    out = b""
    for unit in units(body, ctype, sh):
        repl = {i: replace(f) for i, f in enumerate(unit.fields)} if replace else {}
        out += unit.emit({k: v for k, v in repl.items() if v is not None})
    return out


def actions_by_path(unit):
    return {f.path: (a.spec.action if a else "scan") for f, a in zip(unit.fields, unit.actions) if f.kind != "key"}


def test_rules_choose_action_per_field_and_drop_removes_key_and_value():
    sh = shape([{"select": "$.meta.internal_notes", "action": "drop"},
                {"select": "$.meta.customer_id", "action": "tokenize"}])
    [unit] = units(json.dumps(TASK).encode(), "application/json", sh)
    assert actions_by_path(unit) == {"$['data']['text']": "scan", "$['meta']['customer_id']": "tokenize",
                                     "$['meta']['ssn']": "scan"}
    out = json.loads(unit.emit({}))
    assert "internal_notes" not in out["meta"] and out["meta"]["customer_id"] == 12345
    assert unit.counts["drop"] == 1


def test_first_matching_rule_wins_including_rules_on_ancestors():
    sh = shape([{"select": "$.meta.customer_id", "action": "allow"},
                {"select": "$.meta", "action": "drop"}])
    [unit] = units(json.dumps(TASK).encode(), "application/json", sh)
    assert json.loads(unit.emit({}))["meta"] == {"customer_id": 12345}
    sh = shape([{"select": "$.meta", "action": "drop"},
                {"select": "$.meta.customer_id", "action": "allow"}])
    [unit] = units(json.dumps(TASK).encode(), "application/json", sh)
    assert "meta" not in json.loads(unit.emit({}))


def test_block_rule_fires_only_when_the_field_is_present_and_not_empty():
    sh = shape([{"select": "$.meta.ssn", "action": "block"}])
    assert not units(json.dumps(TASK).encode(), "application/json", sh)[0].blocked
    task = dict(TASK, meta={"ssn": "536-22-8841"})
    assert units(json.dumps(task).encode(), "application/json", sh)[0].blocked == "$.meta.ssn"
    task = dict(TASK, meta={})
    assert not units(json.dumps(task).encode(), "application/json", sh)[0].blocked


def test_whole_value_action_covers_every_leaf_under_a_selected_object():
    sh = shape([{"select": "$.meta", "action": "tokenize", "entity_type": "META"}])
    [unit] = units(json.dumps(TASK).encode(), "application/json", sh)
    acts = actions_by_path(unit)
    assert acts["$['meta']['customer_id']"] == "tokenize"
    assert acts["$['meta']['internal_notes']"] == "tokenize"
    assert {a.entity_type for a in unit.actions if a} == {"META"}


def test_replaced_number_becomes_a_string():
    sh = shape([{"select": "$.meta.customer_id", "action": "tokenize"}])
    out = rendered(json.dumps(TASK).encode(), "application/json", sh,
                   lambda f: "CUSTOMER_ID_X" if f.kind == "number" else None)
    assert json.loads(out)["meta"]["customer_id"] == "CUSTOMER_ID_X"


def test_filter_selectors_are_evaluated_by_the_library():
    doc = {"items": [{"kind": "pii", "v": "a"}, {"kind": "ok", "v": "b"}]}
    sh = shape([{"select": "$.items[?@.kind == 'pii']", "action": "drop"}])
    [unit] = units(json.dumps(doc).encode(), "application/json", sh)
    assert json.loads(unit.emit({})) == {"items": [{"kind": "ok", "v": "b"}]}


def test_json_array_is_read_element_by_element_with_indexed_paths():
    body = json.dumps([TASK, TASK]).encode()
    sh = shape([{"select": "$[*].meta", "action": "drop"}])
    got = units(body, "application/json", sh)
    assert len(got) == 4  # "[", two elements, "]"
    assert got[2].fields[0].path == "$[1]['id']"
    assert json.loads(b"".join(u.emit({}) for u in got)) == [{"id": 7, "data": {"text": "call me"}}] * 2


def test_nested_json_in_a_string_is_walked_and_reserialised_only_when_changed():
    args = json.dumps({"email": "a@b.com", "n": 1})
    doc = {"tool_calls": [{"function": {"name": "send", "arguments": args}}]}
    sh = shape([{"select": "$.tool_calls[*].function.arguments.email", "action": "tokenize"}], nested=True)
    [unit] = units(json.dumps(doc).encode(), "application/json", sh)
    assert "$['tool_calls'][0]['function']['arguments']['email']" in actions_by_path(unit)
    index = next(i for i, f in enumerate(unit.fields) if f.text == "a@b.com")
    out = json.loads(unit.emit({index: "EMAIL_1"}))
    assert json.loads(out["tool_calls"][0]["function"]["arguments"]) == {"email": "EMAIL_1", "n": 1}
    name = next(i for i, f in enumerate(unit.fields) if f.text == "send")
    out = json.loads(unit.emit({name: "x"}))
    assert out["tool_calls"][0]["function"]["arguments"] == args


def test_without_nested_json_a_json_string_is_one_field():
    doc = {"arguments": json.dumps({"email": "a@b.com"})}
    [unit] = units(json.dumps(doc).encode(), "application/json", shape([]))
    assert [f.text for f in unit.fields if f.kind == "value"] == [doc["arguments"]]


def test_jsonl_bad_line_is_an_error_with_its_line_number_or_dropped_by_policy():
    body = b'{"a": "x"}\n{"a": \n{"a": "z"}\n'
    with pytest.raises(BodyError) as err:
        units(body, "application/x-ndjson", shape([]))
    assert err.value.status == 400 and "line 2" in str(err.value)
    out = rendered(body, "application/x-ndjson", shape([], bad_lines="drop"))
    assert out == b'{"a": "x"}\n{"a": "z"}\n'


def test_csv_column_rules_and_wrong_field_count():
    body = b"id,text,internal_notes,ssn\r\n1,hello,secret,\r\n2,bye,other,\r\n"
    sh = shape([{"column": "internal_notes", "action": "drop"}, {"column": "ssn", "action": "block"},
                {"column": "id", "action": "allow"}])
    got = units(body, "text/csv", sh)
    # header names the policy names are schema and not scanned; "text" is not named
    assert [[f.text for f in u.fields] for u in got] == [["text"], ["hello"], ["bye"]]
    assert rendered(body, "text/csv", sh) == b"id,text,ssn\r\n1,hello,\r\n2,bye,\r\n"
    assert units(b"ssn\r\n123-45-6789\r\n", "text/csv", sh)[1].blocked == "column ssn"
    with pytest.raises(BodyError, match="line 4: expected 4 fields"):
        units(body + b"3,too,many,fields,here\r\n", "text/csv", sh)
    with pytest.raises(BodyError, match="invalid CSV at line"):
        units(b'a,b\r\n"unterminated,x\r\n', "text/csv", sh)


def test_form_rules_drop_and_keep_order():
    sh = shape([{"form": "password", "action": "drop"}, {"form": "plan", "action": "allow"}])
    [unit] = units(b"email=a%40b.com&password=hunter2&plan=pro", "application/x-www-form-urlencoded", sh)
    assert [f.text for f in unit.fields] == ["email", "a@b.com"]  # "plan" is named by the policy
    assert unit.emit({1: "E"}) == b"email=E&plan=pro"


def multipart(*parts: tuple[str, bytes]) -> bytes:
    out = b""
    for headers, content in parts:
        out += b"--BOUND\r\n" + headers.encode() + b"\r\n\r\n" + content + b"\r\n"
    return out + b"--BOUND--\r\n"


MP = "multipart/form-data; boundary=BOUND"


def test_multipart_file_parts_are_read_as_their_format_and_binaries_follow_unknown_content():
    body = multipart(
        ('Content-Disposition: form-data; name="note"', b"hello"),
        ('Content-Disposition: form-data; name="tasks"; filename="t.jsonl"', b'{"meta": {"internal_notes": "x"}, "t": "a"}\n'),
        ('Content-Disposition: form-data; name="pic"; filename="p.png"\r\nContent-Type: image/png', b"\x89PNG\x00\x01"),
    )
    sh = shape([{"select": "$.meta.internal_notes", "action": "drop"}])
    with pytest.raises(BodyError) as err:
        units(body, MP, sh)
    assert err.value.status == 415 and "part 3" in str(err.value)
    got = units(body, MP, shape([{"select": "$.meta.internal_notes", "action": "drop"}], unknown="pass"))
    texts = [f.text for u in got for f in u.fields]
    assert "hello" in texts and "a" in texts and "x" not in texts
    passed = [u.passed for u in got if u.passed]
    assert passed[0]["content_type"] == "image/png" and len(passed[0]["sha256"]) == 64
    out = b"".join(u.emit({}) for u in got)
    assert b'{"meta":{},"t":"a"}\n' in out and b"\x89PNG\x00\x01" in out and out.endswith(b"--BOUND--\r\n")


def test_multipart_without_changes_renders_identically():
    body = multipart(('Content-Disposition: form-data; name="a"', b"x"),
                     ('Content-Disposition: form-data; name="f"; filename="d.csv"', b"c1,c2\r\n1,2\r\n"))
    assert rendered(body, MP, shape([])) == body


def test_policy_check_warns_about_shadowed_and_impossible_rules(tmp_path):
    rules = [FieldRule.model_validate(r) for r in (
        {"select": "$.meta", "action": "drop"},
        {"select": "$.meta.ssn", "action": "block"},
        {"select": "$..secret", "action": "drop"},
        {"select": "$.a[*].secret", "action": "allow"},
        {"select": "$.items[3:1]", "action": "drop"},
        {"select": "$.other.x", "column": "c", "action": "scan"},
        {"column": "c", "action": "drop"},
    )]
    warnings = lint(rules)
    assert len(warnings) == 4
    assert "rule 2" in warnings[0] and "rule 1" in warnings[0]
    assert "rule 4" in warnings[1] and "rule 3" in warnings[1]
    assert "rule 5" in warnings[2] and "empty" in warnings[2]
    assert "rule 7 column 'c'" in warnings[3]
    assert lint([rules[1], rules[0]]) == []


def test_invalid_selector_and_action_are_policy_errors_with_lines(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent("""
        name: x
        fields:
          - select: "$.meta["
            action: drop
    """).lstrip())
    with pytest.raises(PolicyError, match="p.yaml:3.*invalid JSONPath"):
        load_policy(path)
    path.write_text("name: x\nfields:\n  - {column: a, action: shred}\n")
    with pytest.raises(PolicyError, match="unknown action 'shred'"):
        load_policy(path)
    path.write_text("name: x\nfields:\n  - {action: drop}\n")
    with pytest.raises(PolicyError, match="at least one of select"):
        load_policy(path)


def test_shipped_structured_policies_are_valid_and_lint_clean():
    for name in ("labeling-vendor.yaml", "llm-api-structured.yaml"):
        policy = load_policy(f"policies/{name}")
        assert policy.fields and lint(policy.fields) == []


def test_field_default_applies_to_fields_no_rule_selects():
    policy = Policy(fields=[{"select": "$.keep", "action": "scan"}], field_default="drop")
    sh = Shape(policy.rule_set, False, "block", "block")
    [unit] = units(b'{"keep": "a", "other": "b"}', "application/json", sh)
    assert json.loads(unit.emit({})) == {"keep": "a"}


def test_data_vendor_example_config_raises_the_body_limit_for_the_labeler_only():
    from gateway.config import load_config

    settings = load_config("deploy/data-vendors.yaml")
    assert settings.config.vendors["labeler"].max_body_bytes == 64 * 1024 * 1024
    assert settings.policies["labeler"].fields
