"""The Label Studio round trip with the shipped policy: 100 tasks with pre-annotations
naming people from many cultures go through the gateway to a loopback Label Studio;
the labeler sees consistent pseudonyms with spans that point at them, and the export
comes back with the original text, values and offsets."""

from __future__ import annotations

import asyncio
import json
import re
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from vendor_upstreams import LabelStudioVendor

from gateway.audit import AuditLog
from gateway.keys import LocalKeyProvider

REPO = Path(__file__).resolve().parent.parent
FIXED_KEY = "cm91bmQtdHJpcC1maXhlZC1rZXktZm9yLWxhYmVscyE="  # 32 bytes: the pseudonym picks are the same every run

PEOPLE = [("Maria", "Gonzalez"), ("Priya", "Raman"), ("Wei", "Zhang"), ("Oluwaseun", "Adeyemi"),
          ("Hiroshi", "Tanaka"), ("Anna", "Kowalska"), ("Dmitri", "Ivanov"), ("Aisha", "Mohammed"),
          ("Lars", "Johansson"), ("Siobhan", "O'Connor"), ("Mehmet", "Yilmaz"), ("Chiara", "Rossi"),
          ("Kwame", "Mensah"), ("Sofia", "Papadopoulos"), ("Amara", "Okafor"), ("Rajesh", "Patel"),
          ("Leila", "Haddad"), ("Tomasz", "Nowak"), ("Ingrid", "Larsen"), ("Kenji", "Watanabe"),
          ("Fatima", "Benali"), ("Thandiwe", "Dlamini"), ("Mateus", "Oliveira"), ("Nguyen", "Thanh"),
          ("Ahmed", "Hassan")]


def task(i: int) -> tuple[dict, list[tuple[str, int, int]]]:
    """A ticket naming one customer in full, with a possessive and by first name, and an agent as
    "Surname, Given"; the pre-annotations mark each mention. Returns the task and (kind, start, end)."""
    given, surname = PEOPLE[i % len(PEOPLE)]
    agent_given, agent_surname = PEOPLE[(i * 7 + 3) % len(PEOPLE)]
    full = f"{given} {surname}"
    parts = [f"Ticket {i}: customer ", ("full", full), f" called about order {4000 + i}. ",
             ("possessive", full), "'s parcel arrived damaged, so ", ("first", given),
             " asked for a refund. Handled by ", ("agent", f"{agent_surname}, {agent_given}"), "."]
    text, spans = "", []
    for part in parts:
        if isinstance(part, tuple):
            spans.append((part[0], len(text), len(text) + len(part[1])))
            part = part[1]
        text += part
    result = [{"id": f"r{i}-{k}", "from_name": "label", "to_name": "text", "type": "labels",
               "value": {"start": s, "end": e, "text": text[s:e], "labels": ["PERSON"]}}
              for k, (_, s, e) in enumerate(spans)]
    return {"data": {"text": text, "ticket": f"T-{i}"},
            "predictions": [{"model_version": "ner-v3", "score": 0.9, "result": result}]}, spans


@pytest.fixture
def shipped_label_studio(write_config, start_gateway, monkeypatch):
    monkeypatch.setenv("VENDORGATE_MASTER_KEY", FIXED_KEY)

    async def start(vendor, on_block: str = "refuse"):
        policy = (REPO / "policies" / "label-studio.yaml").read_text().replace("on_block: refuse",
                                                                               f"on_block: {on_block}")
        return await start_gateway(write_config(vendor.url, policy=policy, vendor_extra="format: label-studio\n"))

    return start


def audit_text(gw) -> str:
    log = AuditLog.in_data_dir(gw.data_dir, LocalKeyProvider.in_data_dir(gw.data_dir))
    return json.dumps(log.records(), ensure_ascii=False)


async def test_label_studio_round_trip_keeps_pseudonyms_consistent_spans_shifted_and_export_original(
        shipped_label_studio):
    vendor = await LabelStudioVendor().start()
    try:
        gw = await shipped_label_studio(vendor)
        made = [task(i) for i in range(100)]
        tasks = [t for t, _ in made]
        async with httpx.AsyncClient(timeout=300) as client:
            r = await client.post(gw.url + "/acme/api/projects/7/import", json=tasks)
            assert r.status_code == 201, r.text
            export = await client.get(gw.url + "/acme/api/projects/7/export", params={"exportType": "JSON"})
            one = await client.get(gw.url + "/acme/api/tasks/42")
        assert export.status_code == 200, export.text
        [received] = vendor.received
        assert len(received) == 100

        # What the labeler sees: no original name, spans that point at the pseudonyms.
        seen = vendor.received_text
        pseudonym_words = set()
        by_person: dict[str, set[str]] = defaultdict(set)
        moved = 0
        for i, (sent, (_, spans)) in enumerate(zip(received, made)):
            text = sent["data"]["text"]
            assert text.startswith(f"Ticket {i}: customer ") and f"order {4000 + i}" in text
            [prediction] = sent["predictions"]
            assert prediction["model_version"] == "ner-v3"
            values = {kind: item["value"] for (kind, _, _), item in zip(spans, prediction["result"])}
            moved += [(v["start"], v["end"]) for v in values.values()] != [(s, e) for _, s, e in spans]
            for value in values.values():
                assert text[value["start"]:value["end"]] == value["text"]
                pseudonym_words |= set(re.findall(r"[^\W\d_]+", value["text"]))
            person = " ".join(PEOPLE[i % len(PEOPLE)])
            full, first, agent = values["full"]["text"], values["first"]["text"], values["agent"]["text"]
            assert values["possessive"]["text"] == full and text[values["possessive"]["end"]:].startswith("'s parcel")
            assert full != person and first == full.split(" ")[0]  # the first name is the pseudonym's
            surname, _, given = agent.partition(", ")
            agent_person = PEOPLE[(i * 7 + 3) % len(PEOPLE)]
            by_person[person].add(full)
            by_person[" ".join(agent_person)].add(f"{given} {surname}")  # "Surname, Given" is the same person
        assert moved == 100  # every task's spans were moved to its pseudonyms
        assert not {p: n for p, n in by_person.items() if len(n) != 1}  # consistent across tasks
        assert len({next(iter(n)) for n in by_person.values()}) == len(PEOPLE)  # distinct people stay distinct
        for given, surname in PEOPLE:
            assert f"{given} {surname}" not in seen and f"{surname}, {given}" not in seen
            for word in (given, surname):
                if word not in pseudonym_words:
                    assert not re.search(rf"(?<!\w){re.escape(word)}(?!\w)", seen), word

        # The export: original text, offsets and values, the ticket id untouched.
        got = export.json()
        assert len(got) == 100
        for back, (original, spans) in zip(got, made):
            assert back["data"] == original["data"]
            text = original["data"]["text"]
            whole, *accepted = back["annotations"][0]["result"]
            assert whole["value"] == {"start": 0, "end": len(text), "text": text, "labels": ["Complaint"]}
            for results in (accepted, back["predictions"][0]["result"]):
                assert [(r["value"]["start"], r["value"]["end"], r["value"]["text"]) for r in results] == [
                    (s, e, text[s:e]) for _, s, e in spans]
        for given, surname in PEOPLE:
            assert f"{given} {surname}" in export.text
        assert one.status_code == 200 and one.json()["data"] == tasks[41]["data"]
        assert one.json()["predictions"] == tasks[41]["predictions"]  # offsets and texts back in the original

        # Nothing we protect is written down in clear: audit records, the vault file.
        for _ in range(100):
            if audit_text(gw).count('"decision"') >= 3:
                break
            await asyncio.sleep(0.05)
        stored = audit_text(gw) + (gw.data_dir / "vault.sqlite3").read_bytes().decode("latin-1")
        assert '"decision"' in stored
        for given, surname in PEOPLE:
            assert surname not in stored and f"{given} " not in stored
    finally:
        await vendor.close()


async def test_label_studio_drop_task_keeps_the_other_tasks_spans_and_export_aligned(shipped_label_studio):
    vendor = await LabelStudioVendor().start()
    try:
        gw = await shipped_label_studio(vendor, on_block="drop_task")
        made = [task(i) for i in range(6)]
        tasks = [t for t, _ in made]
        tasks[2]["data"]["text"] += " SSN 536-22-8841 on file."  # US_SSN: block -> this task is left out
        kept = [0, 1, 3, 4, 5]
        async with httpx.AsyncClient(timeout=300) as client:
            r = await client.post(gw.url + "/acme/api/projects/3/import", json=tasks)
            assert r.status_code == 201, r.text
            assert r.headers["X-Vendorgate-Dropped-Tasks"] == "2"  # its position in the batch, never its content
            assert r.headers["X-Vendorgate-Dropped-Tasks-Count"] == "1"
            export = await client.get(gw.url + "/acme/api/projects/3/export")
        [received] = vendor.received
        assert [t["data"]["text"].split(":")[0] for t in received] == [f"Ticket {i}" for i in kept]
        assert "536-22" not in vendor.received_text
        for sent in received:
            text = sent["data"]["text"]
            for item in sent["predictions"][0]["result"]:
                assert text[item["value"]["start"]:item["value"]["end"]] == item["value"]["text"]
        got = export.json()
        assert [t["data"] for t in got] == [tasks[i]["data"] for i in kept]
        assert [t["predictions"] for t in got] == [tasks[i]["predictions"] for i in kept]
    finally:
        await vendor.close()


async def test_a_value_the_policy_does_not_restore_stays_redacted_in_the_export_with_offsets_into_that_text(
        shipped_label_studio):
    vendor = await LabelStudioVendor().start()
    try:
        gw = await shipped_label_studio(vendor)
        text = "Maria Gonzalez logged in from 10.20.30.40 and then Maria Gonzalez asked for a refund."
        second = text.rindex("Maria Gonzalez")
        spans = [(0, 14), (second, second + 14)]
        tasks = [{"data": {"text": text}, "predictions": [{"result": [
            {"from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": s, "end": e, "text": text[s:e], "labels": ["PERSON"]}} for s, e in spans]}]}]
        async with httpx.AsyncClient(timeout=300) as client:
            assert (await client.post(gw.url + "/acme/api/projects/1/import", json=tasks)).status_code == 201
            export = await client.get(gw.url + "/acme/api/projects/1/export")
        [[sent]] = vendor.received
        assert "<IP_ADDRESS>" in sent["data"]["text"] and "Maria" not in vendor.received_text
        [back] = export.json()
        assert back["data"]["text"] == text.replace("10.20.30.40", "<IP_ADDRESS>")  # redact is not undone
        for result in back["predictions"][0]["result"]:
            value = result["value"]
            assert back["data"]["text"][value["start"]:value["end"]] == value["text"] == "Maria Gonzalez"
        assert "10.20.30.40" not in (gw.data_dir / "vault.sqlite3").read_bytes().decode("latin-1")
    finally:
        await vendor.close()


def _jsonl(tasks: list[dict]) -> bytes:
    return "".join(json.dumps(t) + "\n" for t in tasks).encode()


def _check_sent_and_export(received: list[dict], export: list[dict], made: list[tuple[dict, list]]) -> None:
    """What the labeler got: no original name, spans on the pseudonyms; the export: the originals back."""
    assert len(received) == len(made) == len(export)
    for sent, (original, spans) in zip(received, made):
        text = sent["data"]["text"]
        values = [r["value"] for r in sent["predictions"][0]["result"]]
        assert [text[v["start"]:v["end"]] for v in values] == [v["text"] for v in values]
        assert [(v["start"], v["end"]) for v in values] != [(s, e) for _, s, e in spans]  # moved
        given, surname = original["data"]["text"][spans[0][1]:spans[0][2]].split(" ")  # the customer
        assert given not in text and surname not in text
    for back, (original, _) in zip(export, made):
        assert back["data"] == original["data"]
        assert back["predictions"] == original["predictions"]  # offsets and texts in the original again


async def test_label_studio_json_lines_import_moves_spans_per_line_and_the_export_maps_them_back(
        shipped_label_studio):
    vendor = await LabelStudioVendor().start()
    try:
        gw = await shipped_label_studio(vendor, on_block="drop_task")
        made = [task(i) for i in range(12)]
        tasks = [t for t, _ in made]
        tasks[5]["data"]["text"] += " SSN 536-22-8841 on file."  # this line is dropped, the others stay aligned
        async with httpx.AsyncClient(timeout=300) as client:
            r = await client.post(gw.url + "/acme/api/projects/4/import", content=_jsonl(tasks),
                                  headers={"Content-Type": "application/jsonl"})
            assert r.status_code == 201, r.text
            assert r.headers["X-Vendorgate-Dropped-Tasks"] == "5"
            export = await client.get(gw.url + "/acme/api/projects/4/export")
        [received] = vendor.received
        kept = [made[i] for i in range(12) if i != 5]
        _check_sent_and_export(received, export.json(), kept)
        assert vendor.raw[0].count(b"\n") == 11  # still one task a line
    finally:
        await vendor.close()


async def test_label_studio_file_upload_moves_spans_in_the_uploaded_file(shipped_label_studio):
    vendor = await LabelStudioVendor().start()
    try:
        gw = await shipped_label_studio(vendor)
        made = [task(i) for i in range(8)]
        tasks = [t for t, _ in made]
        async with httpx.AsyncClient(timeout=300) as client:
            r = await client.post(gw.url + "/acme/api/projects/5/import",
                                  files={"file": ("tasks.json", json.dumps(tasks).encode(), "application/json")})
            assert r.status_code == 201, r.text
            r2 = await client.post(gw.url + "/acme/api/projects/6/import",
                                   files={"file": ("tasks.jsonl", _jsonl(tasks), "application/octet-stream")})
            assert r2.status_code == 201, r2.text
            exports = [await client.get(gw.url + f"/acme/api/projects/{p}/export") for p in (5, 6)]
        assert vendor.raw[0].startswith(b"--") and b'filename="tasks.json"' in vendor.raw[0]
        for received, export in zip(vendor.received, exports):
            _check_sent_and_export(received, export.json(), made)
    finally:
        await vendor.close()
