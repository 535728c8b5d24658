"""`format: label-studio`: task import and export.

Label Studio puts every task field under `data` (`data.text`, `data.image`, and
whatever columns the project has: `data.customer_id`, `data.internal_notes`),
so the policy's rules name `$[*].data.<field>` (a JSON array import) and
`$.data.<field>` (one task, a JSON Lines line). The preset forwards the
labeling structure as is (ids, `from_name` / `to_name`, label choices, offsets,
model versions) and scans the rest; `data.image` / `data.audio` as `data:` URLs
are media. The export (`GET /api/projects/{id}/export`) is restored, whatever
content type the file download is sent with.

The offset map: an import's pre-annotations (`predictions` / `annotations`
result items with `value.start`, `value.end`, `value.text`) are moved to the
text the labeler sees, and each changed `data` field's map (where its
reversible replacements sit, and their originals) is stored in the vault under
a keyed digest of the text sent. A JSON answer that carries tasks (the export,
task lists, a webhook payload) is mapped back before it is restored: the data
fields get their original text and the results their original offsets and
text. A field the vendor changed, or a map issued to another caller, is left
to the ordinary restore.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from email.message import Message
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
from gateway.vendors.preset import Preset, described, retry_headers

MEDIA = ("$..data.image", "$..data.audio", "$..data.video", "$..data.pdf")
STRUCTURE = (
    "$[*].id", "$.id", "$[*].project", "$.project", "$..from_name", "$..to_name", "$..origin",
    "$..model_version", "$..score", "$..value.start", "$..value.end", "$..value.labels", "$..value.choices",
    "$..value.x", "$..value.y", "$..value.width", "$..value.height", "$..value.rotation",
    "$..result[*].type", "$..result[*].id", "$..completed_by", "$..lead_time", "$..was_cancelled",
)
CONTENT = ("$[*].data", "$.data", "$..predictions", "$..annotations")


def error(exc: Refusal, request_id: str) -> tuple[dict, dict]:
    """Django REST framework's shape, as Label Studio answers: `{"detail": ..., "status_code": ...}`."""
    return ({"detail": described(exc), "status_code": exc.status, "entity_types": list(exc.entity_types),
             "request_id": request_id}, retry_headers(exc))


# The offset map: pre-annotations shifted to the text the labeler sees, annotations mapped back.

MAP_TYPE = "LABEL_STUDIO_MAP"  # vault rows holding one data field's offset map, keyed by its sent text
MAP_PURPOSE = "label-studio-map"
_DATA_FIELD = re.compile(r"\$(?:\[(?P<task>\d+)\])?\['data'\]\['(?P<key>[^'\\]*)'\]")
RESULTS = ("annotations", "predictions", "drafts")


def map_key(keys: KeyProvider, vendor: str, sent: str, key_id: str | None = None) -> str:
    """The vault name of a field's map: a keyed digest of the text the labeler got, so an export,
    a later request, finds it from the task as Label Studio returns it."""
    return _digest(keys.derive(MAP_PURPOSE, vendor, key_id), sent)


def _digest(key: bytes, sent: str) -> str:
    return "LSMAP_" + hmac.new(key, sent.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:40]


def _tasks(data: Any) -> list[tuple[dict, list[list]]]:
    """(task data, result lists) of every task in a body: a task list (import, export), a task,
    `{"tasks": [...]}` (TASKS_CREATED), or a webhook (`{"task": ..., "annotation": ...}`, or lists of
    both for ANNOTATIONS_CREATED)."""
    found = []

    def task(t: Any, extra: tuple = ()) -> None:
        if isinstance(t, dict) and isinstance(t.get("data"), dict):
            results = [a.get("result") for key in RESULTS for a in (t.get(key) or []) if isinstance(a, dict)]
            results += [a.get("result") for a in extra if isinstance(a, dict)]
            found.append((t["data"], [r for r in results if isinstance(r, list)]))

    if isinstance(data, list):
        for t in data:
            task(t)
    elif isinstance(data, dict):
        if isinstance(data.get("tasks"), list):
            for t in data["tasks"]:
                task(t)
        elif isinstance(data.get("task"), dict):
            task(data["task"], (data.get("annotation"), *(data.get("annotations") or [])))
        elif isinstance(data.get("task"), list):  # ANNOTATIONS_CREATED: lists of both, an annotation names its task
            made = [a for a in data.get("annotation") or [] if isinstance(a, dict)]
            for t in data["task"]:
                if isinstance(t, dict):
                    task(t, tuple(a for a in made if a.get("task") == t.get("id")))
        else:
            task(data)
    return found


def _spans(results: list[list]) -> list[dict]:
    """The `value` of every result item with character offsets."""
    values = []
    for result in results:
        for item in result:
            value = item.get("value") if isinstance(item, dict) else None
            if isinstance(value, dict) and all(type(value.get(k)) is int for k in ("start", "end")):
                values.append((item, value))
    return values


def _field(item: dict, value: dict, texts: dict[str, str]) -> str | None:
    """Which data field a result points into: the one whose text at the offsets is the result's
    text (its `to_name` first), else the `to_name` field, else the only text field."""
    start, end, quoted = value["start"], value["end"], value.get("text")
    name = item.get("to_name")
    matches = [k for k, t in texts.items() if isinstance(quoted, str) and t[start:end] == quoted]
    if matches:
        return name if name in matches else matches[0]
    if name in texts:
        return name
    return next(iter(texts)) if len(texts) == 1 else None


def _texts(data: dict) -> dict[str, str]:
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _by_line(before: list, after: list, kept: list[int], replacements: tuple[Replacement, ...]) -> dict:
    """(line, data key) -> its replacements, for JSON Lines: a line's paths carry no line number, but
    the replacements come line by line, so each line takes those that turn its text into the text sent."""
    per_key: dict[str, list[Replacement]] = {}
    for r in replacements:
        m = _DATA_FIELD.fullmatch(r.path)
        if m and m.group("task") is None:
            per_key.setdefault(m.group("key"), []).append(r)
    per_field: dict[tuple[int, str], list] = {}
    for key, rs in per_key.items():
        lines = [(i, j) for j, i in enumerate(kept) if all(isinstance(t, dict) and isinstance(t.get("data"), dict)
                                                            and isinstance(t["data"].get(key), str)
                                                            for t in (before[i], after[j]))]
        pairs = [(before[i]["data"][key], after[j]["data"][key]) for i, j in lines]
        for (i, _), taken in zip(lines, in_order(pairs, [(r.start, r.original, r.sent) for r in rs])):
            if taken:
                per_field[(i, key)] = [rs[n] for n in taken]
    return per_field


def _shift(original: Any, sent: Any, dropped: tuple[int, ...], replacements: tuple[Replacement, ...],
           restorable: Callable[[Replacement], bool],
           lines: bool = False) -> tuple[Any, list[tuple[str, OffsetMap]], int]:
    """Sent tasks with their pre-annotations moved to the sent text, the maps to store (only the
    replacements the way back may undo), and how many results were moved. `lines`: the tasks were
    JSON Lines (a list of the lines' tasks)."""
    listed = isinstance(original, list) and not lines
    before = original if isinstance(original, list) else [original]
    after = sent if isinstance(sent, list) else [sent]
    kept = [i for i in range(len(before)) if i not in set(dropped)]
    moved = 0
    if len(kept) != len(after):
        return sent, [], moved
    per_field: dict[tuple[int, str], list] = _by_line(before, after, kept, replacements) if lines else {}
    for r in () if lines else replacements:
        m = _DATA_FIELD.fullmatch(r.path)
        if m and (m.group("task") is not None) == listed:
            per_field.setdefault((int(m.group("task") or 0), m.group("key")), []).append(r)
    maps = []
    for j, i in enumerate(kept):
        (orig_data, orig_results), = _tasks(before[i]) or [({}, [])]
        (sent_data, sent_results), = _tasks(after[j]) or [({}, [])]
        offsets = {}
        for (t, key), rs in per_field.items():
            if t != i:
                continue
            rs = sorted(rs, key=lambda r: r.start)
            offsets[key] = full = OffsetMap.from_replacements((r.start, r.original, r.sent, r.entity_type) for r in rs)
            stored = OffsetMap(tuple(s for s, r in zip(full.segments, rs) if restorable(r)))
            if isinstance(sent_data.get(key), str) and stored.segments:
                maps.append((sent_data[key], stored))
        orig_texts, sent_texts = _texts(orig_data), _texts(sent_data)
        olds, news = _spans(orig_results), _spans(sent_results)
        if len(olds) != len(news):
            continue
        for (item, value), (_, new) in zip(olds, news):
            key = _field(item, value, orig_texts)
            if key is None or key not in sent_texts:
                continue
            offset_map = offsets.get(key, OffsetMap())
            new["start"] = offset_map.to_sent(value["start"], "start")
            new["end"] = offset_map.to_sent(value["end"], "end")
            if "text" in new:
                new["text"] = sent_texts[key][new["start"]:new["end"]]
            moved += 1
    return sent, maps, moved


def _parsed(body: bytes) -> tuple[Any, bool]:
    """(tasks, whether they were JSON Lines): a JSON document, or one task a line; (None, False) else.
    A line that is not JSON is skipped on both sides (`bad_lines: drop` leaves it out of what is sent)."""
    try:
        return json.loads(body), False
    except ValueError:
        pass
    tasks = []
    for line in body.splitlines():
        if line.strip():
            try:
                tasks.append(json.loads(line))
            except ValueError:
                continue
    return (tasks, True) if tasks else (None, False)


def _part_spans(body: bytes, content_type: str) -> list[tuple[int, int]]:
    """Where each part's content sits in a multipart/form-data body; [] if it is not one."""
    if not content_type.lower().startswith("multipart/form-data"):
        return []
    msg = Message()
    msg["content-type"] = content_type
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        return []
    delim = b"--" + boundary.encode("latin-1")
    spans, pos = [], body.find(delim)
    while pos >= 0 and body[pos + len(delim):pos + len(delim) + 2] != b"--":
        head_end = body.find(b"\r\n\r\n", pos)
        end = body.find(b"\r\n" + delim, head_end + 4) if head_end >= 0 else -1
        if end < 0:
            return []
        spans.append((head_end + 4, end))
        pos = end + 2
    return spans


def _task_part(before: bytes, after: bytes, content_type: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """A file import (multipart): (span in the caller's body, span in the body sent) of the one part
    that holds tasks as JSON or JSON Lines; None when it is not multipart or no single part does."""
    ours, theirs = _part_spans(before, content_type), _part_spans(after, content_type)
    holding = [n for n, (a, b) in enumerate(ours) if _parsed(before[a:b])[0] is not None
               and _tasks(_parsed(before[a:b])[0])]
    if len(holding) != 1 or len(ours) != len(theirs):
        return None
    return ours[holding[0]], theirs[holding[0]]


def _serialized(sent: Any, lines: bool) -> bytes:
    if lines:
        return b"".join(json.dumps(t, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for t in sent)
    return json.dumps(sent, ensure_ascii=False, separators=(",", ":")).encode()


async def import_tasks(method: str, out: Outbound, protected: Protected, policy: Policy, vault: TokenVault | None,
                       keys: KeyProvider) -> Protected:
    """Before a task import goes out: pre-annotation offsets moved to the text the labeler sees, and each
    changed data field's map (its reversible replacements) stored in the vault for the way back."""
    if method not in ("POST", "PUT", "PATCH") or not protected.replacements or not protected.body:
        return protected
    never = {t.upper() for t in policy.never_restore}

    def restorable(r: Replacement) -> bool:  # what the way back may undo: a reversible action, not `never_restore`
        return ACTIONS[r.action].reversible and r.entity_type.upper() not in never

    def work():
        before, after = bytes(out.body), bytes(protected.body)
        part = _task_part(before, after, out.content_type)  # a file upload: the one part that holds tasks
        if part is not None:
            (a, b), (c, d) = part
            before, after = before[a:b], after[c:d]
        (original, lines), (sent, _) = _parsed(before), _parsed(after)
        if original is None or sent is None or not _tasks(original):
            return None
        sent, maps, moved = _shift(original, sent, protected.dropped_tasks, protected.replacements, restorable, lines)
        body = _serialized(sent, lines) if moved else None
        if body is not None and part is not None:
            body = protected.body[:part[1][0]] + body + protected.body[part[1][1]:]
        key = keys.derive(MAP_PURPOSE, out.vendor, keys.current_id())
        rows = [Issued(_digest(key, text), MAP_TYPE, json.dumps(m.to_json(), ensure_ascii=False)) for text, m in maps]
        return body, rows

    result = await asyncio.to_thread(work)
    if result is None:
        return protected
    body, rows = result
    if rows:  # stored before the import leaves, or it is refused (`IssueError`)
        try:
            await store_issued(vault, out.vendor, tuple(rows), out.scope)
        except SurrogateCollision as exc:  # the same sent text already maps elsewhere: the first map stays
            await store_issued(vault, out.vendor, tuple(r for r in rows if r not in exc.issued), out.scope)
    return dataclasses.replace(protected, body=body) if body is not None else protected


async def restore_tasks(data: Any, restorer: Restorer) -> tuple[Any, Restorer]:
    """An export, task list or webhook payload on its way back: each data field whose map the vault
    holds (for this caller's scope) gets its original text, result offsets and texts are mapped back,
    and the replaced values become known surrogates for the rest of the restore (comments, free text).
    Returns a new document (the vendor's is left as it came); the CPU work runs off the event loop."""
    keys, vendor = restorer.keys, restorer.vendor

    def names_of() -> dict[str, str]:
        derived = [keys.derive(MAP_PURPOSE, vendor, key_id) for key_id in keys.key_ids()]
        return {_digest(key, text).lower(): text for task_data, _ in _tasks(data)
                for text in _texts(task_data).values() for key in derived}

    names = await asyncio.to_thread(names_of)
    if not names:
        return data, restorer
    found = await restorer.vault.lookup(vendor, list(names))
    found = {k: v for k, v in found.items() if v.entity_type == MAP_TYPE}
    if restorer.scope is not None:
        inside = await restorer.vault.in_scope(vendor, restorer.scope, list(found)) if restorer.scope else set()
        found = {k: v for k, v in found.items() if k in inside}
    if not found:
        return data, restorer
    maps = {names[k]: OffsetMap.from_json(json.loads(v.original)) for k, v in found.items()}
    shaped, known, mapped = await asyncio.to_thread(_map_back, copy.deepcopy, data, maps)
    extended = restorer.with_known(known)
    extended.restored += mapped
    return shaped, extended


def _map_back(clone, data: Any, maps: dict[str, OffsetMap]) -> tuple[Any, list[Issued], int]:
    """A copy of `data` with mapped fields and results, the surrogates the maps name, and how many were mapped."""
    data = clone(data)
    known, mapped = [], 0
    for task_data, results in _tasks(data):
        sent_texts = _texts(task_data)
        restored = {key: (maps[text], back) for key, text in sent_texts.items() if text in maps
                    for back in [maps[text].restore(text)] if back is not None}
        for item, value in _spans(results):
            key = _field(item, value, sent_texts)
            if key not in restored:
                continue
            offset_map, back = restored[key]
            start, end = offset_map.to_original(value["start"], "start"), offset_map.to_original(value["end"], "end")
            value["start"], value["end"] = start, end
            if "text" in value:
                value["text"] = back[start:end]
            mapped += 1
        for key, (offset_map, back) in restored.items():
            task_data[key] = back
            known += [Issued(s.sent, s.entity_type, s.original) for s in offset_map.segments]
            mapped += 1
    return data, known, mapped


PRESET = Preset(
    "label-studio", media=MEDIA, structure=STRUCTURE, content=CONTENT, dialect=KNOWN, error=error,
    response_kinds=(("GET", re.compile(r"/?api/projects/\d+/export"), "json"),),
    outbound=import_tasks, inbound_json=restore_tasks,
)
