"""`format: anthropic`: the Messages API and Message Batches.

Content (scanned): `system` (text or blocks), `messages[*].content` (text,
`tool_use.input`, `tool_result.content`, thinking text, document text).
Structure (forwarded as is): model and settings, `tools` (schemas), `thinking`,
`metadata`, roles, block types, ids, `tool_use_id`, names, signatures,
`cache_control`, media types. Media: `source.data` of base64 images and
documents. Batch requests (`requests[*].params`) get the same rules.
Streams: `text_delta`, `input_json_delta` and `thinking_delta` per content block.

Message Batches round trip: a batch's `results_url` (absolute, on Anthropic's
host) is a link the SDK follows with the caller's headers, so it is moved onto
the gateway's route; the results file (`GET .../batches/{id}/results`, JSON
Lines: one `{"custom_id", "result"}` a line, sent as `application/x-jsonl`) is
restored line by line as it streams back, whatever its content type says.
"""

from __future__ import annotations

import re

from gateway.refusal import Refusal
from gateway.reversible.dialects import ANTHROPIC
from gateway.vendors.preset import Preset, also_under, described, retry_headers

MEDIA = ("$..source.data",)
STRUCTURE = also_under(("$.requests[*].params",), (
    "$.model", "$.max_tokens", "$.stream", "$.temperature", "$.top_p", "$.top_k", "$.stop_sequences",
    "$.tool_choice", "$.tools", "$.thinking", "$.metadata", "$.service_tier", "$.container", "$.mcp_servers",
    "$.messages[*].role", "$.messages[*].content[*].type", "$.messages[*].content[*].id",
    "$.messages[*].content[*].tool_use_id", "$.messages[*].content[*].name",
    "$.messages[*].content[*].signature", "$.messages[*].content[*].data",
    "$.messages[*].content[*].is_error", "$.messages[*].content[*].cache_control",
    "$.messages[*].content[*].source.type", "$.messages[*].content[*].source.media_type",
    "$.messages[*].content[*].content[*].type", "$.system[*].type", "$.system[*].cache_control",
)) + ("$.requests[*].custom_id",)
CONTENT = also_under(("$.requests[*].params",), ("$.system", "$.messages[*].content"))
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error"}


def error(exc: Refusal, request_id: str) -> tuple[dict, dict]:
    """Anthropic's error object: `{"type": "error", "error": {"type", "message"}}`."""
    kind = ERROR_TYPES.get(exc.status, "api_error" if exc.status >= 500 else "invalid_request_error")
    body = {"type": "error", "error": {"type": kind, "message": described(exc)}, "request_id": request_id}
    return body, retry_headers(exc)


PRESET = Preset(
    "anthropic", media=MEDIA, structure=STRUCTURE, content=CONTENT, dialect=ANTHROPIC, error=error,
    response_kinds=(("GET", re.compile(r"/?v1/messages/batches/[^/]+/results"), "jsonl"),),
    links=("results_url",),
)
