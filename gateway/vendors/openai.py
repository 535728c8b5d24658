"""`format: openai`: Chat Completions, the Responses API, embeddings, and batches.

Content (scanned): `messages[*].content` (text or parts), tool-call `arguments`
and tool results (JSON inside a string: parsed and scanned field by field),
Responses `input` and `instructions`, legacy `prompt`, embeddings `input`.
Structure (forwarded as is): model and settings, `tools` (our own function
schemas), roles, ids, `metadata`. Media: `image_url.url` / `image_url` data:
URLs, `input_audio.data`, `file_data`. Batch input lines (`custom_id`, `method`,
`url`, `body`) get the same rules under `$.body`. Batch output files
(`GET /v1/files/{id}/content`, JSON Lines sent as `application/octet-stream`)
are restored line by line as they stream back.
"""

from __future__ import annotations

import re

from gateway.refusal import Refusal
from gateway.reversible.dialects import KNOWN
from gateway.vendors.preset import Preset, also_under, described, retry_headers

MEDIA = ("$..image_url.url", "$..image_url", "$..input_audio.data", "$..file_data", "$..audio.data")
STRUCTURE = also_under(("$.body",), (
    "$.model", "$.temperature", "$.top_p", "$.n", "$.stream", "$.stream_options", "$.max_tokens",
    "$.max_completion_tokens", "$.max_output_tokens", "$.stop", "$.presence_penalty", "$.frequency_penalty",
    "$.logit_bias", "$.logprobs", "$.top_logprobs", "$.seed", "$.response_format", "$.text", "$.reasoning",
    "$.reasoning_effort", "$.modalities", "$.audio", "$.service_tier", "$.store", "$.include", "$.truncation",
    "$.previous_response_id", "$.parallel_tool_calls", "$.tool_choice", "$.tools", "$.functions",
    "$.function_call", "$.encoding_format", "$.dimensions", "$.metadata", "$.prompt_cache_key",
    "$.messages[*].role", "$.messages[*].tool_call_id", "$.messages[*].tool_calls[*].id",
    "$.messages[*].tool_calls[*].type", "$.messages[*].tool_calls[*].function.name",
    "$.messages[*].content[*].type", "$.messages[*].content[*].image_url.detail",
    "$.messages[*].content[*].input_audio.format", "$.messages[*].content[*].file.file_id",
    "$.input[*].role", "$.input[*].type", "$.input[*].id", "$.input[*].call_id", "$.input[*].status",
    "$.input[*].name", "$.input[*].content[*].type", "$.input[*].content[*].detail",
    "$.input[*].content[*].file_id", "$.input[*].content[*].annotations",
)) + ("$.custom_id", "$.method", "$.url", "$.completion_window", "$.endpoint", "$.input_file_id", "$.purpose")
CONTENT = also_under(("$.body",), (
    "$.messages[*].content", "$.messages[*].tool_calls[*].function.arguments", "$.messages[*].name",
    "$.input", "$.instructions", "$.prompt", "$.user", "$.safety_identifier",
))


def error(exc: Refusal, request_id: str) -> tuple[dict, dict]:
    """OpenAI's error object: `{"error": {"message", "type", "param", "code"}}`."""
    kind = {"blocked": "vendorgate_blocked", "rejected": "invalid_request_error", "error": "server_error"}[exc.outcome]
    code = {"blocked": "blocked_by_policy", "rejected": "invalid_request", "error": "gateway_unavailable"}[exc.outcome]
    body = {"error": {"message": described(exc), "type": kind, "param": None, "code": code,
                      "entity_types": list(exc.entity_types), "request_id": request_id}}
    return body, retry_headers(exc)


PRESET = Preset(
    "openai", media=MEDIA, structure=STRUCTURE, content=CONTENT, nested_json=True, dialect=KNOWN, error=error,
    response_kinds=(("GET", re.compile(r"/?v1/files/[^/]+/content"), "jsonl"),),
)
