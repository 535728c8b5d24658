"""The `consistent` action on its own, the offset map it is used with, and the Label Studio
map-back on a webhook-shaped payload with a real vault."""

from __future__ import annotations

import base64
import json

from gateway.actions import ActionContext, get_action
from gateway.actions.consistent import fold, pools
from gateway.keys import ENV_VAR, LocalKeyProvider
from gateway.reversible.offsets import OffsetMap
from gateway.reversible.restore import Restorer
from gateway.reversible.tokens import Issued, fingerprint
from gateway.reversible.vault import SQLiteVault
from gateway.vendors.label_studio import MAP_TYPE, map_key, restore_tasks

KEYS = LocalKeyProvider("/nonexistent", env={ENV_VAR: base64.b64encode(b"c" * 32).decode()})
OTHER_KEYS = LocalKeyProvider("/nonexistent", env={ENV_VAR: base64.b64encode(b"d" * 32).decode()})


def fake(value, entity="PERSON", vendor="acme", keys=KEYS, related=(), collisions=None, also=frozenset()):
    ctx = ActionContext(vendor, entity, keys, related=tuple(related), collisions=collisions or {}, also=also)
    return get_action("consistent").apply(value, ctx)


def test_same_person_gets_the_same_pseudonym_in_every_form():
    full = fake("Maria Gonzalez").text
    given, surname = full.split(" ")
    assert fake("Maria Gonzalez").text == full and full != "Maria Gonzalez"
    assert fake("Maria Gonzalez's").text == full + "'s"
    assert fake("Maria Gonzalez’s").text == full + "’s"
    assert fake("Gonzalez, Maria").text == f"{surname}, {given}"
    assert fake("Maria").text == given
    assert fake("Gonzalez", related=["Maria Gonzalez"]).text == surname  # a lone surname, known from the task
    assert fake("Dr. Maria Gonzalez").text == f"Dr. {full}"
    assert fake("MARIA GONZALEZ").text == full.upper()
    assert fake("María González").text == full  # accents folded for the key


def test_pseudonyms_are_realistic_per_vendor_and_per_key():
    given, surnames = pools()
    assert len(given) > 5000 and len(surnames) > 5000
    first, last = fake("Priya Raman").text.split(" ")
    assert first in given and last in surnames
    assert fake("Priya Raman", vendor="other").text != fake("Priya Raman").text
    assert fake("Priya Raman", keys=OTHER_KEYS).text != fake("Priya Raman").text


def test_the_vault_row_is_the_mention_without_its_possessive():
    done = fake("Wei Zhang's")
    assert done.issued == (Issued(done.text[:-2], "PERSON", "Wei Zhang"),)


def test_a_value_typed_otherwise_that_is_part_of_a_person_gets_that_persons_pseudonym():
    full = fake("Priya Raman").text
    assert fake("Priya", entity="NRP", related=["Priya Raman"]).text == full.split(" ")[0]
    assert fake("Kenji", entity="LOCATION", also=frozenset({"PERSON"})).text == fake("Kenji").text
    city = fake("Lisbon", entity="LOCATION", related=["Priya Raman"])
    assert city.text != "Lisbon" and city.issued[0].entity_type == "LOCATION"


def test_a_collided_pseudonym_is_picked_again_for_the_newcomer():
    first = fake("Amara")
    collided = {fingerprint(KEYS, "acme", "PERSON", "Amara"): 1}
    again = fake("Amara", collisions=collided)
    assert again.text != first.text
    assert fake("Amara Okafor", collisions=collided).text.split(" ")[0] == again.text  # the part follows


def test_email_and_phone_keep_their_shape_and_follow_the_name():
    given, surname = fake("Maria Gonzalez").text.split(" ")
    email = fake("maria.gonzalez@acme-corp.com", entity="EMAIL_ADDRESS").text
    local, domain = email.split("@")
    assert domain in ("example.com", "example.org", "example.net") and local.isascii()
    ascii_ = [fold(part).encode("ascii", "ignore").decode() for part in (given, surname)]
    assert local.split(".") == ascii_ and "gonzalez" not in email
    phone = fake("+1 (415) 555-0134", entity="PHONE_NUMBER").text
    assert phone.startswith("+1 (") and len(phone) == len("+1 (415) 555-0134") and phone != "+1 (415) 555-0134"
    assert fake("+1 (415) 555-0134", entity="PHONE_NUMBER").text == phone


def test_offset_map_moves_spans_both_ways_and_restores_the_text():
    original = "Hi Maria Gonzalez, this is about Maria Gonzalez's refund. Call Maria."
    replaced = [(3, "Maria Gonzalez", "Aiko Tanaka", "PERSON"), (33, "Maria Gonzalez's", "Aiko Tanaka's", "PERSON"),
                (original.rindex("Maria"), "Maria", "Aiko", "PERSON")]
    sent = "Hi Aiko Tanaka, this is about Aiko Tanaka's refund. Call Aiko."
    offsets = OffsetMap.from_replacements(replaced)
    assert offsets.restore(sent) == original and offsets.restore(sent.replace("Hi", "Yo ")) is None
    for start, end, want in [(3, 17, "Aiko Tanaka"), (3, 8, "Aiko"), (9, 17, "Tanaka"), (33, 47, "Aiko Tanaka"),
                             (33, 49, "Aiko Tanaka's"), (0, 2, "Hi"), (5, 12, "Aiko Tanaka")]:
        s, e = offsets.to_sent(start, "start"), offsets.to_sent(end, "end")
        assert sent[s:e] == want
        back = original[offsets.to_original(s, "start"):offsets.to_original(e, "end")]
        assert back == (original[start:end] if (start, end) != (5, 12) else "Maria Gonzalez")  # widened
    assert OffsetMap.from_json(json.loads(json.dumps(offsets.to_json()))) == offsets


async def test_a_webhook_payload_is_mapped_back_from_the_vault_in_the_callers_scope(tmp_path):
    vault = await SQLiteVault(tmp_path / "vault.sqlite3", KEYS).open()
    try:
        original = "Maria Gonzalez called."
        sent = "Aiko Tanaka called."
        offsets = OffsetMap.from_replacements([(0, "Maria Gonzalez", "Aiko Tanaka", "PERSON")])
        await vault.store("acme", [Issued(map_key(KEYS, "acme", sent, KEYS.current_id()), MAP_TYPE,
                                          json.dumps(offsets.to_json()))], scope="caller:billing")
        payload = {"action": "ANNOTATION_CREATED", "task": {"id": 5, "data": {"text": sent}},
                   "annotation": {"id": 9, "result": [{"to_name": "text", "value": {
                       "start": 0, "end": 4, "text": "Aiko", "labels": ["PERSON"]}}, {"type": "textarea", "value": {
                       "text": ["Aiko Tanaka was polite"]}}]}}
        data, restorer = await restore_tasks(payload, Restorer("acme", vault, keys=KEYS, scope="caller:billing",
                                                               entity_types={"PERSON"}))
        data = await restorer.restore_json(data)
        assert data["task"]["data"]["text"] == original
        assert data["annotation"]["result"][0]["value"] == {"start": 0, "end": 5, "text": "Maria",
                                                            "labels": ["PERSON"]}
        assert data["annotation"]["result"][1]["value"]["text"] == ["Maria Gonzalez was polite"]
        assert payload["task"]["data"]["text"] == sent  # the vendor's document is left as it came

        elsewhere, _ = await restore_tasks(payload, Restorer("acme", vault, keys=KEYS, scope="caller:other",
                                                             entity_types={"PERSON"}))
        assert elsewhere["task"]["data"]["text"] == sent  # another caller's map is not used
    finally:
        await vault.close()
