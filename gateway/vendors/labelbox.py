"""`format: labelbox`: data row imports, annotation (MAL / label) imports and NDJSON exports.

Labelbox takes data rows and annotations as NDJSON files (one JSON object a
line; the SDK also sends a JSON array) and exports a project as NDJSON, one
data row a line. The rules match the body, not the URL, at `$` (one line) and
`$[*]` (an array):

- content (scanned): `row_data` (the text of a text data row; a conversation's
  `messages[*].content` and `user.name`), `attachments[*].value` of text
  attachments, `metadata_fields[*].value`, a free-text classification `answer`;
- structure (forwarded as is): `global_key`, `external_id`, `media_type`, ids,
  attachment types and names, metadata names and schema ids, conversation message ids and
  times, and an annotation line's `uuid`, `dataRow` reference, `schemaId`,
  `name`, `location` offsets, geometry, option answers (`answer.name`);
- asset URLs: Labelbox reads images, video and documents from a URL, as
  `row_data` or as an attachment of a URL type (`IMAGE`, `VIDEO`, `IMAGE_OVERLAY`,
  `HTML`, `PDF_URL`, `TEXT_URL`, `CSV_URL`). A URL to the company's bucket or
  host is itself something to protect, so such a value (a `row_data` that is a
  URL and nothing else: `https://`, `gs://`, `s3://`) is one `URL` and the
  policy's `URL` action decides: `allow` (the shipped policy) forwards it byte
  for byte, `redact` / `tokenize` replace it whole (Labelbox then cannot fetch
  the asset), `block` refuses the row. A URL inside text row data is found by
  detection like any other.

The round trip: each data row text field that had reversible replacements
(row data, text attachments, text metadata) gets an offset map in the vault,
keyed by a keyed digest of the text sent, as Label Studio's does, and each row's
row data a second one keyed by its global key (a value the way back may not undo
is kept there as its shape only: its length and word breaks). An annotation
import line that names its row by `dataRow.globalKey` and has text offsets
(`location.start` / `end`, `end` inclusive) gets them moved to the text Labelbox
has, so pre-labels point at the pseudonyms. An export
(`GET` on a path with `export` in it, NDJSON whatever its content type) is
restored line by line: a mapped field gets its original text, the `TextEntity`
objects of its labels (`location.start` / `end` / `token`) point into the
original row data again, and the pseudonyms the maps name are restored in the
rest of the line.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from gateway.actions import ACTIONS
from gateway.keys import KeyProvider
from gateway.pipeline.flow import Outbound, Protected, Replacement
from gateway.pipeline.store import store_issued
from gateway.policy import Policy
from gateway.refusal import Refusal
from gateway.reversible.dialects import KNOWN
from gateway.reversible.offsets import OffsetMap, in_order
from gateway.reversible.restore import Restorer
from gateway.reversible.tokens import Issued
from gateway.reversible.vault import SurrogateCollision, TokenVault
from gateway.vendors.preset import Preset, also_under, retry_headers

URL_ATTACHMENTS = ("IMAGE", "VIDEO", "IMAGE_OVERLAY", "HTML", "PDF_URL", "TEXT_URL", "CSV_URL")
_URL_TYPE = " || ".join(f"@.type == '{t}'" for t in URL_ATTACHMENTS)
_WHOLE_URL = r"(https?|gs|s3)://[^ \t\r\n]+"  # an I-Regexp (RFC 9485) for `match()`: the whole value
_MESSAGES = "$.row_data.messages[*]"
STRUCTURE = also_under(("$[*]",), (
    # data rows
    "$.global_key", "$.globalKey", "$.external_id", "$.externalId", "$.media_type", "$.id", "$.uid",
    "$.dataset_id", "$.attachments[*].type", "$.attachments[*].id", "$.attachments[*].name",
    "$.metadata_fields[*].schema_id", "$.metadata_fields[*].name", "$.metadata_fields[*].schema_name",
    "$.row_data.type", "$.row_data.version", f"{_MESSAGES}.messageId", f"{_MESSAGES}.timestampUsec",
    f"{_MESSAGES}.user.userId", f"{_MESSAGES}.align", f"{_MESSAGES}.canLabel",
    # annotation lines (model-assisted labeling, label import)
    "$.uuid", "$.dataRow", "$.schemaId", "$.name", "$.location", "$.bbox", "$.point", "$.polygon", "$.line",
    "$.mask", "$.messageId", "$.frame", "$.page", "$.unit", "$.confidence", "$.segments", "$.textSelections",
    "$..classifications[*].name", "$..classifications[*].schemaId", "$..answer.name", "$..answer.schemaId",
    "$..answer[*].name", "$..answer[*].schemaId",
))
# a URL-typed attachment, and a row's row data (or any other top-level field) that is a URL and nothing else
URLS = also_under(("$[*]",), (f"$.attachments[?{_URL_TYPE}].value", f"$[?match(@, '{_WHOLE_URL}')]"))
CONTENT = also_under(("$[*]",), (
    "$.row_data", "$.attachments[*].value", "$.metadata_fields[*].value",
    "$.answer", "$..classifications[*].answer",
))


def error(exc: Refusal, request_id: str) -> tuple[dict, dict]:
    """A GraphQL error, as Labelbox's API answers (the SDK raises on `errors`); types, never values."""
    code = {"blocked": "FORBIDDEN", "rejected": "BAD_USER_INPUT", "error": "SERVICE_UNAVAILABLE"}[exc.outcome]
    return ({"data": None, "errors": [{"message": exc.message, "extensions": {
        "code": code, "entity_types": list(exc.entity_types), "request_id": request_id}}]}, retry_headers(exc))


# The offset map: one per data row text field, keyed by the text sent; looked up again from an export.

MAP_TYPE = "LABELBOX_MAP"
ROW_MAP_TYPE = "LABELBOX_ROW_MAP"  # one row's row data map, keyed by its global key: annotation offsets moved
ROW_PREFIX = "global_key\0"
MAP_PURPOSE = "labelbox-map"
_WORD = re.compile(r"\S")
_STEP = re.compile(r"\[(?:'((?:[^'\\]|\\.)*)'|(\d+))\]")


def _digest(key: bytes, sent: str) -> str:
    return "LBMAP_" + hmac.new(key, sent.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:40]


def _steps(path: str) -> tuple | None:
    """`$['attachments'][0]['value']` -> ("attachments", 0, "value"); None for a path this module
    does not read."""
    if not path.startswith("$"):
        return None
    steps, pos = [], 1
    for m in _STEP.finditer(path, 1):
        if m.start() != pos:
            return None
        steps.append(m.group(1).replace("\\'", "'").replace("\\\\", "\\") if m.group(1) is not None
                     else int(m.group(2)))
        pos = m.end()
    return tuple(steps) if pos == len(path) else None


def _at(doc: Any, steps: tuple) -> Any:
    for step in steps:
        if isinstance(step, int) and isinstance(doc, list) and step < len(doc):
            doc = doc[step]
        elif isinstance(step, str) and isinstance(doc, dict) and step in doc:
            doc = doc[step]
        else:
            return None
    return doc


def _rows(body: bytes) -> tuple[list, bool] | None:
    """The body's data rows and whether it was a JSON array (else one object or NDJSON lines)."""
    try:
        data = json.loads(body)
    except ValueError:
        rows = []
        for line in body.splitlines():
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError:  # a bad line the policy drops (`bad_lines: drop`) is not sent either
                    continue
        return (rows, False) if rows else None
    return (data, True) if isinstance(data, list) else ([data], False)


def _maps(original: list, sent: list, listed: bool, dropped: tuple[int, ...], replacements: tuple[Replacement, ...],
          restorable: Callable[[Replacement], bool]) -> list[tuple[dict, tuple, str, OffsetMap, OffsetMap]]:
    """(row sent, field steps, text sent, map of every replacement, map of the restorable ones) for every
    row text field that had replacements."""
    kept = [r for i, r in enumerate(original) if i not in set(dropped)]
    if len(kept) != len(sent):
        return []
    by_path: dict[tuple, list[Replacement]] = {}
    for r in replacements:
        steps = _steps(r.path)
        if steps is None or (listed and not (steps and isinstance(steps[0], int))):
            continue
        steps = steps[1:] if listed else steps
        if steps == ("row_data",) or (len(steps) == 3 and steps[0] in ("attachments", "metadata_fields")
                                      and isinstance(steps[1], int) and steps[2] == "value"):
            by_path.setdefault(steps, []).append(r)
    maps = []
    for steps, rs in by_path.items():
        rows = [(a, b) for a, b in zip(kept, sent)
                if isinstance(_at(a, steps), str) and isinstance(_at(b, steps), str)]
        pairs = [(_at(a, steps), _at(b, steps)) for a, b in rows]
        for (_, row), (_, text), taken in zip(rows, pairs, in_order(pairs, [(r.start, r.original, r.sent) for r in rs])):
            made = sorted((rs[i] for i in taken or ()), key=lambda r: r.start)
            if not made:
                continue
            full = OffsetMap.from_replacements((r.start, r.original, r.sent, r.entity_type) for r in made)
            stored = OffsetMap(tuple(s for s, r in zip(full.segments, made) if restorable(r)))
            # for moving annotation offsets later: a value the way back may not undo is kept as its shape only
            forward = OffsetMap(tuple(s if restorable(r) else dataclasses.replace(s, original=_WORD.sub("x", s.original))
                                      for s, r in zip(full.segments, made)))
            maps.append((row, steps, text, forward, stored))
    return maps


def _global_key(row: Any) -> str | None:
    key = row.get("global_key", row.get("globalKey")) if isinstance(row, dict) else None
    return key if isinstance(key, str) and key else None


async def import_rows(method: str, out: Outbound, protected: Protected, policy: Policy, vault: TokenVault | None,
                      keys: KeyProvider) -> Protected:
    """Before data rows go out: each changed text field's map (its reversible replacements) stored in
    the vault, keyed by the text sent, so an export finds it, and each row's row data map keyed by its
    global key, so a later annotation import's offsets can be moved. Annotation lines that name a data
    row by global key get their `location` moved to the text Labelbox has."""
    if method not in ("POST", "PUT", "PATCH") or not protected.body:
        return protected
    protected = await _move_annotations(out, protected, vault, keys)
    if not protected.replacements:
        return protected
    never = {t.upper() for t in policy.never_restore}

    def restorable(r: Replacement) -> bool:  # what the way back may undo: a reversible action, not `never_restore`
        return ACTIONS[r.action].reversible and r.entity_type.upper() not in never

    def work() -> list[Issued]:
        before, after = _rows(bytes(out.body)), _rows(bytes(protected.body))
        if before is None or after is None or before[1] != after[1]:
            return []
        key = keys.derive(MAP_PURPOSE, out.vendor, keys.current_id())
        issued = []
        for row, steps, text, forward, stored in _maps(before[0], after[0], before[1], protected.dropped_tasks,
                                                       protected.replacements, restorable):
            if stored.segments:
                issued.append(Issued(_digest(key, text), MAP_TYPE, json.dumps(stored.to_json(), ensure_ascii=False)))
            if steps == ("row_data",) and _global_key(row):
                issued.append(Issued(_digest(key, ROW_PREFIX + _global_key(row)), ROW_MAP_TYPE,
                                     json.dumps(forward.to_json(), ensure_ascii=False)))
        return issued

    rows = await asyncio.to_thread(work)
    if rows:  # stored before the rows leave, or the request is refused (`IssueError`)
        try:
            await store_issued(vault, out.vendor, tuple(rows), out.scope)
        except SurrogateCollision as exc:  # the same sent text already has a map: the first one stays
            await store_issued(vault, out.vendor, tuple(r for r in rows if r not in exc.issued), out.scope)
    return protected


def _annotated(lines: list) -> list[tuple[dict, str]]:
    """(location, global key) of each annotation line with text offsets that names its row by global key."""
    found = []
    for line in lines:
        row = line.get("dataRow") if isinstance(line, dict) else None
        location = line.get("location") if isinstance(line, dict) else None
        if (_global_key(row) and isinstance(location, dict)
                and all(type(location.get(k)) is int for k in ("start", "end"))):
            found.append((location, _global_key(row)))
    return found


async def _move_annotations(out: Outbound, protected: Protected, vault: TokenVault | None,
                            keys: KeyProvider) -> Protected:
    """An annotation import (NDJSON or a JSON array): each text entity's `location` (inclusive `end`),
    written against the caller's text, moved to the row data Labelbox was sent, by the row's map."""
    if vault is None or b'"location"' not in protected.body or b'"dataRow"' not in protected.body:
        return protected
    parsed = await asyncio.to_thread(_rows, bytes(protected.body))
    if parsed is None:
        return protected
    lines, listed = parsed
    wanted = _annotated(lines)
    if not wanted:
        return protected
    derived = [keys.derive(MAP_PURPOSE, out.vendor, key_id) for key_id in keys.key_ids()]
    names = {_digest(key, ROW_PREFIX + gk).lower(): gk for _, gk in wanted for key in derived}
    try:
        found = {k: v for k, v in (await vault.lookup(out.vendor, list(names))).items()
                 if v.entity_type == ROW_MAP_TYPE}
        if out.scope and found:
            inside = await vault.in_scope(out.vendor, out.scope, list(found))
            found = {k: v for k, v in found.items() if k in inside}
    except Exception as exc:  # offsets we cannot move would point at the wrong text: fail closed
        raise Refusal(503, f"token vault unavailable: {type(exc).__name__}", outcome="error") from None
    maps = {names[k]: OffsetMap.from_json(json.loads(v.original)) for k, v in found.items()}
    moved = 0
    for location, gk in wanted:
        offset_map = maps.get(gk)
        if offset_map is not None:
            start = offset_map.to_sent(location["start"], "start")
            end = offset_map.to_sent(location["end"] + 1, "end")
            location["start"], location["end"] = start, max(start, end - 1)
            moved += 1
    if not moved:
        return protected
    if listed:
        body = json.dumps(lines, ensure_ascii=False, separators=(",", ":")).encode()
    else:
        body = b"".join(json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for line in lines)
    return dataclasses.replace(protected, body=body)


def _export_rows(data: Any) -> list[dict]:
    """The data rows of an export line (`{"data_row": {...}, "attachments": ..., "projects": ...}`),
    a list of them, or data rows as imported."""
    items = data if isinstance(data, list) else [data]
    return [i for i in items if isinstance(i, dict)]


def _fields(item: dict) -> Iterator[tuple[dict, str, str]]:
    """(container, key, text) of an export line's mappable text fields; row data first."""
    row = item.get("data_row") if isinstance(item.get("data_row"), dict) else item
    if isinstance(row.get("row_data"), str):
        yield row, "row_data", row["row_data"]
    for key in ("attachments", "metadata_fields"):
        for entry in item.get(key) or row.get(key) or []:
            if isinstance(entry, dict) and isinstance(entry.get("value"), str):
                yield entry, "value", entry["value"]


def _entities(item: dict) -> Iterator[dict]:
    """The `location` of every text entity in an export line's labels (every project)."""
    projects = item.get("projects")
    for project in (projects.values() if isinstance(projects, dict) else []):
        for label in (project.get("labels") or []) if isinstance(project, dict) else []:
            annotations = label.get("annotations") if isinstance(label, dict) else None
            for obj in (annotations.get("objects") or []) if isinstance(annotations, dict) else []:
                location = obj.get("location") if isinstance(obj, dict) else None
                if isinstance(location, dict) and all(type(location.get(k)) is int for k in ("start", "end")):
                    yield location


async def restore_rows(data: Any, restorer: Restorer) -> tuple[Any, Restorer]:
    """An export line (or a JSON list of rows) on its way back: mapped fields get their original
    text, text entities their original offsets and token, and the maps' pseudonyms become known
    for the rest of the restore. Returns a new document; the CPU work runs off the event loop."""
    keys, vendor = restorer.keys, restorer.vendor

    def names_of() -> dict[str, str]:
        derived = [keys.derive(MAP_PURPOSE, vendor, key_id) for key_id in keys.key_ids()]
        return {_digest(key, text).lower(): text for item in _export_rows(data)
                for _, _, text in _fields(item) for key in derived}

    names = await asyncio.to_thread(names_of)
    if not names:
        return data, restorer
    found = {k: v for k, v in (await restorer.vault.lookup(vendor, list(names))).items() if v.entity_type == MAP_TYPE}
    if restorer.scope is not None and found:
        inside = await restorer.vault.in_scope(vendor, restorer.scope, list(found)) if restorer.scope else set()
        found = {k: v for k, v in found.items() if k in inside}
    if not found:
        return data, restorer
    maps = {names[k]: OffsetMap.from_json(json.loads(v.original)) for k, v in found.items()}
    shaped, known, mapped = await asyncio.to_thread(_map_back, data, maps)
    extended = restorer.with_known(known)
    extended.restored += mapped
    return shaped, extended


def _map_back(data: Any, maps: dict[str, OffsetMap]) -> tuple[Any, list[Issued], int]:
    data = copy.deepcopy(data)
    known, mapped = [], 0
    for item in _export_rows(data):
        for n, (container, key, text) in enumerate(list(_fields(item))):
            offset_map = maps.get(text)
            back = offset_map.restore(text) if offset_map is not None else None
            if back is None:
                continue
            container[key] = back
            known += [Issued(s.sent, s.entity_type, s.original) for s in offset_map.segments]
            mapped += 1
            if n == 0 and key == "row_data":
                for location in _entities(item):  # `end` is inclusive: the character at `end` is in the span
                    start = offset_map.to_original(location["start"], "start")
                    end = offset_map.to_original(location["end"] + 1, "end")
                    location["start"], location["end"] = start, max(start, end - 1)
                    if "token" in location:
                        location["token"] = back[start:end]
                    mapped += 1
    return data, known, mapped


PRESET = Preset(
    "labelbox", structure=STRUCTURE, urls=URLS, content=CONTENT, dialect=KNOWN, error=error,
    response_kinds=(("GET", re.compile(r".*export.*"), "jsonl"),),
    outbound=import_rows, inbound_json=restore_rows,
)
