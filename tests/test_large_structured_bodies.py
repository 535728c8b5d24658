"""Bodies larger than one send slice (256 KiB) and one decoding window (1 MiB):
the vendor gets exactly the protected body, with a Content-Length and not
chunked, and an unchanged body byte for byte."""

from __future__ import annotations

import csv
import io
import json

import pytest
from support import post

from gateway.payload import sendbody

POLICY = """
name: big-batches
detect: [EMAIL_ADDRESS, US_SSN]
actions: {EMAIL_ADDRESS: {action: mask, keep: 4}, US_SSN: block}
fields:
  - {select: ["$.meta.internal_notes", "$[*].meta.internal_notes"], column: internal_notes, action: drop}
  - {select: ["$.meta.customer_id", "$[*].meta.customer_id"], column: customer_id, action: tokenize}
  - {select: ["$.data.text", "$[*].data.text"], column: text, action: allow}
  - {select: ["$.id", "$[*].id"], column: id, action: allow}
"""
FILLER = "the annotator should label the intent of this support ticket about a delayed refund " * 6
N = 3000


def tasks(keep_notes: bool = True) -> list[dict]:
    out = []
    for i in range(N):
        meta = {"customer_id": f"c-{i:06d}", "internal_notes": "renewal at risk"} if keep_notes else {}
        out.append({"id": i, "data": {"text": f"{i} é {FILLER}"}, "meta": meta})
    return out


@pytest.fixture
async def gw(upstream, write_config, start_gateway):
    return await start_gateway(write_config(upstream.url, POLICY))


def assert_plain_body(received) -> None:
    assert int(received.headers["Content-Length"]) == len(received.body)
    assert "Transfer-Encoding" not in received.headers


def assert_protected(got: list[dict]) -> None:
    assert [t["id"] for t in got] == list(range(N))
    assert all(t["data"]["text"].startswith(f"{t['id']} é ") for t in got)
    ids = [t["meta"]["customer_id"] for t in got]
    assert all(c.startswith("CUSTOMER_ID_") for c in ids) and len(set(ids)) == N
    assert all("internal_notes" not in t["meta"] for t in got)


async def test_a_large_json_lines_batch_arrives_protected_in_full_with_its_length(gw, upstream):
    body = b"".join(json.dumps(t, ensure_ascii=False).encode() + b"\n" for t in tasks())
    assert len(body) > 4 * sendbody.PIECE
    r = await post(gw, "/acme/v1/batch", body, "application/x-ndjson")
    assert r.status_code == 200, r.text
    [received] = upstream.received
    assert_plain_body(received)
    assert_protected([json.loads(line) for line in received.body.splitlines()])


async def test_a_json_array_larger_than_the_decoding_window_arrives_protected_in_full(gw, upstream):
    body = json.dumps(tasks(), ensure_ascii=False, indent=1).encode()
    assert len(body) > 1 << 20
    r = await post(gw, "/acme/v1/batch", body, "application/json")
    assert r.status_code == 200, r.text
    [received] = upstream.received
    assert_plain_body(received)
    assert_protected(received.json())


async def test_a_large_csv_upload_arrives_protected_in_full(gw, upstream):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "text", "customer_id", "internal_notes"])
    for t in tasks():
        writer.writerow([t["id"], t["data"]["text"], t["meta"]["customer_id"], t["meta"]["internal_notes"]])
    r = await post(gw, "/acme/v1/batch", out.getvalue().encode(), "text/csv")
    assert r.status_code == 200, r.text
    [received] = upstream.received
    assert_plain_body(received)
    rows = list(csv.reader(io.StringIO(received.body.decode())))
    assert rows[0] == ["id", "text", "customer_id"] and len(rows) == N + 1
    assert all(row[2].startswith("CUSTOMER_ID_") for row in rows[1:])


async def test_a_large_body_nothing_changes_is_forwarded_byte_for_byte(gw, upstream):
    body = json.dumps(tasks(keep_notes=False), ensure_ascii=False, indent=2).encode()
    r = await post(gw, "/acme/v1/batch", body, "application/json")
    assert r.status_code == 200, r.text
    [received] = upstream.received
    assert received.body == body
    assert_plain_body(received)


async def test_a_large_body_is_sent_as_slices_of_the_same_buffer():
    body = bytearray(b"x" * (3 * sendbody.PIECE + 5))
    pieces = [piece async for piece in sendbody.request_data(body)]
    assert b"".join(pieces) == body
    assert all(piece.obj is body for piece in pieces)  # views, not copies
    assert sendbody.request_data(b"") is None and sendbody.request_data(b"small") == b"small"
