"""Bounded load and soak on loopback: many clients, mixed sizes and content types, NER on, for a while.

One gateway (`vendorgate serve`, policies/example.yaml: NER, patterns, secrets) in front of
bench/upstream.py. `--clients` closed-loop clients post a weighted mix for `--seconds`: 1 KB and
16 KB chat JSON, 4 KB text/plain, CSV, a 64 KB JSON Lines batch, multipart form data, an SSE
stream read to its end, and an octet-stream body the policy refuses (`unknown_content: block`).
It reports, and checks:

  - unexpected errors: any answer other than the kind's expected status, or a client-side error: 0
  - RSS of the gateway and its detection workers, sampled every second: at the end of the warm-up
    (`--warmup`), at the end, the peak, and the growth after warm-up (reported, not judged)
  - audit records after a clean stop (SIGINT: drain, flush) equal to answers received, and
    `vendorgate audit verify` intact
  - p50/p99 latency overall and per kind, requests/s

  python bench/soak.py                       # 60 s, 64 clients (~1.5 min with start-up)
  python bench/soak.py --seconds 10          # the suite's version (tests/test_soak.py)

Exit status 0 only when every check holds. Only 127.0.0.1; children run in their own process groups
under bench/proxy.py's watchdog (nothing outlives this process, even after SIGKILL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy import (  # noqa: E402  (bench/ is not a package)
    BENCH,
    ROOT,
    Children,
    _person,
    _words,
    body_1kb,
    body_16kb,
    free_port,
    pct,
    rss_mb,
    tree,
    wait_ready,
)

CONFIG = """listen: "127.0.0.1:{port}"
data_dir: {data_dir}
detection:
  workers: {workers}
  timeout_seconds: {detection_timeout}
vendors:
  bench:
    upstream: "http://127.0.0.1:{upstream_port}"
    policy: {policy}
    max_body_bytes: 10485760
"""


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int
    ctype: str
    path: str
    body: bytes
    expect: int
    stream: bool = False


def kinds() -> list[Kind]:
    rng = random.Random(7)
    people = [_person(rng) for _ in range(40)]
    text = "\n".join(f"{_words(rng, 30)} Call {n} at {p} or write to {e}." for n, e, p in people[:12]).encode()
    csv = ("name,email,phone,note\n" + "".join(f"{n},{e},{p},{_words(rng, 6)}\n" for n, e, p in people)).encode()
    lines, i = [], 0
    while sum(len(x) + 1 for x in lines) < 64 * 1024:
        n, e, p = people[i % len(people)]
        lines.append(json.dumps({"id": i, "customer": n, "email": e, "phone": p, "text": _words(rng, 30)}))
        i += 1
    boundary = "soakBOUNDARY"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\n"
                 f"Ticket from {people[0][0]} ({people[0][1]}): {_words(rng, 40)}\r\n--{boundary}--\r\n").encode()
    small = body_1kb()
    return [
        Kind("json-1kb", 40, "application/json", "v1/chat/completions", small, 200),
        Kind("json-16kb", 10, "application/json", "v1/chat/completions", body_16kb(), 200),
        Kind("text-4kb", 12, "text/plain; charset=utf-8", "v1/notes", text, 200),
        Kind("csv", 8, "text/csv", "v1/import", csv, 200),
        Kind("jsonl-64kb", 3, "application/x-ndjson", "v1/batch", ("\n".join(lines) + "\n").encode(), 200),
        Kind("multipart", 8, f"multipart/form-data; boundary={boundary}", "v1/upload", multipart, 200),
        Kind("sse", 12, "application/json", "v1/chat/stream", json.dumps({**json.loads(small), "stream": True}).encode(),
             200, stream=True),
        Kind("refused-binary", 4, "application/octet-stream", "v1/blob", bytes(range(256)) * 8, 415),
    ]


@dataclass
class Tally:
    sent: int = 0
    answered: int = 0
    unexpected: int = 0


async def client(session, url: str, mix: list[Kind], deadline: float, rng: random.Random, lat: dict, tally: Tally,
                 errors: dict, once: bool = False) -> None:
    weights = [k.weight for k in mix]
    while once or time.monotonic() < deadline:
        once = False
        kind = rng.choices(mix, weights)[0]
        t0 = time.perf_counter()
        tally.sent += 1
        try:
            async with session.post(f"{url}/bench/{kind.path}", data=kind.body,
                                    headers={"Content-Type": kind.ctype, "X-Vendorgate-Caller": "soak"}) as r:
                await r.read()  # an SSE answer is read to its end
                status = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.unexpected += 1
            errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            continue
        tally.answered += 1
        lat.setdefault(kind.name, []).append((time.perf_counter() - t0) * 1000)
        if status != kind.expect:
            tally.unexpected += 1
            key = f"{kind.name}: HTTP {status}"
            errors[key] = errors.get(key, 0) + 1


async def sample_rss(pid: int, stop: asyncio.Event, samples: list) -> None:
    t0 = time.monotonic()
    while not stop.is_set():
        samples.append((time.monotonic() - t0, sum(rss_mb(p) for p in tree(pid)), rss_mb(pid)))
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


def _at(samples: list, t: float) -> tuple[float, float]:
    before = [s for s in samples if s[0] <= t] or samples[:1]
    return before[-1][1], before[-1][2]


async def soak(args, children: Children, work: Path) -> dict:
    up_port, port = free_port(), free_port()
    upstream = children.spawn([sys.executable, str(BENCH / "upstream.py"), "--listen", f"127.0.0.1:{up_port}",
                               "--events", "20", "--gap-ms", "2"], work / "upstream.log")
    await wait_ready(f"http://127.0.0.1:{up_port}/-/health", upstream)
    cfg = work / "gateway.yaml"
    cfg.write_text(CONFIG.format(port=port, data_dir=work / "data", upstream_port=up_port, workers=args.detection_workers,
                                 policy=ROOT / args.policy, detection_timeout=args.detection_timeout))
    gateway = children.spawn([sys.executable, "-m", "gateway", "serve", "--config", str(cfg)], work / "gateway.log")
    url = f"http://127.0.0.1:{port}"
    await wait_ready(f"{url}/-/health", gateway)

    mix, tally, lat, errors, samples = kinds(), Tally(), {}, {}, []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(gateway.pid, stop, samples))
    rng = random.Random(args.seed)
    connector = aiohttp.TCPConnector(limit=args.clients)
    timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        primed = Tally()
        for kind in mix:  # one of each first, untimed: the first NER call loads the model's lazy parts
            await client(session, url, [kind], 0.0, rng, {}, primed, errors, once=True)
        tally.sent, tally.answered, tally.unexpected = primed.sent, primed.answered, primed.unexpected
        started = time.monotonic()
        await asyncio.gather(*(client(session, url, mix, started + args.seconds, random.Random(rng.random()), lat,
                                      tally, errors) for _ in range(args.clients)))
    elapsed = time.monotonic() - started
    stop.set()
    await sampler
    warm_total, warm_main = _at(samples, args.warmup)
    end_total, end_main = samples[-1][1], samples[-1][2]
    peak = max(s[1] for s in samples)

    children.stop(gateway, grace=60)  # SIGINT: drain, flush the audit log, stop the workers
    db = sqlite3.connect(f"file:{work / 'data' / 'audit.sqlite'}?mode=ro", uri=True)
    audited = db.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    db.close()
    verify = subprocess.run([sys.executable, "-m", "gateway", "audit", "verify", "--data-dir", str(work / "data")],
                            capture_output=True, text=True, cwd=ROOT, env=children.env, timeout=300)
    children.stop(upstream)

    every = [v for values in lat.values() for v in values]
    result = {
        "seconds": args.seconds, "clients": args.clients, "policy": args.policy,
        "detection_workers": args.detection_workers, "detection_timeout_s": args.detection_timeout, "elapsed_s": round(elapsed, 2),
        "sent": tally.sent, "answered": tally.answered, "rps": round(tally.answered / elapsed, 1),
        "unexpected_errors": tally.unexpected, "errors": errors,
        "p50_ms": _r(pct(every, 50)), "p99_ms": _r(pct(every, 99)),
        "per_kind": {k: {"n": len(v), "p50_ms": _r(pct(v, 50)), "p99_ms": _r(pct(v, 99))} for k, v in sorted(lat.items())},
        "rss_mb": {"after_warmup": _r(warm_total), "end": _r(end_total), "peak": _r(peak),
                   "growth_after_warmup": _r(end_total - warm_total), "main_after_warmup": _r(warm_main),
                   "main_end": _r(end_main), "warmup_s": args.warmup},
        "audit_records": audited, "audit_verify": (verify.stdout + verify.stderr).strip().splitlines()[:1],
        "audit_intact": verify.returncode == 0,
    }
    result["ok"] = (tally.unexpected == 0 and audited == tally.answered and tally.answered == tally.sent
                    and result["audit_intact"])
    return result


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def report(r: dict) -> str:
    rss = r["rss_mb"]
    lines = [
        f"soak: {r['clients']} clients for {r['seconds']} s against vendorgate ({r['policy']}, NER on, "
        f"{r['detection_workers']} detection worker(s), detection timeout {r['detection_timeout_s']:g} s)",
        f"  answered {r['answered']} of {r['sent']} sent, {r['rps']} req/s; unexpected errors: {r['unexpected_errors']}"
        + (f" {r['errors']}" if r["errors"] else ""),
        f"  latency p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms",
        *(f"    {k:<15} n={v['n']:<6} p50 {v['p50_ms']} ms  p99 {v['p99_ms']} ms" for k, v in r["per_kind"].items()),
        f"  RSS (gateway + workers): {rss['after_warmup']} MB after {rss['warmup_s']:g} s warm-up, {rss['end']} MB at the "
        f"end (growth {rss['growth_after_warmup']} MB), peak {rss['peak']} MB; main process {rss['main_after_warmup']} "
        f"-> {rss['main_end']} MB",
        f"  audit records {r['audit_records']} for {r['answered']} answers; verify: "
        + (r["audit_verify"][0] if r["audit_verify"] else "?"),
        f"  leftover processes: {len(r.get('leftover_processes', []))}",
        "RESULT: " + ("ok" if r["ok"] else "FAILED"),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--warmup", type=float, default=None, help="RSS baseline after this many seconds (default 1/6)")
    p.add_argument("--policy", default="policies/example.yaml")
    p.add_argument("--detection-workers", type=int, default=1)
    p.add_argument("--detection-timeout", type=float, default=60.0,
                   help="detection.timeout_seconds (shipped default 10): a request waiting longer for a detection "
                        "worker is refused with 503 (fail closed); 64 clients on one worker queue longer than 10 s "
                        "on a loaded 2-core machine")
    p.add_argument("--request-timeout", type=float, default=180.0)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--run-id", default=uuid.uuid4().hex, help="marks every child process (leftover check)")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON here")
    args = p.parse_args(argv)
    if args.seconds <= 0 or args.clients <= 0:
        p.error("--seconds and --clients must be positive")
    args.warmup = args.seconds / 6 if args.warmup is None else args.warmup
    work = Path(tempfile.mkdtemp(prefix="vg-soak-"))
    children = Children(args.run_id)
    try:
        result = asyncio.run(soak(args, children, work))
    finally:
        children.stop_all()
    result["leftover_processes"] = children.leftovers()
    result["ok"] = result["ok"] and not result["leftover_processes"]
    print(report(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True))
    if result["ok"]:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"logs kept in {work}", flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
