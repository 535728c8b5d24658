"""The `walk` stage: the request as units of fields — path, query, headers, then the body.

Units are parsed lazily and gathered into bounded groups (`GROUP_CHARS`,
`GROUP_UNITS`), so a large batch is never held parsed all at once. The
transform stage walks the same groups again: from memory when the body was
small enough to keep, else by parsing it again (cheap next to detection).
Group boundaries depend only on the units, so both walks agree.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from itertools import chain
from urllib.parse import quote, unquote

from gateway.payload.fields import Document, Field
from gateway.payload.formats import Shape, body_units, form_unit
from gateway.payload.units import Unit, literal
from gateway.pipeline.flow import Body, Outbound
from gateway.policy.fields import RuleSet

GROUP_CHARS = 500_000
GROUP_UNITS = 500
KEEP_CHARS = 2_000_000  # bodies with more field text than this are parsed again instead of kept
# A body larger than this is parsed (and later rewritten) on a thread, a group at a time, so
# the event loop keeps serving other requests meanwhile: reading 1 MB of JSON Lines holds a core
# for a few hundred ms. Smaller bodies stay on the loop, where a thread hop would cost more.
OFF_LOOP_BYTES = 64 * 1024
_END = object()
NO_RULES = RuleSet([])  # the query string: every name and value scanned


class Units:
    """The request's units in groups; iterate `groups()` for detection, then `again()` for the transform."""

    def __init__(self, walk: Callable[[], Iterator[Unit]], large: bool = False):
        self._walk = walk
        self._kept: list[list[Unit]] | None = None
        self.large = large  # parse and transform on a thread (`OFF_LOOP_BYTES`)

    async def each_group(self) -> AsyncIterator[list[Unit]]:
        """`groups()` for the event loop: a large body's groups are read on a thread."""
        groups = self.groups()
        if not self.large:
            for group in groups:
                yield group
            return
        while (group := await asyncio.to_thread(next, groups, _END)) is not _END:
            yield group

    def groups(self) -> Iterator[list[Unit]]:
        kept: list[list[Unit]] | None = []
        chars = 0
        for group in _grouped(self._walk()):
            if kept is not None:
                chars += sum(len(f.text) for unit in group for f in unit.fields)
                if chars <= KEEP_CHARS:
                    kept.append(group)
                else:
                    kept = None
            yield group
        self._kept = kept

    def again(self) -> Iterator[list[Unit]]:
        return iter(self._kept) if self._kept is not None else _grouped(self._walk())


def walk(out: Outbound, body: Body, shape: Shape) -> Units:
    def units() -> Iterator[Unit]:
        head = [document_unit(path_document(out.path), "path"),
                form_unit(out.query, NO_RULES, out.query.encode(), prefix="query", sink="query"),
                document_unit(headers_document(out.headers), "headers")]
        rest = body_units(body.data, body.content_type, shape) if body.scanned else iter([literal(body.data)])
        return chain(head, rest)

    return Units(units, large=len(body.data) > OFF_LOOP_BYTES)


def _grouped(units: Iterator[Unit]) -> Iterator[list[Unit]]:
    group: list[Unit] = []
    size = 0
    for unit in units:
        group.append(unit)
        size += sum(len(f.text) for f in unit.fields)
        if size >= GROUP_CHARS or len(group) >= GROUP_UNITS:
            yield group
            group, size = [], 0
    yield group


def path_document(path: str) -> Document:
    segments = path.split("/")
    fields = [Field(unquote(s), f"path[{i}]") for i, s in enumerate(segments)]

    def render(replacements: dict[int, str]) -> bytes:
        return "/".join(
            quote(replacements[i], safe="") if i in replacements else s for i, s in enumerate(segments)
        ).encode()

    return Document(fields, render, path.encode())


MACHINE_HEADERS = ("user-agent", "accept", "content-type", "traceparent", "tracestate", "x-request-id",
                   "idempotency-key", "if-match", "if-none-match", "cache-control", "openai-", "anthropic-",
                   "x-stainless-")


def headers_document(headers: tuple[tuple[str, str], ...]) -> Document:
    """Header values as fields (names are the schema); rendered as a JSON list of [name, value].
    Values of machine headers (`User-Agent`, `Accept`, SDK headers) get the pattern detectors only
    (an email or token in them is found; NER reads `python-httpx/0.28` as a name)."""
    fields = [Field(value, f"header[{name.lower()}]",
                    "machine" if name.lower().startswith(MACHINE_HEADERS) else "value") for name, value in headers]

    def render(replacements: dict[int, str]) -> bytes:
        return json.dumps([[name, replacements.get(i, value)] for i, (name, value) in enumerate(headers)]).encode()

    return Document(fields, render, render({}))


def document_unit(doc: Document, sink: str) -> Unit:
    return Unit(doc.fields, [None] * len(doc.fields), doc.render, sink=sink)
