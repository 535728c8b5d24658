"""The outbound data path, stage by stage:

decode body -> walk fields -> detect -> decide per policy -> transform -> encode.

`protect` takes what the caller sent and returns either what the vendor may
receive (`Protected`) or why nothing may be sent (`Refused`). Forwarding,
response handling and audit live in `gateway.proxy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from gateway.actions import Issued
from gateway.bodies import BodyError, Document, Field, decode_body, form_document, is_known, media_type
from gateway.decide import Decision, decide
from gateway.detection.engine import DetectionEngine, DetectionError
from gateway.encoding import EncodingError, decode_content
from gateway.keys import KeyProvider
from gateway.policy import Policy
from gateway.transform import transform


@dataclass
class Outbound:
    """What the caller asked us to send, before any protection."""

    vendor: str
    path: str
    query: str
    body: bytes
    content_type: str = ""
    content_encoding: str = ""


@dataclass
class Protected:
    path: str
    query: str
    body: bytes
    decision: Decision
    issued: list[Issued] = field(default_factory=list)
    scanned: bool = True


@dataclass
class Refused:
    status: int
    error: str
    entity_types: list[str] = field(default_factory=list)
    decision: Decision | None = None


def path_document(path: str) -> Document:
    segments = path.split("/")
    fields = [Field(unquote(s), f"path[{i}]") for i, s in enumerate(segments)]

    def render(replacements: dict[int, str]) -> bytes:
        return "/".join(
            quote(replacements[i], safe="") if i in replacements else s for i, s in enumerate(segments)
        ).encode()

    return Document(fields, render, path.encode())


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def protect(
    out: Outbound, policy: Policy, engine: DetectionEngine, keys: KeyProvider, max_body_bytes: int
) -> Protected | Refused:
    try:
        body = decode_content(out.body, out.content_encoding, max_body_bytes) if out.content_encoding else out.body
        mtype, _ = media_type(out.content_type)
        if not mtype and _is_utf8(body):
            out.content_type, mtype = "text/plain; charset=utf-8", "text/plain"
        scan_body = not body or is_known(mtype)
        if not scan_body and policy.unknown_content == "block":
            return Refused(415, f"content type {mtype or '(none)'!r} cannot be scanned and the policy blocks unknown content")
        documents = [
            path_document(out.path),
            form_document(out.query, "query"),
            decode_body(body, out.content_type) if scan_body else Document([], lambda r: body, body),
        ]
    except (EncodingError, BodyError) as exc:
        return Refused(exc.status, str(exc))

    fields = [f for doc in documents for f in doc.fields]
    spec = policy.detection_spec()
    try:
        findings = await engine.detect([f.text for f in fields], spec)
    except DetectionError as exc:
        return Refused(503, f"detection unavailable, request not forwarded: {exc}")

    decision = decide(findings, policy)
    if decision.blocked:
        return Refused(403, "blocked by policy", decision.blocked_types, decision)

    issued: list[Issued] = []
    rendered: list[bytes] = []
    offset = 0
    for doc in documents:
        replacements = {}
        for i, f in enumerate(doc.fields):
            planned = decision.plans.get(offset + i)
            if planned:
                replacements[i] = transform(f.text, planned, out.vendor, keys, issued)
        rendered.append(doc.render(replacements))
        offset += len(doc.fields)
    path, query, new_body = rendered
    return Protected(path.decode(), query.decode(), new_body, decision, issued, scanned=scan_body)
