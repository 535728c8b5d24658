"""Baseline (b) for bench/proxy.py: the least an aiohttp reverse proxy does.

Same URL shape as vendorgate (`/{vendor}/{path}` -> `{upstream}/{path}`), body read
whole, response streamed back chunk by chunk; no scanning, no audit. What the
gateway costs above this is the price of its checks, not of aiohttp.
Run: python bench/passthrough.py --listen 127.0.0.1:9002 --upstream http://127.0.0.1:9001
"""
import argparse

import aiohttp
from aiohttp import web

UPSTREAM, SESSION = web.AppKey("upstream", str), web.AppKey("session", aiohttp.ClientSession)
HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


async def proxy(request: web.Request) -> web.StreamResponse:
    tail = request.match_info["tail"].partition("/")[2]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    async with request.app[SESSION].request(request.method, f"{request.app[UPSTREAM]}/{tail}",
                                              headers=headers, data=await request.read()) as up:
        resp = web.StreamResponse(status=up.status, headers={k: v for k, v in up.headers.items() if k.lower() not in HOP})
        await resp.prepare(request)
        async for data in up.content.iter_any():
            await resp.write(data)
        await resp.write_eof()
        return resp


async def make_app(upstream: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[UPSTREAM] = upstream.rstrip("/")
    app[SESSION] = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(limit=200))
    app.on_cleanup.append(lambda app: app[SESSION].close())
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:9002")
    ap.add_argument("--upstream", default="http://127.0.0.1:9001")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    print(f"passthrough listening on http://{args.listen}", flush=True)
    web.run_app(make_app(args.upstream), host=host, port=int(port), print=None, access_log=None)
