"""Shared test helpers (plain functions, classes and constants; the fixtures are in
`conftest.py`). Test modules import from here, never from each other.

Sections: where things are · the recording upstream · talking to the gateway and
the CLI · the sensitive payload · two vendors (the ledger's traffic) · protected
documents · audit records and sinks · the OpenAI-compatible vendor."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import random
import re
import socket
import struct
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
from aiohttp import web

from gateway.audit import AuditLog, AuditRecord
from gateway.audit.sinks import SinkHub
from gateway.detection.fingerprint.normalise import normalise
from gateway.keys import LocalKeyProvider

# -- where things are ---------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
PG_DSN = os.environ.get("VENDORGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def postgres_unreachable() -> str | None:
    """Why the test PostgreSQL cannot be used (credentials left out), or None when it can."""
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL at {re.sub(r'//[^@/]*@', '//', PG_DSN)} is not reachable ({type(exc).__name__})"
    await conn.close()
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the recording upstream and the default test policy ------------------------

@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class Upstream:
    """A vendor stand-in. `received` is what actually arrived over the wire."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    handler: object = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(request.method, request.path, request.query_string, dict(request.headers), body))
        if self.handler is not None:
            return await self.handler(request, body)
        return web.json_response({"ok": True, "echo": body.decode("utf-8", "replace")})


POLICY = """
name: test
detect: all
min_score: 0.5
default_action: redact
actions:
  EMAIL_ADDRESS: {action: mask, keep: 4}
  CREDIT_CARD: {action: mask, keep: 4}
  US_SSN: hash
  SECRET: redact
  DATE_TIME: allow
  URL: allow
"""


# -- talking to the gateway and the CLI ---------------------------------------

async def post(gw, path: str, content=None, ctype: str | None = None, *, headers: dict | None = None,
               timeout: float = 300, **kw) -> httpx.Response:
    """POST to a running gateway (`gw.url`, or a base URL string) + `path`: `content` sent as `ctype`,
    or `json=`, `data=` ... as for httpx. The timeout is only an upper bound for a loaded machine."""
    base = gw if isinstance(gw, str) else gw.url
    headers = {**({"Content-Type": ctype} if ctype else {}), **(headers or {})}
    async with httpx.AsyncClient(timeout=timeout) as client:
        return await client.post(base + path, content=content, headers=headers, **kw)


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user running `vendorgate`: nothing of the test process's (no master key)."""
    return {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **extra}


def vendorgate(*args: str, stdin: str | None = None, cwd=REPO, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m gateway ARGS` in a subprocess, from the repository unless `cwd`; `env` None inherits
    this process's environment (`user_env()` is a user's)."""
    return subprocess.run([sys.executable, "-m", "gateway", *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def audit_log(data_dir) -> AuditLog:
    return AuditLog.in_data_dir(data_dir, LocalKeyProvider.in_data_dir(data_dir))


async def wait_for_records(gw, n):
    """A streamed response reaches the client just before its record is written."""
    for _ in range(100):
        if len(audit_log(gw.data_dir).records()) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} audit records")


# -- the sensitive payload: one value of each kind the default policy acts on --

NAME, EMAIL, SSN, CARD = "John Smith", "john.smith@example.com", "536-22-8841", "4111 1111 1111 1111"
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
SENSITIVE = [NAME, EMAIL, SSN, CARD, AWS_KEY]


def payload() -> dict:
    return {
        "customer": {"name": NAME, "email": EMAIL},
        "note": f"SSN {SSN}, card {CARD}, deploy key {AWS_KEY}",
        "count": 3,
    }


# -- two vendors: alpha sees values in clear, beta as tokens (the ledger's traffic)

JANE_EMAIL, JANE_CARD, JANE_SSN = "Jane.Doe@Example.com", "4111 1111 1111 1111", "536-22-8841"
CLEAR_POLICY = """
name: clear
detect: [EMAIL_ADDRESS, CREDIT_CARD, US_SSN]
default_action: redact
actions:
  EMAIL_ADDRESS: allow
  CREDIT_CARD: allow
  US_SSN: block
"""
TOKENS_POLICY = """
name: tokens
detect: [EMAIL_ADDRESS, CREDIT_CARD, US_SSN]
default_action: redact
actions:
  EMAIL_ADDRESS: tokenize
  CREDIT_CARD: {action: mask, keep: 4}
  US_SSN: block
"""


def two_vendor_config(tmp_path, upstream_url: str, extra: str = ""):
    (tmp_path / "clear.yaml").write_text(textwrap.dedent(CLEAR_POLICY))
    (tmp_path / "tokens.yaml").write_text(textwrap.dedent(TOKENS_POLICY))
    cfg = tmp_path / "vendorgate.yaml"
    cfg.write_text(
        f'data_dir: data\n{extra}\nvendors:\n'
        f'  alpha:\n    upstream: "{upstream_url}"\n    policy: clear.yaml\n'
        f'  beta:\n    upstream: "{upstream_url}"\n    policy: tokens.yaml\n')
    return cfg


CALLERS = ("billing-svc", "support-bot", "crm-sync")


async def send(gw, vendor: str, text: str, key: str) -> httpx.Response:
    """As the caller that `key` authenticates: the audit's caller comes from authentication only."""
    return await post(gw, f"/{vendor}/v1/chat", content=text,
                      headers={"Content-Type": "text/plain", "X-Vendorgate-Key": key})


# -- protected documents: synthetic documents, passages of them, disguises ----

T = 64  # the fingerprint index's default guarantee threshold

DOC_WORDS = """
revenue forecast quarterly margin pipeline customer contract renewal pricing discount partner logistics
warehouse shipment invoice procurement supplier budget headcount roadmap milestone launch formulation
compound dosage trial cohort enrollment endpoint efficacy reactor catalyst solvent membrane polymer alloy
turbine bearing gearbox torque sensor firmware calibration acquisition valuation diligence synergy the of
and to in for with on by from at as under over into across between within toward against
""".split()

UNRELATED = [
    "Thanks for the quick turnaround yesterday. Could you send me the slides before Friday so I can review "
    "them with Maria? Also, the coffee machine on the third floor is broken again.",
    "Local officials said the bridge will reopen next spring after repairs to its eastern span. Commuters "
    "have been asked to use the ferry or the northern detour until then.",
    "Steps to reproduce: open the settings page, change the language, and click save twice. Expected result: "
    "the page reloads with the new language. Actual result: the spinner never stops.",
    "Hi Sam, happy birthday! We are meeting at the Italian place on Elm Street at seven. Let me know if you "
    "need a ride, I have space for two more people in the car.",
]

BLOCK_DOCS = """
detect: [PROTECTED_DOCUMENT]
actions:
  PROTECTED_DOCUMENT: block
"""


def document(seed: int, n_words: int = 900) -> str:
    rng = random.Random(seed)
    words = [rng.choice(DOC_WORDS) for _ in range(n_words)]
    return " ".join(w.capitalize() + "." if i % 13 == 12 else w for i, w in enumerate(words))


def passage(text: str, rng: random.Random, min_normalised: int) -> str:
    """A slice of `text` whose normalised length is at least `min_normalised`."""
    start = rng.randrange(0, len(text) // 2)
    end = start + min_normalised
    while len(normalise(text[start:end], "prose")) < min_normalised:
        end += 1
    return text[start:end]


def disguise(text: str) -> str:
    """Same passage, different whitespace and case."""
    return text.upper().replace(" ", "  \n\t ")


async def post_job(gw, payload: dict) -> httpx.Response:
    """A JSON job to vendor acme, as the protected-document tests send it."""
    return await post(gw, "/acme/v1/jobs", json=payload)


# -- audit records and sinks: records, real receivers, an outage --------------

def make_record(caller: str = "svc", age_days: float = 0.0, vendor: str = "acme") -> AuditRecord:
    ts = (datetime.now(UTC) - timedelta(days=age_days)).isoformat(timespec="milliseconds")
    return AuditRecord(id=uuid.uuid4().hex, ts=ts, request_id=uuid.uuid4().hex, caller=caller, vendor=vendor,
                       method="POST", path="/v1/items", decision="forwarded", status=200, upstream_status=200,
                       bytes_sent=42, findings={"EMAIL_ADDRESS": 1}, actions={"mask": 1}, duration_ms=1.25)


def write_records(dsn: str, data_dir: str, master_key: str, caller: str, n: int, barrier) -> None:
    """One 'gateway instance': its own keys object (same master key) and connection, n appends in
    rounds of 5 concurrent ones. Rounds, because appends are committed in groups: n at once would
    be one or two transactions per process, and the processes' records could not interleave."""
    keys = LocalKeyProvider(Path(data_dir) / "keys.json", env={"VENDORGATE_MASTER_KEY": master_key})

    async def main() -> None:
        log = AuditLog.in_data_dir(Path(data_dir), keys, dsn, checkpoint_every=7)
        barrier.wait()
        for start in range(0, n, 5):
            await asyncio.gather(*(log.append(make_record(f"{caller}-{i}")) for i in range(start, min(n, start + 5))))
        await log.close()

    asyncio.run(main())


def sinks_yaml(tmp_path, syslog_port: int, hec_port: int) -> str:
    return (f"sinks:\n"
            f"  - {{type: jsonl, path: {tmp_path / 'siem' / 'audit.jsonl'}}}\n"
            f"  - {{type: syslog, host: 127.0.0.1, port: {syslog_port}, protocol: tcp, confirm_seconds: 0.1}}\n"
            f"  - {{type: http, url: 'http://127.0.0.1:{hec_port}/services/collector/event', token_env: VG_TEST_HEC}}\n")


RFC5424 = re.compile(rb'^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\d+) audit \[vendorgate@32473 ((?:[^\]\\]|\\.)*)\] \xef\xbb\xbf(\{.*\})$', re.S)


def sink_record(i: int) -> dict:
    return AuditRecord(id=f"rec{i:05d}", ts=datetime.now(UTC).isoformat(timespec="milliseconds"),
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


async def start_admin(gw) -> tuple[str, web.AppRunner]:
    """The admin listener (/metrics, /readyz, /status) of a running test gateway, on its own port."""
    from gateway.app.server import RUNTIME_KEY, admin_app

    runner = web.AppRunner(admin_app(gw.runner.app[RUNTIME_KEY]), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}", runner


async def wait_for(predicate, seconds: float = 30.0):
    for _ in range(int(seconds / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def load_with_an_outage(hub: SinkHub, receiver, total: int = 300, stop_at: int = 80) -> list[str]:
    """Publish `total` records; stop the receiver once it holds `stop_at`, bring it back after the load."""
    sent = [sink_record(i) for i in range(total)]
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


# -- an OpenAI-compatible vendor on loopback -----------------------------------
# It records every request body it received and answers chat completions by
# echoing the last user message (`Noted: ...`), or `answer` when a test sets one.
# With `stream: true` the reply goes out as SSE chunks of `chunk_size` characters,
# so tokens are cut in the middle. Embeddings are a deterministic function of the
# text the vendor received.

def embed(text: str, dims: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255, 4) for b in digest[:dims]]


@dataclass
class OpenAIUpstream:
    url: str = ""
    received: list[dict] = field(default_factory=list)
    answer: str | None = None
    chunk_size: int = 4
    runner: web.AppRunner | None = None

    @property
    def received_text(self) -> str:
        return "\n".join(json.dumps(r, ensure_ascii=False) for r in self.received)

    async def start(self) -> OpenAIUpstream:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embeddings)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        await self.runner.cleanup()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.received.append(body)
        user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        reply = self.answer if self.answer is not None else f"Noted: {user}"
        base = {"id": "chatcmpl-test", "created": 1700000000, "model": body["model"]}
        if not body.get("stream"):
            return web.json_response({**base, "object": "chat.completion", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(delta: dict, finish=None) -> None:
            chunk = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        for i in range(0, len(reply), self.chunk_size):
            await send({"content": reply[i : i + self.chunk_size]})
        await send({}, "stop")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(inputs):
            vector = embed(text)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": 1, "total_tokens": 1}})


def add_callers(config_path, names, vendors=None) -> dict:
    """Turn auth on in `config_path` (`auth: {keys_file: callers.yaml}`) and create a key per caller name.
    Returns {name: key}."""
    from pathlib import Path

    from gateway.app.auth import CallerKeys

    config_path = Path(config_path)
    text = config_path.read_text()
    if "\nauth:" not in "\n" + text:
        config_path.write_text("auth: {keys_file: callers.yaml}\n" + text)
    keys = CallerKeys.load(config_path.parent / "callers.yaml")
    return {name: keys.add(name, vendors) for name in names}


def as_caller(key: str) -> dict:
    return {"X-Vendorgate-Key": key}


# -- `vendorgate serve` as a real subprocess, and the processes it leaves -----

class Served:
    def __init__(self, tmp_path: Path, upstream_url: str, extra: str = "", args: tuple[str, ...] = (),
                 policy: str | None = None, workers: int = 1):
        self.port, self.admin_port = free_port(), free_port()
        self.url, self.admin = f"http://127.0.0.1:{self.port}", f"http://127.0.0.1:{self.admin_port}"
        self.policy = tmp_path / "policy.yaml"
        self.policy.write_text(policy or POLICY)
        self.args = args
        self.config = tmp_path / "vendorgate.yaml"
        self.config.write_text(
            f'listen: "127.0.0.1:{self.port}"\ndata_dir: data\ndrain_seconds: 20\n'
            f'detection: {{workers: {workers}, timeout_seconds: 60}}\nadmin: {{listen: "127.0.0.1:{self.admin_port}"}}\n'
            f'{extra}\nvendors:\n  acme:\n    upstream: "{upstream_url}"\n    policy: policy.yaml\n')
        self.out, self.err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Served:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(self.config), *self.args], cwd=REPO,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, stdout=self.out.open("w"),
            stderr=self.err.open("w"), start_new_session=True)
        return self

    async def ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, self.err.read_text()
                try:
                    if (await client.get(f"{self.admin}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.25)
        raise AssertionError("gateway not ready: " + self.err.read_text())

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self) -> None:
        """Whatever the test did: nothing it started survives it."""
        if self.proc is None:
            return
        try:
            procs = [psutil.Process(self.proc.pid), *self.children()]
        except psutil.NoSuchProcess:
            procs = []
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(timeout=10)


def gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """The processes still alive after `timeout` seconds (a zombie waiting for its reaper counts as gone)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for p in procs:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True
