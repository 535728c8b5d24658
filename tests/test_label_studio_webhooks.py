"""Label Studio webhooks through the gateway (`POST /-/webhooks/<vendor>`): a caller imports tasks
with pre-annotations naming people (shipped `policies/label-studio.yaml`); the loopback Label Studio
posts its real webhook events (ANNOTATION_CREATED, ANNOTATIONS_CREATED, TASKS_CREATED) built from the
tasks it holds, with the shared secret in a custom header; a recording service on 127.0.0.1 (the
company's own) receives them with the original text, values and offsets. Without the right secret:
401, nothing delivered. Another caller's maps are not used; the config is checked with file:line."""

from __future__ import annotations

import json
import logging
import re
import textwrap
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from support import add_callers, as_caller, audit_log, wait_for_records
from vendor_upstreams import LabelStudioVendor

from gateway.config import ConfigError, load_config

REPO = Path(__file__).resolve().parent.parent
SECRET = "whk-7f3a9c2e41d8b6055e1f"
SECRET_ENV = "VG_TEST_LS_WEBHOOK_SECRET"
PEOPLE = [("Priya", "Raman"), ("Oluwaseun", "Adeyemi"), ("Hiroshi", "Tanaka")]
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def task(i: int) -> dict:
    given, surname = PEOPLE[i % len(PEOPLE)]
    full, email = f"{given} {surname}", f"{given.lower()}.{surname.lower()}@acme-corp.com"
    text = f"Ticket {i}: customer {full} called about order {4000 + i}. {given} asked for a refund; reply to {email}."
    spans = [(text.index(full), text.index(full) + len(full)), (text.index(f". {given}") + 2,
                                                                 text.index(f". {given}") + 2 + len(given))]
    return {"data": {"text": text, "customer_id": f"CUST-{1000 + i}"}, "predictions": [{
        "model_version": "ner-v3", "score": 0.9, "result": [
            {"id": f"p{i}-{k}", "from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": s, "end": e, "text": text[s:e], "labels": ["PERSON"]}}
            for k, (s, e) in enumerate(spans)]}]}


def labeled(sent: dict) -> list[dict]:
    """What the labeler submits on the task Label Studio holds: the predicted spans accepted, the
    e-mail address marked by hand, and a comment quoting the customer."""
    text = sent["data"]["text"]
    accepted = [{**r, "id": f"a-{r['id']}", "origin": "prediction"} for r in sent["predictions"][0]["result"]]
    at = EMAIL.search(text)
    return [*accepted,
            {"id": "own-1", "from_name": "label", "to_name": "text", "type": "labels", "origin": "manual",
             "value": {"start": at.start(), "end": at.end(), "text": at.group(), "labels": ["EMAIL"]}},
            {"id": "own-2", "from_name": "comment", "to_name": "text", "type": "textarea", "origin": "manual",
             "value": {"text": [f"Spoke with {accepted[0]['value']['text']}"]}}]


def webhooks_yaml(target: str, caller: str = "annotation-pipeline", secret: str = f"env: {SECRET_ENV}") -> str:
    return textwrap.dedent(f"""\
        format: label-studio
        webhooks:
          target: "{target}"
          secret: {{header: X-Webhook-Secret, {secret}}}
          caller: {caller}
        """)


@pytest_asyncio.fixture
async def label_studio_with_webhooks(write_config, start_gateway, upstream, monkeypatch):
    """(vendor, gateway, caller keys, the company's recording service): tasks imported by `importer`."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    vendors = []

    async def start(importer: str = "annotation-pipeline", secret: str = f"env: {SECRET_ENV}"):
        vendor = await LabelStudioVendor().start()
        vendors.append(vendor)
        policy = (REPO / "policies" / "label-studio.yaml").read_text()
        cfg = write_config(vendor.url, policy=policy, vendor_extra=webhooks_yaml(upstream.url + "/hooks/ls",
                                                                                 secret=secret))
        keys = add_callers(cfg, ["annotation-pipeline", "other-team"])
        gw = await start_gateway(cfg)
        async with httpx.AsyncClient(timeout=300) as client:
            r = await client.post(gw.url + "/acme/api/projects/7/import", json=[task(i) for i in range(3)],
                                  headers=as_caller(keys[importer]))
        assert r.status_code == 201, r.text
        return vendor, gw

    yield start
    for vendor in vendors:
        await vendor.close()


async def records(gw, n: int) -> list[dict]:
    await wait_for_records(gw, n)
    return audit_log(gw.data_dir).records()


def originals_absent(text: str) -> None:
    for given, surname in PEOPLE:
        assert f"{given} {surname}" not in text and surname not in text and "acme-corp" not in text


async def test_an_annotation_webhook_reaches_the_company_with_original_text_values_and_offsets(
        label_studio_with_webhooks, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    vendor, gw = await label_studio_with_webhooks()
    originals_absent(vendor.received_text)  # the labeler only ever saw pseudonyms
    [(tid, sent), *_] = vendor.stored("7")
    event = vendor.annotation_event("7", {tid: labeled(sent)})
    r = await vendor.post_webhook(gw.url + "/-/webhooks/acme", event, {"X-Webhook-Secret": SECRET})
    assert r.status_code == 200 and r.json() == {"delivered": True}
    originals_absent(r.text)  # the company's service echoes the event: none of it goes back to the vendor

    [got] = upstream.received
    assert (got.method, got.path) == ("POST", "/hooks/ls")
    assert got.headers["X-Vendorgate-Webhook"] == "acme" and "X-Webhook-Secret" not in got.headers
    delivered = got.json()
    original = task(0)
    text = original["data"]["text"]
    assert delivered["action"] == "ANNOTATION_CREATED" and delivered["project"] == event["project"]
    assert delivered["task"]["data"] == original["data"]  # the text and the tokenized customer id
    assert delivered["task"]["id"] == tid and delivered["annotation"]["task"] == tid
    result = delivered["annotation"]["result"]
    predicted = original["predictions"][0]["result"]
    assert [r["value"] for r in result[:2]] == [p["value"] for p in predicted]  # offsets into the original
    own = result[2]["value"]
    email = EMAIL.search(text)
    assert (own["start"], own["end"], own["text"]) == (email.start(), email.end(), email.group())
    assert result[3]["value"]["text"] == ["Spoke with Priya Raman"]
    assert text[own["start"]:own["end"]] == own["text"]

    inbound = [rec for rec in await records(gw, 2) if rec.get("direction") == "inbound"]
    assert [(rec["caller"], rec["vendor"], rec["path"], rec["decision"], rec["status"]) for rec in inbound] == [
        ("annotation-pipeline", "acme", "/-/webhooks/acme", "forwarded", 200)]
    assert inbound[0]["restored"] > 0 and inbound[0]["bytes_sent"] == len(got.body)
    stored = json.dumps(await records(gw, 2)) + caplog.text
    originals_absent(stored)
    assert SECRET not in stored


async def test_bulk_annotations_and_created_tasks_are_mapped_back_too(label_studio_with_webhooks, upstream):
    vendor, gw = await label_studio_with_webhooks()
    held = vendor.stored("7")
    bulk = vendor.annotation_event("7", {tid: labeled(t) for tid, t in held}, action="ANNOTATIONS_CREATED")
    created = vendor.tasks_event("7")
    for event in (bulk, created):
        r = await vendor.post_webhook(gw.url + "/-/webhooks/acme", event, {"X-Webhook-Secret": SECRET})
        assert r.status_code == 200, r.text
    got_bulk, got_created = (g.json() for g in upstream.received)
    for i, (t, annotation) in enumerate(zip(got_bulk["task"], got_bulk["annotation"])):
        original = task(i)
        assert t["data"] == original["data"] and annotation["task"] == t["id"]
        assert [r["value"] for r in annotation["result"][:2]] == [p["value"] for p in original["predictions"][0]["result"]]
    assert [t["data"] for t in got_created["tasks"]] == [task(i)["data"] for i in range(3)]


async def test_without_the_right_secret_the_webhook_is_refused_and_nothing_is_delivered(
        label_studio_with_webhooks, upstream, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(SECRET + "\n")
    vendor, gw = await label_studio_with_webhooks(secret=f"file: {secret_file}")
    [(tid, sent), *_] = vendor.stored("7")
    event = vendor.annotation_event("7", {tid: labeled(sent)})
    url = gw.url + "/-/webhooks/acme"
    for headers in ({}, {"X-Webhook-Secret": SECRET[:-1]}, {"X-Webhook-Secret": SECRET + "0"},
                    {"X-Webhook-Secret": SECRET.upper()}, {"Authorization": f"Token {SECRET}"}):
        r = await vendor.post_webhook(url, event, headers)
        assert r.status_code == 401, (headers, r.text)
        assert SECRET not in r.text and "Priya" not in r.text
    r = await vendor.post_webhook(gw.url + "/-/webhooks/nobody", event, {"X-Webhook-Secret": SECRET})
    assert r.status_code == 404
    secret_file.write_text("")  # a secret that cannot be read fails closed
    r = await vendor.post_webhook(url, event, {"X-Webhook-Secret": SECRET})
    assert r.status_code == 503
    assert upstream.received == []
    refused = [rec for rec in await records(gw, 8) if rec.get("direction") == "inbound"]
    assert [rec["status"] for rec in refused] == [401] * 5 + [404, 503]
    assert all(rec["decision"] != "forwarded" for rec in refused)
    assert SECRET not in json.dumps(refused) + caplog.text

    secret_file.write_text(SECRET)  # rotated back: read at each delivery
    r = await vendor.post_webhook(url, event, {"X-Webhook-Secret": SECRET})
    assert r.status_code == 200 and len(upstream.received) == 1


async def test_a_webhook_is_restored_only_in_the_configured_callers_scope(label_studio_with_webhooks, upstream):
    vendor, gw = await label_studio_with_webhooks(importer="other-team")  # not the webhook's caller
    [(tid, sent), *_] = vendor.stored("7")
    r = await vendor.post_webhook(gw.url + "/-/webhooks/acme", vendor.annotation_event("7", {tid: labeled(sent)}),
                                  {"X-Webhook-Secret": SECRET})
    assert r.status_code == 200
    delivered = upstream.received[0].json()
    assert delivered["task"]["data"] == sent["data"]  # another caller's maps and tokens stay as sent
    originals_absent(upstream.received[0].text)


def test_webhook_config_errors_name_the_file_and_line(tmp_path):
    def problems(vendor_extra: str) -> str:
        cfg = tmp_path / "vendorgate.yaml"
        (tmp_path / "policy.yaml").write_text((REPO / "policies" / "label-studio.yaml").read_text())
        cfg.write_text('listen: "127.0.0.1:8080"\nvendors:\n  acme:\n    upstream: "http://127.0.0.1:9"\n'
                       "    policy: policy.yaml\n" + textwrap.indent(vendor_extra, "    "))
        with pytest.raises(ConfigError) as caught:
            load_config(cfg)
        return str(caught.value)

    both = problems(webhooks_yaml("http://127.0.0.1:9/hooks", secret=f"env: {SECRET_ENV}, file: s.txt"))
    assert re.search(r"vendorgate\.yaml:9: vendors\.acme\.webhooks\.secret: .*exactly one of `env`", both), both
    target = problems(webhooks_yaml("ftp://127.0.0.1/hooks"))
    assert re.search(r"vendorgate\.yaml:8: vendors\.acme\.webhooks\.target: .*http", target), target
    scope = problems("restore_scope: request\n" + webhooks_yaml("http://127.0.0.1:9/hooks"))
    assert re.search(r"vendorgate\.yaml:3: vendors\.acme: .*restore_scope: request", scope), scope
    caller = problems(webhooks_yaml("http://127.0.0.1:9/hooks", caller="Not A Caller"))
    assert re.search(r"vendorgate\.yaml:10: vendors\.acme\.webhooks\.caller: ", caller), caller


async def test_a_webhook_secret_that_is_not_set_stops_the_gateway_at_start(write_config, start_gateway, tmp_path,
                                                                          monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    policy = (REPO / "policies" / "label-studio.yaml").read_text()
    with pytest.raises(ConfigError, match=rf"vendors\.acme\.webhooks\.secret\.env: environment variable {SECRET_ENV}"):
        await start_gateway(write_config("http://127.0.0.1:9", policy=policy,
                                         vendor_extra=webhooks_yaml("http://127.0.0.1:9/hooks")))
    (tmp_path / "empty.secret").write_text("\n")
    with pytest.raises(ConfigError, match=r"vendors\.acme\.webhooks\.secret\.file: .* non-empty file"):
        await start_gateway(write_config("http://127.0.0.1:9", policy=policy, vendor_extra=webhooks_yaml(
            "http://127.0.0.1:9/hooks", secret=f"file: {tmp_path / 'empty.secret'}")))
