"""SSE restore cost: seconds per MB of OpenAI-style chat chunks, and the most
characters ever held back at an event boundary.

Run: .venv/bin/python bench/restore_speed.py [--mb 2] [--chunk 4]
The answer is fixed-seed prose with a tokenize surrogate every ~200 characters
(100 distinct names in a SQLite vault), cut into `--chunk`-character deltas.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

from gateway.actions import ActionContext
from gateway.actions.tokenize import Tokenize
from gateway.keys import LocalKeyProvider
from gateway.reversible.restore import Restorer, SSERestorer
from gateway.reversible.vault import SQLiteVault

WORDS = "the customer asked about a refund for order and we will reply today with details please".split()


async def main(mb: float, chunk: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        keys = LocalKeyProvider.in_data_dir(Path(tmp))
        vault = await SQLiteVault(Path(tmp) / "vault.sqlite3", keys).open()
        ctx = ActionContext("openai", "PERSON", keys)
        tokens = [Tokenize().apply(f"Person Number{i}", ctx) for i in range(100)]
        await vault.store("openai", ctx.issued)
        rng = random.Random(1)
        parts, size = [], 0
        while size < mb * 1024 * 1024:
            word = rng.choice(tokens) if rng.random() < 0.03 else rng.choice(WORDS)
            parts.append(word)
            size += len(word) + 1
        answer = " ".join(parts)
        events = [f'data: {json.dumps({"choices": [{"index": 0, "delta": {"content": answer[i:i + chunk]}, "finish_reason": None}]})}\n\n'.encode()
                  for i in range(0, len(answer), chunk)] + [b"data: [DONE]\n\n"]
        sse = SSERestorer(Restorer("openai", vault, entity_types={"PERSON"}))
        held_max, sent = 0, 0
        started = time.perf_counter()
        for i, event in enumerate(events):
            await sse.feed(event)
            sent += min(chunk, max(0, len(answer) - i * chunk))
            held_max = max(held_max, sum(len(s._held) for s in sse._streams.values()))
        await sse.finish()
        elapsed = time.perf_counter() - started
        body_mb = sum(map(len, events)) / 1024 / 1024
        print(f"{len(events)} events, {body_mb:.1f} MB of SSE ({len(answer) / 1024 / 1024:.1f} MB of text), "
              f"{answer.count('PERSON_')} tokens: {elapsed:.2f} s, {elapsed / body_mb:.2f} s/MB, "
              f"{len(events) / elapsed:,.0f} events/s; most characters held back: {held_max}")
        await vault.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=float, default=2)
    p.add_argument("--chunk", type=int, default=4)
    a = p.parse_args()
    asyncio.run(main(a.mb, a.chunk))
