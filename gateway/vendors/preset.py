"""A vendor format preset: field rules, a stream dialect, an error shape, response kinds.

A preset is not a fork of the pipeline. Its request knowledge is field rules
(JSONPath, the same machinery as a policy's `fields:`), appended after the
policy's own rules, so the policy always wins (first match in file order):

1. media (`pass` or `block`, as the policy's `media:` says): base64 images,
   `data:` URLs, audio, files: never read or rewritten as text;
2. structure (`allow`): model, ids, roles, tool schemas, settings, metadata;
3. URLs the vendor fetches (Labelbox's asset URLs): the whole value is one `URL`,
   and the policy's `URL` action applies to it (`allow` forwards it byte for
   byte, `redact` / `tokenize` replace it whole, `block` refuses);
4. content (`scan`): messages, system prompts, tool inputs and results, task data.

Anything no rule names follows the policy's `field_default` (`scan` unless the
policy says otherwise): a field the preset does not know is scanned, not waved through.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.pipeline.flow import Protected
from gateway.policy import Policy
from gateway.policy.fields import FieldRule
from gateway.refusal import Refusal
from gateway.reversible.dialects import KNOWN, Dialect
from gateway.reversible.restore import Restorer

VERSION = "2"
# (refusal, request id) -> (JSON body, extra headers)
ErrorShape = Callable[[Refusal, str], tuple[dict, dict]]


def retry_headers(exc: Refusal) -> dict:
    """SDKs honour `x-should-retry`: a policy decision is final, a gateway that failed closed is not."""
    return {"x-should-retry": "true" if exc.outcome == "error" and exc.status >= 500 else "false"}


def described(exc: Refusal) -> str:
    """The refusal's message with the entity types (never values)."""
    if exc.entity_types:
        return f"{exc.message} (entity types: {', '.join(exc.entity_types)})"
    return exc.message


@dataclass(frozen=True)
class Preset:
    name: str
    media: tuple[str, ...] = ()
    structure: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    content: tuple[str, ...] = ()
    nested_json: bool = False
    dialect: Dialect = KNOWN
    error: ErrorShape | None = None
    # (method, path) -> a response kind the relay restores ("json", "jsonl", "text"), or None for its own choice
    response_kinds: tuple[tuple[str, re.Pattern, str], ...] = field(default_factory=tuple)
    # after protect, before forwarding: (method, Outbound, Protected, Policy, vault, keys) -> Protected
    # (Label Studio: pre-annotations moved to the sent text, offset maps stored)
    outbound: Callable[..., Awaitable[Protected]] | None = None
    # a JSON answer before its restore: (data, Restorer) -> (data, Restorer) (Label Studio: offsets mapped back)
    inbound_json: Callable[..., Awaitable[tuple[Any, Restorer]]] | None = None
    # keys of JSON answers whose value is a URL on the vendor's API the caller fetches next (Anthropic's
    # `results_url`): moved onto the gateway's route, so that download is restored too (gateway.app.links)
    links: tuple[str, ...] = ()

    def rules(self, policy: Policy) -> list[FieldRule]:
        rules = []
        if self.media:  # pass, block or scan_text_parts
            rules.append(FieldRule(select=list(self.media), action=policy.media))
        if self.structure:
            rules.append(FieldRule(select=list(self.structure), action="allow"))
        if self.urls and "URL" in policy.entities:  # a policy that does not detect URLs scans these as content
            rules.append(FieldRule(select=list(self.urls), action=policy.action_for("URL"), entity_type="URL"))
        if self.content:
            rules.append(FieldRule(select=list(self.content), action="scan"))
        return rules

    def response_kind(self, method: str, path: str) -> str | None:
        for verb, pattern, kind in self.response_kinds:
            if verb == method and pattern.fullmatch(path):
                return kind
        return None

    def apply(self, policy: Policy) -> Policy:
        """The policy with this preset's rules after its own."""
        rules = self.rules(policy)
        if not rules and not self.nested_json:
            return policy
        digest = hashlib.sha256(f"{policy.digest}:{self.name}:{VERSION}".encode()).hexdigest()  # media is the policy's
        applied = policy.model_copy(update={"fields": [*policy.fields, *rules], "digest": digest,
                                            "nested_json": policy.nested_json or self.nested_json})
        applied.__dict__.pop("rule_set", None)  # compiled again with the preset's rules
        return applied


def also_under(prefixes: tuple[str, ...], selectors: tuple[str, ...]) -> tuple[str, ...]:
    """Each `$.x` selector also at `{prefix}.x`: batch lines carry a request under `$.body`."""
    return selectors + tuple(p + s[1:] for p in prefixes for s in selectors if s.startswith("$.") or s.startswith("$["))
