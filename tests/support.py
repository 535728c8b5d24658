"""Shared test helpers: the recording upstream and the default test policy."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field

from aiohttp import web


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



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
