"""The outbound data path, stage by stage:

decode body -> walk fields -> detect -> decide per policy -> transform -> encode.

`protect` takes what the caller sent and returns either what the vendor may
receive (`Protected`) or why nothing may be sent (`Refused`). Forwarding,
response handling and audit live in `gateway.proxy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from urllib.parse import quote, unquote

from gateway.actions import Issued
from gateway.payload.fields import BodyError, Document, Field, form_document, media_type
from gateway.budgets import BudgetError, Budgets
from gateway.decide import Decision
from gateway.detection.engine import DetectionEngine, DetectionError
from gateway.payload.encoding import EncodingError, decode_content
from gateway.payload.formats import Shape, body_units, kind_of
from gateway.reversible.issuing import MAX_TRIES, IssueError, store_issued
from gateway.keys import KeyProvider
from gateway.policy import Policy
from gateway.structured import FieldRun, RuleRefusal
from gateway.payload.units import Unit, literal
from gateway.reversible.vault import SurrogateCollision, TokenVault


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
    unscanned_parts: list[dict] = field(default_factory=list)  # multipart parts passed unscanned (sha256)
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
    vault: TokenVault | None = None, data_dir: Path | None = None, budgets: Budgets | None = None,
    fingerprints=None,
) -> Protected | Refused:
    try:
        body = decode_content(out.body, out.content_encoding, max_body_bytes) if out.content_encoding else out.body
        mtype, _ = media_type(out.content_type)
        if not mtype and _is_utf8(body):
            out.content_type, mtype = "text/plain; charset=utf-8", "text/plain"
        scan_body = not body or kind_of(mtype) is not None
        if not scan_body and policy.unknown_content == "block":
            return Refused(415, f"content type {mtype or '(none)'!r} cannot be scanned and the policy blocks unknown content")
    except (EncodingError, BodyError) as exc:
        return Refused(exc.status, str(exc))

    spec = policy.detection_spec(data_dir, fingerprints)
    shape = Shape(policy.rule_set, policy.nested_json, policy.bad_lines, policy.unknown_content)
    for _ in range(MAX_TRIES):
        collisions = vault.collisions(out.vendor) if vault is not None else {}
        run = FieldRun(policy, engine, out.vendor, keys, spec, budgets, {"collisions": collisions} if vault else {})
        units = [document_unit(path_document(out.path), "path"),
                 document_unit(form_document(out.query, "query"), "query")]
        try:
            body_iter = body_units(body, out.content_type, shape) if scan_body else iter([literal(body)])
            await run.run(chain(units, body_iter))
            await store_issued(vault, out.vendor, run.issued)
        except (EncodingError, BodyError) as exc:
            return Refused(exc.status, str(exc))
        except RuleRefusal as exc:
            return Refused(exc.status, str(exc), exc.entity_types, exc.decision)
        except DetectionError as exc:
            return Refused(503, f"detection unavailable, request not forwarded: {exc}")
        except BudgetError as exc:
            return Refused(503, f"exposure budget store unavailable, request not forwarded: {exc}")
        except IssueError as exc:
            return Refused(503, f"{exc}; request not forwarded", decision=run.decision)
        except SurrogateCollision:
            continue
        path, query = run.output("path", out.path.encode()), run.output("query", out.query.encode())
        return Protected(path.decode(), query.decode(), run.output("body", body), run.decision, run.issued,
                         scanned=scan_body, unscanned_parts=run.passed, seen=run.seen,
                         caller_literals=run.caller_literals)
    return Refused(503, f"surrogates still collided after {MAX_TRIES} tries; request not forwarded")


def document_unit(doc: Document, sink: str) -> Unit:
    return Unit(doc.fields, [None] * len(doc.fields), doc.render, sink=sink)
