"""Vendor URLs inside JSON answers, moved onto the gateway.

An answer may hand the caller a URL to fetch next on the vendor's API:
Anthropic's `results_url`, where a Message Batch's results are downloaded.
Followed as it is, the caller's SDK would go around the gateway — sending its
headers (the gateway key among them) to the vendor, and getting the results
with surrogates in them. A preset names such keys (`Preset.links`); in a JSON
answer, a value under one of them inside the vendor's upstream becomes the
same URL on the gateway's route (`{origin}/{vendor}/{rest}`, the origin the
caller reached the gateway at), and one outside it becomes null, as a
`Location` header outside it is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.app.headers import gateway_location


def gateway_origin(request: web.Request) -> str:
    """`scheme://host[:port]` the caller reached the gateway at; "" when its `Host` makes no URL
    (the links are then paths on the gateway)."""
    try:
        return str(request.url.origin())
    except ValueError:
        return ""


def link_rewriter(keys: tuple[str, ...], origin: str, upstream: str, vendor: str) -> Callable[[Any], Any]:
    """A function of a parsed JSON answer: a new document with every link under `keys` (at any depth)
    on the gateway, or the same object when there was none."""
    wanted = frozenset(keys)
    origin = origin.rstrip("/")

    def moved(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        target = gateway_location(value, upstream, vendor)
        if target is None:
            return None
        return origin + target if target.startswith("/") else target

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            new = {k: moved(v) if k in wanted else rewrite(v) for k, v in node.items()}
            return node if all(new[k] is node[k] for k in node) else new
        if isinstance(node, list):
            new = [rewrite(v) for v in node]
            return node if all(a is b for a, b in zip(new, node)) else new
        return node

    return rewrite
