"""The Labelbox round trip with the shipped policy: data rows go through the gateway (httpx) to a
loopback Labelbox as NDJSON; the vendor gets no original value, ids, global keys, schema ids and
media URLs unchanged; its export NDJSON comes back with the original row data, attachments and
metadata, and each text entity's offsets and token in the original text."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from vendor_upstreams import LabelboxVendor

from gateway.audit import AuditLog
from gateway.keys import LocalKeyProvider

REPO = Path(__file__).resolve().parent.parent
FIXED_KEY = "cm91bmQtdHJpcC1maXhlZC1rZXktZm9yLWxhYmVscyE="

PEOPLE = [("Maria", "Gonzalez"), ("Priya", "Raman"), ("Wei", "Zhang"), ("Oluwaseun", "Adeyemi"),
          ("Hiroshi", "Tanaka"), ("Anna", "Kowalska"), ("Mehmet", "Yilmaz"), ("Siobhan", "O'Connor")]
IMAGE_URL = "https://storage.example.com/acme-tickets/scan-{i}.png?X-Goog-Signature=0a1b2c"
CUSTOMER = re.compile(r"customer (.+?) called")


def labeler(text: str) -> list[tuple[int, int]]:
    """What the vendor's labeler tags: the caller's name, wherever the text says who called."""
    return [m.span(1) for m in CUSTOMER.finditer(text)]


def row(i: int) -> dict:
    given, surname = PEOPLE[i % len(PEOPLE)]
    agent = " ".join(PEOPLE[(i + 3) % len(PEOPLE)])
    return {
        "row_data": f"Ticket {i}: customer {given} {surname} called about order {4000 + i}. "
                    f"Reply to {given.lower()}.{surname.lower().replace(chr(39), '')}@acme-corp.com.",
        "global_key": f"ticket-{i}", "external_id": f"T-{i}", "media_type": "TEXT",
        "attachments": [{"type": "RAW_TEXT", "name": "agent", "value": f"Handled by {agent}"},
                        {"type": "IMAGE", "name": "scan", "value": IMAGE_URL.format(i=i)},
                        {"type": "RAW_TEXT", "name": "internal_notes", "value": f"VIP {i}, refund approved"}],
        "metadata_fields": [{"schema_id": "cko8s9r5v0001h2dk9elqdidh", "name": "customer",
                             "value": f"{given} {surname}"}],
    }


@pytest.fixture
def shipped_labelbox(write_config, start_gateway, monkeypatch):
    monkeypatch.setenv("VENDORGATE_MASTER_KEY", FIXED_KEY)

    async def start(vendor, url: str = "allow"):
        policy = (REPO / "policies" / "labelbox.yaml").read_text().replace("URL: allow", f"URL: {url}")
        return await start_gateway(write_config(vendor.url, policy=policy, vendor_extra="format: labelbox\n"))

    return start


def ndjson(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


async def test_labelbox_rows_reach_the_vendor_without_originals_and_the_export_comes_back_restored(
        shipped_labelbox):
    vendor = await LabelboxVendor(labeler=labeler).start()
    try:
        gw = await shipped_labelbox(vendor)
        rows = [row(i) for i in range(24)]
        async with httpx.AsyncClient(timeout=300) as client:
            r = await client.post(gw.url + "/acme/v1/datasets/ds1/data-rows", content=ndjson(rows),
                                  headers={"Content-Type": "application/x-ndjson"})
            assert r.status_code == 200, r.text
            assert r.json()["data"]["createDataRows"]["createdCount"] == 24
            export = await client.get(gw.url + "/acme/v1/datasets/ds1/export")
        assert export.status_code == 200, export.text

        # What the vendor got: no original, structure byte for byte, the internal notes gone.
        [received] = vendor.received
        seen = vendor.received_text
        assert len(received) == 24
        for i, (sent, original) in enumerate(zip(received, rows)):
            assert (sent["global_key"], sent["external_id"], sent["media_type"]) == (f"ticket-{i}", f"T-{i}", "TEXT")
            assert [a["name"] for a in sent["attachments"]] == ["agent", "scan"]
            assert sent["attachments"][1] == original["attachments"][1]  # a media URL is forwarded as is
            assert sent["metadata_fields"][0]["schema_id"] == "cko8s9r5v0001h2dk9elqdidh"
            assert sent["row_data"].startswith(f"Ticket {i}: customer ") and f"order {4000 + i}" in sent["row_data"]
            [name] = CUSTOMER.findall(sent["row_data"])
            assert name == sent["metadata_fields"][0]["value"]  # one person, one pseudonym, in every field
        for given, surname in PEOPLE:
            for word in (given, surname):
                assert not re.search(rf"(?<!\w){re.escape(word)}(?!\w)", seen, re.IGNORECASE), word
        assert "acme-corp.com" not in seen and "refund approved" not in seen
        pseudonyms = {CUSTOMER.findall(s["row_data"])[0] for s in received}
        assert len(pseudonyms) == len(PEOPLE)  # distinct people stay distinct, the same person is the same

        # The export: one line a data row, restored.
        lines = [json.loads(line) for line in export.text.splitlines() if line.strip()]
        assert len(lines) == 24
        for i, (line, original) in enumerate(zip(lines, rows)):
            data_row = line["data_row"]
            assert (data_row["id"], data_row["global_key"], data_row["external_id"]) == (f"ckrow{i + 1}",
                                                                                        f"ticket-{i}", f"T-{i}")
            text = original["row_data"]
            assert data_row["row_data"] == text
            assert line["attachments"] == original["attachments"][:2]
            assert line["metadata_fields"][0]["value"] == original["metadata_fields"][0]["value"]
            [label] = line["projects"]["cl-project-1"]["labels"]
            [entity] = label["annotations"]["objects"]
            start, end = CUSTOMER.search(text).span(1)
            assert entity["location"] == {"start": start, "end": end - 1, "token": text[start:end]}
            assert entity["feature_schema_id"] == "cl-person"
            name = " ".join(PEOPLE[i % len(PEOPLE)])
            assert label["annotations"]["classifications"][0]["text_answer"]["content"] == f"Caller is {name}"
        for given, surname in PEOPLE:
            assert f"{given} {surname}" in export.text

        # Nothing we protect is written down in clear: the audit records, the vault file (maps included).
        log = AuditLog.in_data_dir(gw.data_dir, LocalKeyProvider.in_data_dir(gw.data_dir))
        for _ in range(100):
            if len(log.records()) >= 2:
                break
            await asyncio.sleep(0.05)
        stored = json.dumps(log.records()) + (gw.data_dir / "vault.sqlite3").read_bytes().decode("latin-1")
        assert '"decision"' in stored
        for given, surname in PEOPLE:
            assert surname not in stored and f"{given} " not in stored
        assert "acme-corp" not in stored
    finally:
        await vendor.close()


async def test_labelbox_json_array_import_is_protected_and_mapped_like_ndjson(shipped_labelbox):
    vendor = await LabelboxVendor(labeler=labeler).start()
    try:
        gw = await shipped_labelbox(vendor)
        rows = [row(i) for i in range(3)]
        async with httpx.AsyncClient(timeout=120) as client:
            r = await client.post(gw.url + "/acme/v1/datasets/ds2/data-rows", json=rows)
            assert r.status_code == 200, r.text
            export = await client.get(gw.url + "/acme/v1/datasets/ds2/export")
        assert "Gonzalez" not in vendor.received_text and "VIP" not in vendor.received_text
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert [line["data_row"]["row_data"] for line in lines] == [r["row_data"] for r in rows]
        for line, original in zip(lines, rows):
            [entity] = line["projects"]["cl-project-1"]["labels"][0]["annotations"]["objects"]
            start, end = CUSTOMER.search(original["row_data"]).span(1)
            assert (entity["location"]["start"], entity["location"]["end"]) == (start, end - 1)
    finally:
        await vendor.close()


async def test_labelbox_block_answers_in_graphql_error_shape_naming_types_not_values(shipped_labelbox):
    vendor = await LabelboxVendor().start()
    try:
        gw = await shipped_labelbox(vendor)
        rows = [row(0), {"row_data": "My SSN is 536-22-8841, call me", "global_key": "ticket-x"}]
        async with httpx.AsyncClient(timeout=120) as client:
            r = await client.post(gw.url + "/acme/v1/datasets/ds3/data-rows", content=ndjson(rows),
                                  headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 403
        assert r.headers["x-should-retry"] == "false"
        body = r.json()
        assert body["data"] is None
        [error] = body["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN" and "US_SSN" in error["extensions"]["entity_types"]
        assert "536-22-8841" not in r.text and "Gonzalez" not in r.text
        assert vendor.received == []
    finally:
        await vendor.close()


async def test_labelbox_annotation_import_offsets_move_to_the_pseudonyms_the_labeler_sees(shipped_labelbox):
    vendor = await LabelboxVendor().start()
    try:
        gw = await shipped_labelbox(vendor)
        rows = [row(i) for i in range(8)]
        annotations = []
        for i, original in enumerate(rows):
            start, end = CUSTOMER.search(original["row_data"]).span(1)
            reply = original["row_data"].index("called about order")  # a span after a replaced value
            annotations += [{"uuid": f"u{i}-name", "dataRow": {"globalKey": f"ticket-{i}"}, "name": "person",
                             "location": {"start": start, "end": end - 1}},
                            {"uuid": f"u{i}-reply", "dataRow": {"globalKey": f"ticket-{i}"}, "name": "phrase",
                             "location": {"start": reply, "end": reply + len("called about order") - 1}}]
        annotations.append({"uuid": "u-other", "dataRow": {"globalKey": "not-imported"}, "name": "person",
                            "location": {"start": 3, "end": 7}})
        async with httpx.AsyncClient(timeout=300) as client:
            r = await client.post(gw.url + "/acme/v1/datasets/ds4/data-rows", content=ndjson(rows),
                                  headers={"Content-Type": "application/x-ndjson"})
            assert r.status_code == 200, r.text
            r = await client.post(gw.url + "/acme/v1/projects/p1/annotations", content=ndjson(annotations),
                                  headers={"Content-Type": "application/x-ndjson"})
            assert r.status_code == 200, r.text
        sent_rows, sent_annotations = vendor.received
        for i, sent in enumerate(sent_rows):
            text = sent["row_data"]
            name, reply = sent_annotations[2 * i]["location"], sent_annotations[2 * i + 1]["location"]
            assert text[name["start"]:name["end"] + 1] == CUSTOMER.search(text).group(1)  # the pseudonym
            assert CUSTOMER.search(text).group(1) != " ".join(PEOPLE[i % len(PEOPLE)])
            assert text[reply["start"]:reply["end"] + 1] == "called about order"
            assert sent_annotations[2 * i]["uuid"] == f"u{i}-name"
        assert sent_annotations[-1]["location"] == {"start": 3, "end": 7}  # a row the gateway never saw: as sent
    finally:
        await vendor.close()


async def test_labelbox_media_urls_and_ids_are_structure_while_text_attachments_are_scanned(shipped_labelbox):
    vendor = await LabelboxVendor().start()
    try:
        gw = await shipped_labelbox(vendor)
        url = "https://storage.example.com/acme/scan-1.png?owner=maria.gonzalez@acme-corp.com"
        line = {"row_data": "Scan owned by maria.gonzalez@acme-corp.com", "global_key": "maria.gonzalez@acme-corp.com",
                "attachments": [{"type": "IMAGE", "name": "scan", "value": url},
                                {"type": "TEXT", "name": "link", "value": f"Also at {url}"}]}
        async with httpx.AsyncClient(timeout=120) as client:
            r = await client.post(gw.url + "/acme/v1/datasets/ds5/data-rows", content=ndjson([line]),
                                  headers={"Content-Type": "application/x-ndjson"})
        assert r.status_code == 200, r.text
        [[sent]] = vendor.received
        assert sent["attachments"][0]["value"] == url  # a URL-typed attachment: the asset Labelbox fetches
        assert sent["global_key"] == line["global_key"]  # structure, as the preset says (a policy rule may differ)
        assert "acme-corp.com" not in sent["attachments"][1]["value"]  # a text attachment is content
        assert "acme-corp.com" not in sent["row_data"]
    finally:
        await vendor.close()


ASSET_URLS = [
    "https://storage.googleapis.com/acme-private-scans/tickets/scan-17.png",
    "https://files.acme.internal/tickets/scan-18.png",   # a host only the company's network knows
    "gs://acme-private-scans/tickets/scan-19.png",
    "https://acme-private.s3.eu-west-1.amazonaws.com/tickets/maria-gonzalez-id.jpg",
    "https://storage.googleapis.com/acme-private-scans/scan-20.png?X-Goog-Algorithm=GOOG4-RSA-SHA256"
    "&X-Goog-Credential=labelbox%40acme-prod.iam.gserviceaccount.com%2F20260101%2Fauto%2Fstorage%2Fgoog4_request"
    "&X-Goog-Expires=3600&X-Goog-SignedHeaders=host&X-Goog-Signature=" + "3f9a" * 64,
    "https://storage.example.com/acme-tickets/scan-21.png",
]


def asset_rows() -> list[dict]:
    return [{"row_data": url, "global_key": f"scan-{i}", "media_type": "IMAGE",
             "attachments": [{"type": "IMAGE_OVERLAY", "name": "overlay", "value": url.replace(".png", "-mask.png")},
                             {"type": "TEXT", "name": "note", "value": f"Original at {url.split('?')[0]} for review"}]}
            for i, url in enumerate(ASSET_URLS)]


async def test_with_url_redact_no_asset_url_reaches_labelbox_and_with_allow_each_goes_byte_for_byte(
        shipped_labelbox):
    for action in ("redact", "tokenize", "allow"):
        vendor = await LabelboxVendor().start()
        try:
            gw = await shipped_labelbox(vendor, url=action)
            async with httpx.AsyncClient(timeout=120) as client:
                r = await client.post(gw.url + "/acme/v1/datasets/ds6/data-rows", content=ndjson(asset_rows()),
                                      headers={"Content-Type": "application/x-ndjson"})
                export = await client.get(gw.url + "/acme/v1/datasets/ds6/export")
            assert r.status_code == 200, (action, r.text)
            [sent] = vendor.received
            assert [s["global_key"] for s in sent] == [f"scan-{i}" for i in range(len(ASSET_URLS))]
            if action == "tokenize":  # a token per URL, and the export has the URLs again
                assert all(re.fullmatch(r"URL_[0-9A-Z]{10,26}", s["row_data"]) for s in sent), sent
                for url in ASSET_URLS:
                    assert url.split("//")[1].split("/")[0] not in json.dumps([s["row_data"] for s in sent])
                lines = [json.loads(line) for line in export.text.splitlines()]
                assert [line["data_row"]["row_data"] for line in lines] == ASSET_URLS
            elif action == "redact":  # a URL is a URL wherever it sits: row data, a URL attachment, text
                for s, original in zip(sent, asset_rows()):
                    assert s["row_data"] == "<URL>" and s["attachments"][0]["value"] == "<URL>"
                    note = original["attachments"][1]["value"]
                    if ".example.com/" in note:  # inside text, an RFC 2606 name is no finding: it names no one
                        assert s["attachments"][1]["value"] == note
                    else:
                        assert s["attachments"][1]["value"] == "Original at <URL> for review"
                seen = vendor.received_text
                for url in ASSET_URLS[:-1]:
                    assert url.split("//")[1].split("/")[0] not in seen, url  # not even the host
            else:  # the shipped policy: Labelbox can fetch every asset
                for s, original in zip(sent, asset_rows()):
                    assert s["row_data"] == original["row_data"]
                    assert s["attachments"][0] == original["attachments"][0]
        finally:
            await vendor.close()
