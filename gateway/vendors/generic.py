"""`format: generic` (the default): no field rules beyond the policy's, every known
stream dialect restored, the gateway's own error JSON."""

from __future__ import annotations

from gateway.vendors.preset import Preset

PRESET = Preset("generic")
