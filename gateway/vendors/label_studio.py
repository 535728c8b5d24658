"""`format: label-studio`: task import and export.

Label Studio puts every task field under `data` (`data.text`, `data.image`, and
whatever columns the project has: `data.customer_id`, `data.internal_notes`),
so the policy's rules name `$[*].data.<field>` (a JSON array import) and
`$.data.<field>` (one task, a JSON Lines line). The preset forwards the
labeling structure as is (ids, `from_name` / `to_name`, label choices, offsets,
model versions) and scans the rest; `data.image` / `data.audio` as `data:` URLs
are media. The export (`GET /api/projects/{id}/export`) is restored, whatever
content type the file download is sent with.
"""

from __future__ import annotations

import re

from gateway.refusal import Refusal
from gateway.reversible.dialects import KNOWN
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


PRESET = Preset(
    "label-studio", media=MEDIA, structure=STRUCTURE, content=CONTENT, dialect=KNOWN, error=error,
    response_kinds=(("GET", re.compile(r"/?api/projects/\d+/export"), "json"),),
)
