"""Vendor format presets (`format:` on a vendor): one module per format.

Each module holds a `Preset`: the field rules that say which parts of that
vendor's requests are content, structure and media; the stream dialect the
restorer reads its events with; the vendor's error shape; and responses that
need a restore kind their content type does not say (batch output files,
exports).
"""

from __future__ import annotations

from gateway.vendors import anthropic, generic, label_studio, labelbox, openai
from gateway.vendors.preset import Preset

PRESETS: dict[str, Preset] = {p.name: p for p in (generic.PRESET, openai.PRESET, anthropic.PRESET,
                                                  label_studio.PRESET, labelbox.PRESET)}
FORMATS = tuple(PRESETS)


def preset(name: str) -> Preset:
    return PRESETS[name]
