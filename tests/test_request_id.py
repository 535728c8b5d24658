"""X-Request-Id (issue 12, part 6): accepted when it looks like an id, else generated; sent to the
vendor and back to the caller; a value posing as an id is never stored or forwarded; JSON log line."""

from __future__ import annotations

import json
import logging

import httpx

from gateway.app.server import RUNTIME_KEY
from gateway.audit import AuditLog
from gateway.keys import LocalKeyProvider

TRACE = "0af7651916cd43dd8448eb211c80319c"
LEAKY = "jane.doe@corp.com_536-22-8841"
CARD = "4111-1111-1111-1111"


async def test_request_id_goes_upstream_and_back_and_a_value_posing_as_one_is_replaced(
        upstream, write_config, start_gateway, caplog):
    caplog.set_level(logging.INFO)
    gw = await start_gateway(write_config(upstream.url, top_extra="log_format: json"))
    assert gw.runner.app[RUNTIME_KEY].settings.config.log_format == "json"
    async with httpx.AsyncClient(timeout=60) as client:
        given = await client.post(f"{gw.url}/acme/v1/x", json={"a": 1}, headers={"X-Request-Id": TRACE})
        leaky = await client.post(f"{gw.url}/acme/v1/x", json={"a": 1}, headers={"X-Request-Id": LEAKY})
        card = await client.post(f"{gw.url}/acme/v1/x", json={"a": 1}, headers={"X-Request-Id": CARD})
        none = await client.post(f"{gw.url}/acme/v1/x", json={"a": 1})
        refused = await client.post(f"{gw.url}/nobody/x", json={"a": 1}, headers={"X-Request-Id": TRACE})
    assert given.headers["X-Request-Id"] == given.headers["X-Vendorgate-Request-Id"] == TRACE
    sent = [{k.lower(): v for k, v in u.headers.items()}["x-request-id"] for u in upstream.received]
    assert sent[0] == TRACE
    ids = [r.headers["X-Request-Id"] for r in (leaky, card, none)]
    assert len(set(ids)) == 3 and all(len(i) == 32 and i not in (LEAKY, CARD) for i in ids)
    assert sent[1:] == ids
    assert refused.status_code == 404 and refused.headers["X-Request-Id"] == TRACE == refused.json()["request_id"]
    await gw.runner.cleanup()
    records = AuditLog.in_data_dir(gw.data_dir, LocalKeyProvider.existing(gw.data_dir)).records()
    assert [r["request_id"] for r in records] == [TRACE, *ids, TRACE]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "vendorgate.proxy"]
    assert [line["request_id"] for line in lines] == [TRACE, *ids, TRACE]
    assert lines[0]["caller"] == "anonymous" and lines[0]["status"] == 200 and lines[-1]["decision"] == "rejected"
    for value in (LEAKY, CARD, "jane.doe", "536-22-8841"):
        assert value not in caplog.text
        assert all(value not in json.dumps(r) for r in records)
