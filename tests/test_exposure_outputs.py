"""Real traffic through the gateway with every sink configured: the sinks receive
each audit record, and no ledger, audit, sink, report or log output holds a raw value."""

from __future__ import annotations

import json
import logging

import pytest

from gateway.audit import AuditLog
from gateway.cli import main
from gateway.config import ConfigError, load_config
from gateway.keys import LocalKeyProvider
from gateway.server import build_app
from support import free_port
from test_ledger import CARD, EMAIL, SSN, send, two_vendor_config
from test_sinks import HecReceiver, TcpReceiver, wait_for

NAME = "Jane Doe"
RAW = [EMAIL, EMAIL.lower(), CARD, CARD.replace(" ", ""), SSN, SSN.replace("-", ""), NAME]


def sinks_yaml(tmp_path, syslog_port: int, hec_port: int) -> str:
    return (f"sinks:\n"
            f"  - {{type: jsonl, path: {tmp_path / 'siem' / 'audit.jsonl'}}}\n"
            f"  - {{type: syslog, host: 127.0.0.1, port: {syslog_port}, protocol: tcp, confirm_seconds: 0.1}}\n"
            f"  - {{type: http, url: 'http://127.0.0.1:{hec_port}/services/collector/event', token_env: VG_TEST_HEC}}\n")


async def test_every_output_holds_no_raw_value(tmp_path, upstream, start_gateway, monkeypatch, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("VG_TEST_HEC", "hec-secret")
    syslog, hec = TcpReceiver(free_port()), HecReceiver(free_port(), "hec-secret")
    await syslog.start()
    await hec.start()
    gw = await start_gateway(two_vendor_config(tmp_path, upstream.url, sinks_yaml(tmp_path, syslog.port, hec.port)))
    statuses = [(await send(gw, vendor, text, "billing-svc")).status_code for vendor, text in (
        ("alpha", f"{NAME} <{EMAIL}> paid with {CARD}"),
        ("beta", f"{NAME} <{EMAIL}> paid with {CARD}"),
        ("alpha", f"ssn {SSN} for {EMAIL}"),
    )]
    assert statuses == [200, 200, 403]
    assert EMAIL in upstream.received[0].text  # the test is real: alpha did get the value

    keys = LocalKeyProvider.in_data_dir(gw.data_dir)
    ids = [r["id"] for r in AuditLog.in_data_dir(gw.data_dir, keys).records()]
    assert await wait_for(lambda: [r["id"] for r in syslog.got] == ids and [r["id"] for r in hec.got] == ids)
    jsonl = tmp_path / "siem" / "audit.jsonl"
    assert await wait_for(lambda: jsonl.exists() and len(jsonl.read_text().splitlines()) == 3)
    assert [json.loads(line)["id"] for line in jsonl.read_text().splitlines()] == ids

    report = tmp_path / "report"
    assert main(["report", "--data-dir", str(gw.data_dir), "--html", f"{report}.html", "--json", f"{report}.json",
                 "--csv", f"{report}.csv"]) == 0
    assert main(["audit", "who-saw", EMAIL, "--data-dir", str(gw.data_dir)]) == 0
    assert main(["audit", "vendor", "alpha", "--data-dir", str(gw.data_dir)]) == 0
    assert main(["audit", "list", "--json", "--data-dir", str(gw.data_dir)]) == 0
    outputs = {"stdout": capsys.readouterr().out, "logs": caplog.text,
               "syslog": json.dumps(syslog.got), "hec": json.dumps(hec.got)}
    for path in list(gw.data_dir.rglob("*")) + list(tmp_path.glob("report.*")) + [jsonl]:
        if path.is_file() and path.name != "keys.json":
            outputs[str(path)] = path.read_bytes().decode("utf-8", "replace")
    assert any("ledger.sqlite" in name for name in outputs) and any("spool" in name for name in outputs)
    leaks = [(name, value) for name, text in outputs.items() for value in RAW if value in text]
    assert leaks == []
    await syslog.stop()
    await hec.stop()


def test_a_missing_hec_token_stops_the_gateway_from_starting(tmp_path, monkeypatch):
    monkeypatch.delenv("VG_TEST_HEC", raising=False)
    settings = load_config(two_vendor_config(tmp_path, "http://127.0.0.1:9", sinks_yaml(tmp_path, 514, 8088)))
    with pytest.raises(ConfigError, match="VG_TEST_HEC"):
        build_app(settings)


def test_sinks_of_one_type_need_their_own_names(tmp_path):
    extra = "sinks:\n  - {type: syslog, host: a}\n  - {type: syslog, host: b}\n"
    with pytest.raises(ConfigError, match="sink names must be unique"):
        load_config(two_vendor_config(tmp_path, "http://127.0.0.1:9", extra))
