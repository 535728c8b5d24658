"""Which request and response headers cross the gateway.

Request: only an allow-list of names is forwarded (`DEFAULT_FORWARD`, or the
vendor's `forward_headers`); their values then go through detection like the
path and query (`gateway.pipeline.walk`). A credential the caller aims at a
vendor that has no configured credential is stripped (or refused); a
configured credential replaces the caller's.

Response: hop-by-hop headers dropped; a `Location` / `Content-Location` that
leaves the vendor's upstream is dropped, one inside it is rewritten to the
gateway's route (a redirect never sends the caller around the gateway);
`Set-Cookie` stripped unless the vendor forwards it; the injected credential
is removed from every value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gateway.refusal import Refusal

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection",
})
RECOMPUTED = frozenset({"host", "content-length", "content-encoding", "expect"})
INTERNAL_PREFIX = "x-vendorgate-"
CALLER_HEADER = "X-Vendorgate-Caller"
CONVERSATION_HEADER = "X-Vendorgate-Conversation"
# forwarded unless a vendor lists its own; a trailing * matches a prefix
DEFAULT_FORWARD = (
    "accept", "accept-language", "content-type", "user-agent", "idempotency-key", "x-request-id",
    "traceparent", "tracestate", "if-match", "if-none-match", "cache-control",
    "openai-organization", "openai-project", "openai-beta", "anthropic-version", "anthropic-beta",
    "x-stainless-*", "authorization", "x-api-key", "api-key",
)
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "x-auth-token", "x-access-token",
                                "private-token", "x-goog-api-key", "cookie"})
CREDENTIAL_REMOVED = "[vendor credential removed]"


class CallerCredential(Refusal):
    def __init__(self, name: str):
        super().__init__(403, f"a {name} header is not forwarded to this vendor (it has no configured credential "
                              "and the config refuses callers' own)", outcome="blocked")


def _connection_listed(headers: CIMultiDictProxy) -> set[str]:
    listed: set[str] = set()
    for value in headers.getall("Connection", []):
        listed.update(token.strip().lower() for token in value.split(","))
    return listed


def _allowed(name: str, allow: tuple[str, ...]) -> bool:
    for pattern in allow:
        p = pattern.lower()
        if name == p or (p.endswith("*") and name.startswith(p[:-1])):
            return True
    return False


def select_request_headers(incoming: CIMultiDictProxy, credential=None, forward: tuple[str, ...] | None = None,
                           caller_credentials: str = "strip") -> list[tuple[str, str]]:
    """The caller's headers that may go to the vendor, before detection: allow-listed names only;
    hop-by-hop, recomputed and our own headers never; the caller's credential per the vendor config."""
    drop = HOP_BY_HOP | RECOMPUTED | _connection_listed(incoming)
    allow = tuple(forward) if forward is not None else DEFAULT_FORWARD
    out: list[tuple[str, str]] = []
    for name, value in incoming.items():
        lname = name.lower()
        if lname in drop or lname.startswith(INTERNAL_PREFIX) or not _allowed(lname, allow):
            continue
        if credential is not None and lname == credential.header.lower():
            continue  # replaced by the configured one
        if credential is None and lname in CREDENTIAL_HEADERS and caller_credentials != "forward":
            if caller_credentials == "block":
                raise CallerCredential(name)
            continue
        out.append((name, value))
    return out


def outbound_headers(selected: list[tuple[str, str]] | tuple, credential=None) -> CIMultiDict:
    out = CIMultiDict(selected)
    secret = injected_secret(credential)
    if secret:
        out[credential.header] = credential.prefix + secret
    return out


def injected_secret(credential) -> str:
    return os.environ.get(credential.env, "") if credential is not None else ""


def request_headers(incoming: CIMultiDictProxy, credential=None) -> CIMultiDict:
    """The caller's allow-listed headers with the credential injected, without detection."""
    return outbound_headers(select_request_headers(incoming, credential), credential)


@dataclass(frozen=True)
class ResponseRules:
    upstream: str = ""          # the vendor's upstream base URL
    vendor: str = ""            # its route on the gateway
    set_cookie: str = "strip"
    scrub: tuple[str, ...] = ()


def gateway_location(value: str, upstream: str, vendor: str) -> str | None:
    """A redirect target the caller may follow: on the gateway, or None to drop it."""
    try:
        target = URL(value)
    except ValueError:
        return None
    if not target.is_absolute() and target.host is None and not value.startswith("//"):
        if not value.startswith("/"):
            return value  # relative to the request: resolves on the gateway
        path = target.raw_path
    else:
        base = URL(upstream)
        if (target.scheme or base.scheme, target.host, target.explicit_port or target.port) != (
                base.scheme, base.host, base.port):
            return None
        path = target.raw_path
    base_path = URL(upstream).raw_path.rstrip("/")
    if base_path and not (path == base_path or path.startswith(base_path + "/")):
        return None
    rest = path[len(base_path):].lstrip("/")
    query = f"?{target.raw_query_string}" if target.raw_query_string else ""
    return f"/{vendor}/{rest}{query}"


def _scrubbed(value: str, scrub: tuple[str, ...]) -> str:
    for secret in scrub:
        if len(secret) >= 8:
            value = value.replace(secret, CREDENTIAL_REMOVED)
    return value


def response_headers(incoming: CIMultiDictProxy, rules: ResponseRules | None = None) -> CIMultiDict:
    drop = HOP_BY_HOP | {"content-length"} | _connection_listed(incoming)
    out = CIMultiDict()
    for name, value in incoming.items():
        lname = name.lower()
        if lname in drop:
            continue
        if rules is not None:
            if lname in ("location", "content-location"):
                value = gateway_location(value, rules.upstream, rules.vendor)
                if value is None:
                    continue
            elif lname == "refresh" and "url=" in value.lower():
                continue
            elif lname in ("set-cookie", "set-cookie2") and rules.set_cookie != "forward":
                continue
            value = _scrubbed(value, rules.scrub)
        out.add(name, value)
    return out
