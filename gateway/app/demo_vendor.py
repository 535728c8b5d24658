"""A stand-in vendor: prints and returns exactly what it received.

It lets anyone see, on their own machine, what a vendor behind vendorgate
would get. It is for demos and tests only; never point real data at it.
"""

from __future__ import annotations

import base64
import json
import sys

from aiohttp import web


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        shown = body.decode("utf-8")
    except UnicodeDecodeError:
        shown = "base64:" + base64.b64encode(body).decode()
    received = {
        "method": request.method,
        "path": request.path,
        "query": request.query_string,
        "headers": dict(request.headers),
        "body": shown,
    }
    try:
        received["json"] = json.loads(body) if body else None
    except ValueError:
        pass
    print(f"--- demo vendor received {request.method} {request.path_qs}\n{shown}\n", file=sys.stderr, flush=True)
    return web.json_response({"received": received})


def demo_vendor_app() -> web.Application:
    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app
