"""Webhooks a vendor posts to the gateway: `POST /-/webhooks/{vendor}`, restored, delivered inside.

Label Studio posts each event (`ANNOTATION_CREATED`, `ANNOTATION_UPDATED`, `TASKS_CREATED`, ...:
`{"action", "task", "annotation", "project"}`) to a URL the company configures. Pointed at the
gateway (the vendor's `webhooks:` in the config), an event is

1. authenticated: the shared secret in its header, compared in constant time, or 401 and nothing
   is delivered; a secret the gateway cannot read fails closed (503);
2. mapped back and restored like an answer from the vendor: the preset's step first (Label Studio:
   the offset maps, so the annotation's spans point into the original text again), then every
   surrogate issued to this vendor in `webhooks.caller`'s vault scope;
3. journaled, then delivered to `webhooks.target` (`POST`, JSON), the company's own service;
4. answered with the delivery's outcome only: what the target answers (it may echo originals)
   never goes back to the vendor.

Each delivery is audited like a request, with `direction: inbound` and the configured caller.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
from typing import Any

import aiohttp
from aiohttp import web

from gateway.app.handler import Gateway, read_body, restore_scope
from gateway.app.headers import injected_secret
from gateway.app.middleware import FLOW, REQUEST_ID
from gateway.config import VendorConfig, WebhookSecret
from gateway.pipeline.flow import Flow, Relayed, Upstream
from gateway.refusal import Refusal
from gateway.vendors import preset

PATH = "/-/webhooks/{vendor}"
VENDOR_HEADER = "X-Vendorgate-Webhook"  # on the delivery: which vendor the event came from


async def deliver(gateway: Gateway, request: web.Request) -> web.Response:
    flow = request[FLOW]
    flow.direction, flow.path = "inbound", "/-/webhooks"
    name = request.match_info["vendor"]
    vendor = gateway.settings.config.vendors.get(name)
    if vendor is None or vendor.webhooks is None:  # the segment is never echoed
        raise Refusal(404, "no webhook route for this vendor (`webhooks:` on the vendor in the config)",
                      outcome="rejected")
    hooks = vendor.webhooks
    flow.vendor, flow.caller, flow.path = name, hooks.caller, f"/-/webhooks/{name}"
    flow.policy = gateway.settings.policies[name]
    await check_secret(request, hooks.secret)
    body = await read_body(request, vendor.max_body_bytes, gateway.settings.config.limits.body_timeout_seconds)
    try:
        data = json.loads(body)
    except ValueError:
        raise Refusal(400, "webhook body is not JSON", outcome="rejected") from None
    restored, count = await restore(gateway, name, vendor, flow, request, data)
    flow.relayed = Relayed(len(body), count)
    out = json.dumps(restored, ensure_ascii=False).encode("utf-8")
    await gateway.journal_before_forward(flow, len(out))
    status = await post(gateway.session, vendor, flow, out)
    flow.upstream = Upstream(status, len(out), reached=True, maybe_received=True)
    if not 200 <= status < 300:
        raise Refusal(502, f"webhook target answered {status}", outcome="error")
    return web.json_response({"delivered": True})


async def check_secret(request: web.Request, secret: WebhookSecret) -> None:
    """401 unless the request carries the secret; the secret itself is never logged or echoed."""
    expected = await read_secret(secret)
    given = request.headers.get(secret.header)
    if given is None or not hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                                (secret.prefix + expected).encode("utf-8")):
        raise Refusal(401, f"webhook secret missing or wrong (header {secret.header})", outcome="rejected")


async def read_secret(secret: WebhookSecret) -> str:
    """Read at each delivery, so a rotated secret takes effect; unreadable or empty fails closed."""
    if secret.env is not None:
        value = os.environ.get(secret.env, "")
    else:
        try:
            value = (await asyncio.to_thread(secret.file.read_text, encoding="utf-8")).strip()
        except (OSError, UnicodeDecodeError):
            value = ""
    if not value:
        raise Refusal(503, "the webhook secret is not set (webhooks.secret in the config); nothing delivered",
                      outcome="error")
    return value


async def restore(gateway: Gateway, name: str, vendor: VendorConfig, flow: Flow, request: web.Request,
                  data: Any) -> tuple[Any, int]:
    """The event with the preset's map-back and every surrogate of the caller's scope restored."""
    restorer = gateway.restorer(name, flow.policy, restore_scope(vendor.restore_scope, flow, request))
    if restorer is None:
        return data, 0
    reshape = preset(vendor.format).inbound_json
    try:
        shaped = data
        if reshape is not None:
            shaped, restorer = await reshape(data, restorer)
        return await restorer.restore_json(shaped), restorer.restored
    except Exception as exc:  # an unreachable vault: the event would go out with surrogates
        raise Refusal(503, f"webhook could not be restored: {type(exc).__name__}; nothing delivered",
                      outcome="error") from None


async def post(session: aiohttp.ClientSession, vendor: VendorConfig, flow: Flow, body: bytes) -> int:
    hooks = vendor.webhooks
    headers = {"Content-Type": "application/json", REQUEST_ID: flow.request_id, VENDOR_HEADER: flow.vendor}
    if hooks.credential is not None:
        headers[hooks.credential.header] = hooks.credential.prefix + injected_secret(hooks.credential)
    timeout = aiohttp.ClientTimeout(total=hooks.timeout_seconds)
    try:
        async with session.post(hooks.target, data=body, headers=headers, timeout=timeout,
                                allow_redirects=False) as answer:
            return answer.status  # its body is not read: what the target says stays inside
    except TimeoutError:
        flow.upstream = Upstream(None, len(body), reached=False, maybe_received=True)
        raise Refusal(504, "webhook target did not answer in time", outcome="error") from None
    except aiohttp.ClientError as exc:
        flow.upstream = Upstream(None, len(body), reached=False, maybe_received=True)
        raise Refusal(502, f"webhook target unreachable: {type(exc).__name__}", outcome="error") from None
