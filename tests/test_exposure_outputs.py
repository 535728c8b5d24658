"""Sink configuration checked at start-up. Real traffic with every sink, and the
check that no output holds a raw value, is `test_audit_end_to_end.py`."""

from __future__ import annotations

import pytest
from support import sinks_yaml, two_vendor_config

from gateway.app.server import build_app
from gateway.config import ConfigError, load_config


def test_a_missing_hec_token_stops_the_gateway_from_starting(tmp_path, monkeypatch):
    monkeypatch.delenv("VG_TEST_HEC", raising=False)
    settings = load_config(two_vendor_config(tmp_path, "http://127.0.0.1:9", sinks_yaml(tmp_path, 514, 8088)))
    with pytest.raises(ConfigError, match="VG_TEST_HEC"):
        build_app(settings)


def test_sinks_of_one_type_need_their_own_names(tmp_path):
    extra = "sinks:\n  - {type: syslog, host: a}\n  - {type: syslog, host: b}\n"
    with pytest.raises(ConfigError, match="sink names must be unique"):
        load_config(two_vendor_config(tmp_path, "http://127.0.0.1:9", extra))
