"""The vendor stand-in for `bench/proxy.py`: a real aiohttp server on loopback.

POST to any path answers a small fixed JSON (what an API's reply costs, not an
echo, so a 1 MB request does not also cost a 1 MB answer). POST to a path
ending in `/stream` answers `text/event-stream`: `--events` OpenAI-style chunks,
each written and drained on its own, `--gap-ms` apart, then `data: [DONE]`, so a
proxy that buffers the stream shows up as a late first event.

Run: python bench/upstream.py --listen 127.0.0.1:9001 [--events 20] [--gap-ms 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

REPLY = {"id": "chatcmpl-bench", "object": "chat.completion",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Thanks, noted. We will reply today."}}]}


def chunk(i: int) -> bytes:
    """One SSE event shaped like an OpenAI streaming delta (the shape the gateway restores)."""
    delta = {"id": "chatcmpl-bench", "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": {"content": f"word{i} of the streamed answer "}}]}
    return b"data: " + json.dumps(delta).encode() + b"\n\n"


def upstream_app(events: int = 20, gap_ms: float = 5.0) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if not request.path.endswith("/stream"):
            return web.json_response({**REPLY, "received_bytes": len(body)})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        for i in range(events):
            await resp.write(chunk(i))
            if gap_ms:
                await asyncio.sleep(gap_ms / 1000)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:9001")
    ap.add_argument("--events", type=int, default=20)
    ap.add_argument("--gap-ms", type=float, default=5.0)
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    print(f"upstream listening on http://{args.listen}", flush=True)
    web.run_app(upstream_app(args.events, args.gap_ms), host=host, port=int(port), print=None, access_log=None)


if __name__ == "__main__":
    main()
