"""Audit records streamed to real receivers on 127.0.0.1, including receivers
that stop in the middle of the load and come back."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import datetime, timezone

from aiohttp import web

from gateway.audit import AuditRecord
from gateway.audit.settings import HttpSink, JsonlSink, SyslogSink
from gateway.audit.sinks import SinkHub, syslog_message
from support import free_port

RFC5424 = re.compile(rb'^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\d+) audit \[vendorgate@32473 ((?:[^\]\\]|\\.)*)\] \xef\xbb\xbf(\{.*\})$', re.S)


def record(i: int) -> dict:
    return AuditRecord(id=f"rec{i:05d}", ts=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                       request_id=uuid.uuid4().hex, caller="billing-svc", vendor="acme", method="POST",
                       path="/v1/chat", decision="forwarded", status=200, findings={"PERSON": 1}).to_dict()


def parse_syslog(message: bytes) -> dict:
    m = RFC5424.match(message)
    assert m, message[:200]
    return json.loads(m.group(7))


class TcpReceiver:
    """A syslog collector: RFC 6587 octet-counted frames over TCP."""

    def __init__(self, port: int):
        self.port, self.got, self.server, self.clients, self.dead = port, [], None, set(), False

    async def start(self):
        self.dead = False
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader, writer):
        self.clients.add(writer)
        try:
            while True:
                length = await reader.readuntil(b" ")
                message = await reader.readexactly(int(length[:-1]))
                if self.dead:  # crashed: what was not processed is gone
                    return
                self.got.append(parse_syslog(message))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def stop(self):
        """Like a crash: connections reset, unprocessed bytes lost."""
        self.dead = True
        self.server.close()
        for w in self.clients:
            w.transport.abort()
        self.clients.clear()
        await self.server.wait_closed()


class HecReceiver:
    """A Splunk HEC stand-in: concatenated JSON events, token checked."""

    def __init__(self, port: int, token: str):
        self.port, self.token, self.got, self.runner, self.bad_auth = port, token, [], None, 0

    async def _handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Splunk {self.token}":
            self.bad_auth += 1
            return web.json_response({"text": "Invalid token", "code": 4}, status=401)
        for line in (await request.text()).splitlines():
            event = json.loads(line)
            assert set(event) == {"time", "host", "source", "sourcetype", "event"}
            self.got.append(event["event"])
        return web.json_response({"text": "Success", "code": 0})

    async def start(self):
        app = web.Application()
        app.router.add_post("/services/collector/event", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self):
        await self.runner.cleanup()


def once_in_order(got: list[dict]) -> list[str]:
    """Ids in first-arrival order (at-least-once delivery, deduped by record id)."""
    seen, out = set(), []
    for r in got:
        if r["id"] not in seen:
            seen.add(r["id"])
            out.append(r["id"])
    return out


async def wait_for(predicate, seconds: float = 30.0):
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def load_with_an_outage(hub: SinkHub, receiver, total: int = 300, stop_at: int = 80) -> list[str]:
    """Publish `total` records; stop the receiver once it holds `stop_at`, bring it back after the load."""
    sent = [record(i) for i in range(total)]
    await hub.start()
    stopped = asyncio.Event()

    async def outage():
        await wait_for(lambda: len(receiver.got) >= stop_at)
        await receiver.stop()
        stopped.set()

    task = asyncio.create_task(outage())
    for r in sent:
        await hub.publish(r)
        await asyncio.sleep(0.003)
    await asyncio.wait_for(task, 30)
    assert len(once_in_order(receiver.got)) < total  # the outage really cut the stream
    await asyncio.sleep(0.3)
    await receiver.start()
    assert await wait_for(lambda: len(once_in_order(receiver.got)) == total)
    await hub.close()
    return [r["id"] for r in sent]


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
        await hub.publish(record(i))
    await hub.close(flush_seconds=0.2)  # nobody listening: everything stays spooled
    assert len((tmp_path / "spool" / "http.jsonl").read_bytes().splitlines()) == 25

    receiver = HecReceiver(port, "tok")
    await receiver.start()
    hub = SinkHub([cfg], tmp_path / "spool", env={"T": "tok"})
    await hub.start()
    await hub.publish(record(25))
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
        await hub.publish(record(i))
    assert await wait_for(lambda: len(got) == 40)
    await hub.close()
    transport.close()
    want = [f"rec{i:05d}" for i in range(40)]
    assert [r["id"] for r in got] == want
    assert [json.loads(line)["id"] for line in (tmp_path / "audit.jsonl").read_text().splitlines()] == want


def test_syslog_message_is_rfc5424_with_escaped_structured_data():
    cfg = SyslogSink(type="syslog", host="h", facility=13)
    rec = dict(record(1), caller='a"b]c\\d', decision="blocked")
    m = RFC5424.match(syslog_message(rec, cfg, "gw-1"))
    assert m and int(m.group(1)) == 13 * 8 + 4 and m.group(3) == b"gw-1" and m.group(4) == b"vendorgate"
    assert b'caller="a\\"b\\]c\\\\d"' in m.group(6)
    assert json.loads(m.group(7))["caller"] == 'a"b]c\\d'
