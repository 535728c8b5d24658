"""Structured payloads end to end: the shipped labeling-vendor and LLM policies
through the real gateway to a real upstream that records what arrived."""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import json
import zlib

import brotli
import httpx
import pytest
from support import REPO, post

from gateway.audit import AuditLog
from gateway.keys import LocalKeyProvider

LABELING = (REPO / "policies" / "labeling-vendor.yaml").read_text()
LLM = (REPO / "policies" / "llm-api-structured.yaml").read_text()
TASKS = "/acme/v1/tasks"
EMAIL, SSN, NOTE = "jane.doe@example.com", "536-22-8841", "churn risk, offer 30% discount"


def task(i: int, ssn: str = "", customer_id=None) -> dict:
    return {"id": i, "data": {"text": f"Ticket {i}: please reply to {EMAIL} about the refund"},
            "meta": {"customer_id": 900000 + i if customer_id is None else customer_id,
                     "internal_notes": NOTE, "ssn": ssn}}


def jsonl(tasks) -> bytes:
    return b"".join(json.dumps(t).encode() + b"\n" for t in tasks)


def csv_upload(tasks) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["id", "text", "customer_id", "internal_notes", "ssn"])
    for t in tasks:
        w.writerow([t["id"], t["data"]["text"], t["meta"]["customer_id"], t["meta"]["internal_notes"], t["meta"]["ssn"]])
    return out.getvalue().encode()


@pytest.fixture
async def labeling(upstream, write_config, start_gateway):
    return await start_gateway(write_config(upstream.url, LABELING))


async def audit_records(gw, n):
    log = AuditLog.in_data_dir(gw.data_dir, LocalKeyProvider.in_data_dir(gw.data_dir))
    for _ in range(100):
        if len(log.records()) >= n:
            return log.records()
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} audit records")


def assert_task_protected(got: dict, i: int):
    assert got["id"] == i
    assert EMAIL not in got["data"]["text"] and got["data"]["text"].startswith(f"Ticket {i}: please reply to ")
    assert isinstance(got["meta"]["customer_id"], str) and got["meta"]["customer_id"].startswith("CUSTOMER_ID_")
    assert "internal_notes" not in got["meta"]
    assert got["meta"]["ssn"] == ""


async def test_jsonl_batch_is_scanned_tokenized_and_trimmed_line_by_line(labeling, upstream):
    r = await post(labeling, TASKS, jsonl([task(1), task(2), task(1)]), "application/x-ndjson")
    assert r.status_code == 200, r.text
    lines = upstream.received[0].body.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    got = [json.loads(line) for line in lines[:-1]]
    for i, t in zip((1, 2, 1), got):
        assert_task_protected(t, i)
    assert got[0]["meta"]["customer_id"] == got[2]["meta"]["customer_id"] != got[1]["meta"]["customer_id"]
    assert NOTE.encode() not in upstream.received[0].body
    [record] = await audit_records(labeling, 1)
    assert record["actions"]["tokenize"] == 3 and record["actions"]["drop"] == 3
    assert record["findings"]["EMAIL_ADDRESS"] == 3


async def test_an_ssn_anywhere_in_the_batch_blocks_it_and_nothing_is_forwarded(labeling, upstream):
    r = await post(labeling, TASKS, jsonl([task(1), task(2, ssn=SSN), task(3)]), "application/jsonl")
    assert r.status_code == 403
    assert "$.meta.ssn" in r.json()["error"] and SSN not in r.text
    assert upstream.received == []
    [record] = await audit_records(labeling, 1)
    assert record["decision"] == "blocked" and SSN not in json.dumps(record)


async def test_json_array_of_tasks_follows_the_same_rules(labeling, upstream):
    r = await post(labeling, TASKS, json.dumps([task(1), task(2)]).encode(), "application/json")
    assert r.status_code == 200, r.text
    got = upstream.received[0].json()
    assert len(got) == 2
    for i, t in zip((1, 2), got):
        assert_task_protected(t, i)
    r = await post(labeling, TASKS, json.dumps([task(1), task(2, ssn=SSN)]).encode(), "application/json")
    assert r.status_code == 403 and len(upstream.received) == 1


async def test_csv_upload_follows_the_same_rules_by_column(labeling, upstream):
    r = await post(labeling, TASKS, csv_upload([task(1), task(2)]), "text/csv")
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(upstream.received[0].text)))
    assert rows[0] == ["id", "text", "customer_id", "ssn"]
    assert [row[0] for row in rows[1:]] == ["1", "2"]
    for row in rows[1:]:
        assert EMAIL not in row[1] and row[1].startswith("Ticket ")
        assert row[2].startswith("CUSTOMER_ID_") and row[3] == ""
    r = await post(labeling, TASKS, csv_upload([task(1, ssn=SSN)]), "text/csv")
    assert r.status_code == 403 and "column ssn" not in r.text or SSN not in r.text
    assert len(upstream.received) == 1


async def test_multipart_jsonl_file_is_scanned_and_a_binary_part_is_refused_by_default(labeling, upstream):
    files = {"tasks": ("batch.jsonl", jsonl([task(5)]), "application/octet-stream")}
    async with httpx.AsyncClient(timeout=120) as client:
        r = await client.post(labeling.url + "/acme/upload", data={"project": "p1"}, files=files)
    assert r.status_code == 200, r.text
    body = upstream.received[0].body
    assert upstream.received[0].headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="project"\r\n\r\np1\r\n' in body
    start = body.index(b"\r\n\r\n", body.index(b'filename="batch.jsonl"')) + 4
    assert_task_protected(json.loads(body[start:body.index(b"\n", start)]), 5)

    files["scan"] = ("scan.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "image/png")
    async with httpx.AsyncClient(timeout=120) as client:
        r = await client.post(labeling.url + "/acme/upload", files=files)
    assert r.status_code == 415 and "part 2" in r.json()["error"]
    assert len(upstream.received) == 1


async def test_binary_part_passes_with_its_sha256_in_the_audit_when_policy_allows(upstream, write_config, start_gateway):
    import hashlib

    gw = await start_gateway(write_config(upstream.url, LABELING.replace("unknown_content: block", "unknown_content: pass")))
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    files = {"tasks": ("batch.jsonl", jsonl([task(5)]), "application/x-ndjson"), "scan": ("scan.png", image, "image/png")}
    async with httpx.AsyncClient(timeout=120) as client:
        r = await client.post(gw.url + "/acme/upload", files=files)
    assert r.status_code == 200, r.text
    assert image in upstream.received[0].body and NOTE.encode() not in upstream.received[0].body
    [record] = await audit_records(gw, 1)
    assert record["unscanned_parts"] == [{"part": 2, "content_type": "image/png", "bytes": len(image),
                                          "sha256": hashlib.sha256(image).hexdigest()}]


@pytest.mark.parametrize("encoding,compress", [
    ("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress),
])
async def test_compressed_jsonl_is_decoded_scanned_and_forwarded_as_identity(labeling, upstream, encoding, compress):
    r = await post(labeling, TASKS, compress(jsonl([task(1), task(2)])), "application/x-ndjson", headers={"Content-Encoding": encoding})
    assert r.status_code == 200, r.text
    got = upstream.received[0]
    assert "Content-Encoding" not in got.headers
    for i, line in zip((1, 2), got.body.splitlines()):
        assert_task_protected(json.loads(line), i)


async def test_jsonl_decompression_bomb_is_413_and_nothing_is_forwarded(labeling, upstream):
    bomb = gzip.compress(jsonl([task(1)]) * 200_000)
    r = await post(labeling, TASKS, bomb, "application/x-ndjson", headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413
    assert upstream.received == []


@pytest.mark.parametrize("body,ctype,message", [
    (b'{"id": 1, "data": {"text": "x"}', "application/json", "invalid JSON at line 1 column 32"),
    (b'{"id": 1}\n{"id": 2,,}\n', "application/x-ndjson", "JSON Lines line 2: invalid JSON at line 1 column 10"),
    (b"id,text\r\n1,ok\r\n2,too,many\r\n", "text/csv", "invalid CSV at line 3: expected 2 fields"),
    (b'id,text\r\n1,"open quote\r\n', "text/csv", "invalid CSV at line"),
    (b'[{"id": 1} {"id": 2}]', "application/json", "invalid JSON at line 1 column 12"),
])
async def test_malformed_bodies_get_a_clear_400_and_nothing_is_forwarded(labeling, upstream, body, ctype, message):
    r = await post(labeling, TASKS, body, ctype)
    assert r.status_code == 400
    assert message in r.json()["error"]
    assert upstream.received == []


async def test_bad_lines_drop_forwards_the_good_lines_and_counts_the_bad(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, LABELING.replace("bad_lines: block", "bad_lines: drop")))
    body = jsonl([task(1)]) + b"{not json\n" + jsonl([task(3)])
    r = await post(gw, TASKS, body, "application/x-ndjson")
    assert r.status_code == 200, r.text
    got = [json.loads(line) for line in upstream.received[0].body.splitlines()]
    assert [t["id"] for t in got] == [1, 3]
    [record] = await audit_records(gw, 1)
    assert record["actions"]["drop_line"] == 1


async def test_form_rules_apply_to_urlencoded_fields(upstream, write_config, start_gateway):
    policy = LABELING.replace("field_default: scan", "field_default: scan").replace(
        "    action: block           # present", "    form: ssn\n    action: block           # present")
    policy = policy.replace("    column: internal_notes\n", "    column: internal_notes\n    form: internal_notes\n")
    gw = await start_gateway(write_config(upstream.url, policy))
    r = await post(gw, TASKS, f"note=write+to+{EMAIL}&internal_notes=vip".encode(), "application/x-www-form-urlencoded")
    assert r.status_code == 200, r.text
    assert upstream.received[0].text.startswith("note=write+to+") and "internal_notes" not in upstream.received[0].text
    assert EMAIL not in upstream.received[0].text.replace("%40", "@")
    r = await post(gw, TASKS, f"note=x&ssn={SSN}".encode(), "application/x-www-form-urlencoded")
    assert r.status_code == 403 and len(upstream.received) == 1


async def test_llm_tool_call_arguments_are_parsed_scanned_and_reserialised(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, LLM))
    request = {
        "model": "gpt-4o", "user": "user-4411", "temperature": 0.2,
        "metadata": {"internal": {"ticket": "T-99"}, "team": "support"},
        "messages": [
            {"role": "user", "content": f"Please send the receipt to {EMAIL}"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
                "name": "send_receipt",
                "arguments": json.dumps({"to": EMAIL, "card_number": "4111 1111 1111 1111", "amount": 12.5})}}]},
        ],
    }
    async with httpx.AsyncClient(timeout=120) as client:
        r = await client.post(gw.url + "/acme/v1/chat/completions", json=request)
    assert r.status_code == 200, r.text
    got = upstream.received[0].json()
    assert got["model"] == "gpt-4o" and got["temperature"] == 0.2
    assert got["metadata"] == {"team": "support"}
    assert got["user"].startswith("END_USER_")
    assert EMAIL not in upstream.received[0].text
    assert got["messages"][0]["content"].startswith("Please send the receipt to EMAIL_ADDRESS_")
    args = json.loads(got["messages"][1]["tool_calls"][0]["function"]["arguments"])
    assert args["to"].startswith("EMAIL_ADDRESS_") and args["amount"] == 12.5
    assert args["card_number"].endswith("1111") and "4111" not in args["card_number"]
    assert args["to"] == got["messages"][0]["content"].split()[-1]


async def test_a_body_no_rule_changes_is_forwarded_byte_for_byte(labeling, upstream):
    body = b'{"id": 1,   "data": {"text": "nothing to see"}}\n'
    r = await post(labeling, TASKS, body, "application/x-ndjson")
    assert r.status_code == 200
    assert upstream.received[0].body == body
