"""The outbound data path, stage by stage:

decode body -> walk fields -> detect -> decide per policy -> transform -> encode.

`protect` takes what the caller sent and returns either what the vendor may
receive (`Protected`) or why nothing may be sent (`Refused`). Forwarding,
response handling and audit live in `gateway.proxy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

from gateway.actions import Issued
from gateway.bodies import BodyError, Document, Field, decode_body, form_document, is_known, media_type
from gateway.decide import Decision, decide
from gateway.budgets import BudgetError, Budgets
from gateway.detection.analyzer import DetectionSpec
from gateway.detection.company import company_spec
from gateway.detection.engine import DetectionEngine, DetectionError
from gateway.encoding import EncodingError, decode_content
from gateway.issuing import IssueError, caller_literals, render_and_store
from gateway.keys import KeyProvider
from gateway.policy import Policy
from gateway.transform import ActionFailed
from gateway.vault import TokenVault


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
    seen: list = field(default_factory=list, repr=False)  # (Planned, original, sent) for the exposure ledger
    caller_literals: set[str] = field(default_factory=set)


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
    out: Outbound, policy: Policy, engine: DetectionEngine, keys: KeyProvider, max_body_bytes: int,
    vault: TokenVault | None = None,
    data_dir: Path | None = None, budgets: Budgets | None = None,
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
    spec = DetectionSpec(entities=policy.entities, min_score=policy.min_score, company=company_spec(policy, data_dir))
    try:
        findings = await engine.detect([f.text for f in fields], spec)
    except DetectionError as exc:
        return Refused(503, f"detection unavailable, request not forwarded: {exc}")

    decision = decide(findings, policy)
    if decision.blocked:
        return Refused(403, "blocked by policy", decision.blocked_types, decision)
    if budgets is not None and policy.budgets:
        try:
            exhausted = await budgets.enforce(out.vendor, policy, [f.text for f in fields], decision)
        except BudgetError as exc:
            return Refused(503, f"exposure budget store unavailable, request not forwarded: {exc}")
        if exhausted:
            return Refused(403, "exposure budget exhausted for this vendor", exhausted, decision)

    try:
        rendered = await render_and_store(documents, decision, out.vendor, keys, vault)
    except ActionFailed as exc:
        return Refused(403, str(exc), [exc.entity_type], decision)
    except IssueError as exc:
        return Refused(503, f"{exc}; request not forwarded", decision=decision)
    path, query, new_body = rendered.parts
    literals = caller_literals((f.text for f in fields), policy.reversible_types, rendered.issued)
    return Protected(path.decode(), query.decode(), new_body, decision, rendered.issued,
                     scanned=scan_body, seen=rendered.seen, caller_literals=literals)
