"""Audit records streamed to real receivers on 127.0.0.1 (in support.py), including
receivers that stop in the middle of the load and come back."""

from __future__ import annotations

import asyncio
import json

from support import (
    RFC5424,
    HecReceiver,
    TcpReceiver,
    free_port,
    load_with_an_outage,
    once_in_order,
    parse_syslog,
    sink_record,
    wait_for,
)

from gateway.audit.settings import HttpSink, JsonlSink, SyslogSink
from gateway.audit.sinks import SinkHub, syslog_message


async def test_tcp_syslog_receiver_that_stops_mid_load_gets_every_record_in_order(tmp_path):
    receiver = TcpReceiver(free_port())
    await receiver.start()
    hub = SinkHub([SyslogSink(type="syslog", host="127.0.0.1", port=receiver.port, protocol="tcp",
                              confirm_seconds=0.3, batch_size=20)], tmp_path / "spool")
    sent = await load_with_an_outage(hub, receiver)
    assert once_in_order(receiver.got) == sent
    await receiver.stop()


async def test_splunk_hec_receiver_that_stops_mid_load_gets_every_record_once_in_order(tmp_path):
    receiver = HecReceiver(free_port(), "hec-token-123")
    await receiver.start()
    cfg = HttpSink(type="http", url=f"http://127.0.0.1:{receiver.port}/services/collector/event",
                   token_env="TEST_HEC_TOKEN", batch_size=10)
    hub = SinkHub([cfg], tmp_path / "spool", env={"TEST_HEC_TOKEN": "hec-token-123"})
    sent = await load_with_an_outage(hub, receiver)
    assert [r["id"] for r in receiver.got] == sent  # HTTP acknowledges: exactly once here
    assert receiver.bad_auth == 0
    await receiver.stop()


async def test_spooled_records_wait_on_disk_for_the_next_start(tmp_path):
    port = free_port()
    cfg = HttpSink(type="http", url=f"http://127.0.0.1:{port}/services/collector/event", token_env="T")
    hub = SinkHub([cfg], tmp_path / "spool", env={"T": "tok"})
    await hub.start()
    for i in range(25):
        await hub.publish(sink_record(i))
    await hub.close(flush_seconds=0.2)  # nobody listening: everything stays spooled
    assert len((tmp_path / "spool" / "http.jsonl").read_bytes().splitlines()) == 25

    receiver = HecReceiver(port, "tok")
    await receiver.start()
    hub = SinkHub([cfg], tmp_path / "spool", env={"T": "tok"})
    await hub.start()
    await hub.publish(sink_record(25))
    assert await wait_for(lambda: len(receiver.got) == 26)
    await hub.close()
    assert [r["id"] for r in receiver.got] == [f"rec{i:05d}" for i in range(26)]
    assert (tmp_path / "spool" / "http.jsonl").read_bytes() == b""  # delivered spool is emptied
    await receiver.stop()


async def test_udp_syslog_and_jsonl_sinks_deliver_in_order(tmp_path):
    got: list[dict] = []

    class Collector(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            got.append(parse_syslog(data))

    port = free_port()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(Collector, local_addr=("127.0.0.1", port))
    hub = SinkHub([SyslogSink(type="syslog", name="udp", host="127.0.0.1", port=port, protocol="udp"),
                   JsonlSink(type="jsonl", path=tmp_path / "audit.jsonl")], tmp_path / "spool")
    await hub.start()
    for i in range(40):
        await hub.publish(sink_record(i))
    assert await wait_for(lambda: len(got) == 40)
    await hub.close()
    transport.close()
    want = [f"rec{i:05d}" for i in range(40)]
    assert [r["id"] for r in got] == want
    assert [json.loads(line)["id"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()] == want


def test_syslog_message_is_rfc5424_with_escaped_structured_data():
    cfg = SyslogSink(type="syslog", host="h", facility=13)
    rec = dict(sink_record(1), caller='a"b]c\\d', decision="blocked")
    m = RFC5424.match(syslog_message(rec, cfg, "gw-1"))
    assert m and int(m.group(1)) == 13 * 8 + 4 and m.group(3) == b"gw-1" and m.group(4) == b"vendorgate"
    assert b'caller="a\\"b\\]c\\\\d"' in m.group(6)
    assert json.loads(m.group(7))["caller"] == 'a"b]c\\d'
