"""Map `/{vendor}/{path}` to the vendor's upstream, and refuse any path that
could leave the upstream's base URL."""

from __future__ import annotations

import re
from urllib.parse import unquote

from yarl import URL

from gateway.refusal import Refusal

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


class RouteError(Refusal):
    """The path cannot be routed to a vendor safely."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message, outcome="rejected")


def split_route(raw_path: str) -> tuple[str, str]:
    """`/openai/v1/chat?x=1` -> ("openai", "v1/chat"). The query is handled apart."""
    path = raw_path.split("?", 1)[0]
    if not path.startswith("/"):
        raise RouteError(400, "request path must start with /")
    vendor, _, rest = path[1:].partition("/")
    return vendor, rest


def check_path(rest: str) -> None:
    """Refuse `..`, encoded slashes/backslashes/dots, and absolute URLs."""
    lowered = rest.lower()
    if any(enc in lowered for enc in ("%2f", "%5c", "%2e", "%00")):
        raise RouteError(400, "encoded slash, backslash, dot or NUL in path is not allowed")
    if "\\" in rest or rest.startswith("/") or _SCHEME.match(unquote(rest)):
        raise RouteError(400, "path must be relative to the vendor's upstream")
    for segment in rest.split("/"):
        if unquote(segment) in (".", ".."):
            raise RouteError(400, "'.' and '..' segments are not allowed in the path")


def upstream_url(base: str, rest: str, query: str) -> URL:
    url = base.rstrip("/") + "/" + rest
    if query:
        url += "?" + query
    return URL(url, encoded=True)
