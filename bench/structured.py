"""Throughput and peak memory of the gateway for structured bodies vs plain text.

Run: .venv/bin/python bench/structured.py [--mb 50] [--tasks 50000] [--workers 2]
                                          [--policy labeling|patterns|rules-only]

Starts a sink upstream (in this process) and, for each case, a fresh gateway
as a subprocess (`python -m gateway serve`) with the policy: `labeling` is
policies/labeling-vendor.yaml (all detectors, NER included, on `$.data.text`),
`patterns` the same field rules with pattern detectors only. Posts the body with
httpx, checks the upstream got it, and reports MB/s and the gateway process's
peak RSS (VmHWM from /proc/<pid>/status) plus its detection workers' peak, and the CPU-seconds
per MB of the event-loop process and of the workers (robust when the machine is shared).
With --rules-only the task text is allowed (detection then sees only keys and
short fields, deduplicated), which measures parsing, rules and memory at full
size; detection itself runs at the speed of the detectors (see README).
Cases: a JSON Lines batch of --tasks labeling tasks (~--mb MB), the same tasks
as a JSON array, as CSV, and a plain-text body of the same task texts small
enough for one detector call (spaCy refuses texts over 1,000,000 characters).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
WORDS = ("the customer asked about a refund for order shipping delay label quality review annotate sentence "
         "intent billing invoice account password reset thanks please urgent tomorrow product team").split()
POLICY = """
name: bench-labeling
detect: [EMAIL_ADDRESS, CREDIT_CARD, US_SSN, IBAN_CODE, IP_ADDRESS, SECRET]
actions: {EMAIL_ADDRESS: {action: mask, keep: 4}, US_SSN: block, SECRET: block}
fields:
  - {select: ["$.meta.ssn", "$[*].meta.ssn"], column: ssn, action: block}
  - {select: ["$.meta.internal_notes", "$[*].meta.internal_notes"], column: internal_notes, action: drop}
  - {select: ["$.meta.customer_id", "$[*].meta.customer_id"], column: customer_id, action: tokenize}
  - {select: ["$.id", "$[*].id"], column: id, action: allow}
unknown_content: block
"""
# --rules-only: task text allowed, so detection sees only keys and short fields;
# this measures parsing, rules, rendering and memory on a full-size batch.
RULES_ONLY = POLICY.replace("fields:\n", 'fields:\n  - {select: ["$.data.text", "$[*].data.text"], column: text, action: allow}\n')


def tasks(n: int, text_chars: int) -> list[dict]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        words, size = [], 0
        while size < text_chars:
            w = rng.choice(WORDS)
            words.append(w)
            size += len(w) + 1
        if i % 10 == 0:
            words.insert(5, f"user{i}@example.com")
        out.append({"id": i, "data": {"text": " ".join(words)},
                    "meta": {"customer_id": 100000 + i, "internal_notes": "vip; renew", "ssn": ""}})
    return out


def as_jsonl(ts) -> bytes:
    return b"".join(json.dumps(t).encode() + b"\n" for t in ts)


def as_csv(ts) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["id", "text", "customer_id", "internal_notes", "ssn"])
    for t in ts:
        w.writerow([t["id"], t["data"]["text"], t["meta"]["customer_id"], t["meta"]["internal_notes"], ""])
    return out.getvalue().encode()


class Sink:
    """The vendor: counts what arrived, keeps nothing."""

    def __init__(self):
        self.received = 0
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        size = 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
        self.received = size
        return web.json_response({"bytes": size})

    def start(self) -> None:
        ready = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            app = web.Application(client_max_size=1024**3)
            app.router.add_route("*", "/{tail:.*}", self.handle)
            runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()

        threading.Thread(target=run, daemon=True).start()
        ready.wait()


def peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process: unlike wall time, it barely moves when other work shares the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children of every thread of `pid` (workers may be started from a thread)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def run_case(name: str, body: bytes, ctype: str, sink: Sink, workers: int, tmp: Path, policy: str) -> dict:
    port = 18000 + random.Random(name).randint(0, 999)
    (tmp / "policy.yaml").write_text(policy)
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(f'listen: "127.0.0.1:{port}"\ndata_dir: data-{name}\nlog_level: warning\n'
                   f"detection: {{workers: {workers}, timeout_seconds: 300}}\n"
                   f'vendors:\n  bench:\n    upstream: "http://127.0.0.1:{sink.port}"\n    policy: policy.yaml\n'
                   f"    max_body_bytes: {128 * MB}\n    timeout_seconds: 600\n")
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(cfg)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            try:
                httpx.get(f"http://127.0.0.1:{port}/bench/ready", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        base = peak_kb(proc.pid)
        workers_before = {c: cpu_seconds(c) for c in children(proc.pid)}
        loop_before = cpu_seconds(proc.pid)
        started = time.perf_counter()
        r = httpx.post(f"http://127.0.0.1:{port}/bench/upload", content=body,
                       headers={"Content-Type": ctype}, timeout=1800)
        seconds = time.perf_counter() - started
        assert r.status_code == 200, (r.status_code, r.text[:300])
        loop_cpu = cpu_seconds(proc.pid) - loop_before
        worker_cpu = sum(cpu_seconds(c) - workers_before.get(c, 0.0) for c in children(proc.pid))
        worker_peak = max((peak_kb(c) for c in children(proc.pid)), default=0)
        return {"case": name, "mb": round(len(body) / MB, 1), "seconds": round(seconds, 1),
                "mb_per_s": round(len(body) / MB / seconds, 2),
                "loop_cpu_s_per_mb": round(loop_cpu / (len(body) / MB), 3),
                "worker_cpu_s_per_mb": round(worker_cpu / (len(body) / MB), 3), "forwarded_mb": round(sink.received / MB, 1),
                "gateway_idle_rss_mb": round(base / 1024), "gateway_peak_rss_mb": round(peak_kb(proc.pid) / 1024),
                "worker_peak_rss_mb": round(worker_peak / 1024)}
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=50)
    ap.add_argument("--tasks", type=int, default=50000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cases", default="jsonl,json,csv,text")
    ap.add_argument("--policy", choices=("labeling", "patterns", "rules-only"), default="labeling",
                    help="labeling: policies/labeling-vendor.yaml (NER and patterns on the task text); "
                         "patterns: the same rules, pattern detectors only; rules-only: the task text allowed")
    ap.add_argument("--rules-only", action="store_true", help="same as --policy rules-only")
    args = ap.parse_args()
    policy = {"labeling": (REPO / "policies" / "labeling-vendor.yaml").read_text(), "patterns": POLICY,
              "rules-only": RULES_ONLY}["rules-only" if args.rules_only else args.policy]
    per_task = int(args.mb * MB / args.tasks) - 140
    batch = tasks(args.tasks, max(per_task, 20))
    small = batch[: max(1, int(0.9 * MB / (per_task + 1)))]
    bodies = {
        "jsonl": (as_jsonl(batch), "application/x-ndjson"),
        "json": (json.dumps(batch).encode(), "application/json"),
        "csv": (as_csv(batch), "text/csv"),
        "jsonl-small": (as_jsonl(small), "application/x-ndjson"),
        "text": ("\n".join(t["data"]["text"] for t in small).encode(), "text/plain"),
    }
    sink = Sink()
    sink.start()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases.split(","):
            body, ctype = bodies[name]
            print(json.dumps(run_case(name, body, ctype, sink, args.workers, Path(tmp), policy)), flush=True)


if __name__ == "__main__":
    main()
