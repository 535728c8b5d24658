"""Which request and response headers cross the gateway."""

from __future__ import annotations

import os

from multidict import CIMultiDict, CIMultiDictProxy

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection",
})
RECOMPUTED = frozenset({"host", "content-length", "content-encoding", "expect"})
INTERNAL_PREFIX = "x-vendorgate-"
CALLER_HEADER = "X-Vendorgate-Caller"


def _connection_listed(headers: CIMultiDictProxy) -> set[str]:
    listed: set[str] = set()
    for value in headers.getall("Connection", []):
        listed.update(token.strip().lower() for token in value.split(","))
    return listed


def request_headers(incoming: CIMultiDictProxy, credential=None) -> CIMultiDict:
    """Copy the caller's headers for the upstream: hop-by-hop and our own
    headers dropped, Host/Content-Length left to the client, credential injected."""
    drop = HOP_BY_HOP | RECOMPUTED | _connection_listed(incoming)
    if credential is not None:
        drop = drop | {credential.header.lower()}
    out = CIMultiDict()
    for name, value in incoming.items():
        lname = name.lower()
        if lname in drop or lname.startswith(INTERNAL_PREFIX):
            continue
        out.add(name, value)
    if credential is not None:
        secret = os.environ.get(credential.env)
        if secret:
            out[credential.header] = credential.prefix + secret
    return out


def response_headers(incoming: CIMultiDictProxy) -> CIMultiDict:
    drop = HOP_BY_HOP | {"content-length"} | _connection_listed(incoming)
    return CIMultiDict((k, v) for k, v in incoming.items() if k.lower() not in drop)
