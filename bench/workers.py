"""`vendorgate serve --workers 1` against `--workers 2`: throughput of the patterns-only policy.

One upstream (bench/upstream.py), one gateway at a time with policies/patterns-only.yaml and the
same config (detection.workers = --detection-workers, spread over the HTTP processes), wrk (or
the python client) posting the 1kb (and 16kb) JSON bodies of bench/proxy.py with 16 clients.
Each gateway is measured only once its admin /readyz says every HTTP process is ready, after a
warm-up; the runs alternate 1, 2, 1, 2... (`--rounds`) so drift in the machine's load hits both.
It prints requests/s per case, the ratio 2/1 (target >= 1.7 on 2 cores), the gateway's CPU
seconds per 1,000 requests, and the load average before and after: on a shared machine the
ratio says as much about the neighbours as about the gateway.

  python bench/workers.py                    # 1kb and 16kb, 10 s per case, 2 rounds: ~4 minutes
  python bench/workers.py --quick            # 1kb, 3 s per case, 1 round

The helpers (child processes and their watchdog, bodies, load generators) are bench/proxy.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy  # noqa: E402  (bench/proxy.py: the shared bench helpers)

CONFIG = proxy.GATEWAY_CONFIG + 'admin: {{listen: "127.0.0.1:{admin_port}"}}\n'


def http_pids(pids: list[int]) -> set[int]:
    """The event-loop processes: the supervisor and its HTTP processes (or the single gateway process);
    the rest are detection workers and multiprocessing's resource trackers."""
    found = set()
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmd and b"gateway" in cmd:
            found.add(pid)
    return found


def split_cpu(server: proxy.Server) -> tuple[float, float]:
    pids = server.pids()
    http = http_pids(pids)
    return (sum(proxy.cpu_seconds(p) for p in pids if p in http),
            sum(proxy.cpu_seconds(p) for p in pids if p not in http))


async def wait_all_ready(admin: str, proc, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited with {proc.returncode} (see its log)")
            try:
                async with session.get(f"{admin}/readyz", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    if r.status == 200:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{admin}/readyz: not ready after {timeout}s")


async def measure(args, children: proxy.Children, workdir: Path, upstream: proxy.Server, wrk, http_workers: int,
                  bodies: dict, round_no: int) -> list[dict]:
    port, admin_port = proxy.free_port(), proxy.free_port()
    cfg = workdir / f"gateway-w{http_workers}-r{round_no}.yaml"
    cfg.write_text(CONFIG.format(port=port, admin_port=admin_port, data_dir=workdir / f"data-w{http_workers}-r{round_no}",
                                 upstream_port=upstream.url.rsplit(":", 1)[1], detection_workers=args.detection_workers,
                                 policy=proxy.ROOT / "policies" / "patterns-only.yaml"))
    proc = children.spawn([sys.executable, "-m", "gateway", "serve", "--config", str(cfg), "--workers", str(http_workers)],
                          workdir / f"gateway-w{http_workers}-r{round_no}.log")
    server = proxy.Server("c", f"--workers {http_workers}", f"http://127.0.0.1:{port}/bench", proc)
    out = []
    try:
        await wait_all_ready(f"http://127.0.0.1:{admin_port}", proc)
        for name in args.scenarios.split(","):
            body = bodies[name]
            url = f"{server.url}/{body.path}"
            await proxy.python_load(url, body, args.concurrency, args.warmup, args.max_requests)
            await proxy.drain(server)
            http0, detect0 = split_cpu(server)
            load0 = proxy.load_avg()
            stats = await proxy.load(args, wrk, url, body, args.concurrency, args.duration)
            http1, detect1 = split_cpu(server)
            done = stats["ok"] + stats["errors"]
            per_k = lambda cpu, done=done: round(cpu * 1000 / done, 3) if done else None  # noqa: E731
            stats.update(http_workers=http_workers, scenario=name, round=round_no, load_before=load0,
                         load_after=proxy.load_avg(), processes=len(server.pids()),
                         cpu_per_1k=per_k(http1 - http0 + detect1 - detect0), cpu_http_per_1k=per_k(http1 - http0),
                         cpu_detection_per_1k=per_k(detect1 - detect0))
            print(f"  round {round_no}  --workers {http_workers}  {name:<5} c={args.concurrency}: {stats['rps']:.1f} req/s, "
                  f"p50 {proxy._fmt(stats['p50_ms'], 2)} ms, {stats['errors']} errors, load {load0}", flush=True)
            out.append(stats)
    finally:
        children.stop(proc, grace=60)
    return out


def summarize(results: list[dict], scenarios: list[str]) -> tuple[str, dict]:
    lines, ratios = [], {}
    for name in scenarios:
        rps = {w: [r["rps"] for r in results if r["scenario"] == name and r["http_workers"] == w] for w in (1, 2)}
        if not rps[1] or not rps[2]:
            continue
        best1, best2 = max(rps[1]), max(rps[2])
        mean1, mean2 = sum(rps[1]) / len(rps[1]), sum(rps[2]) / len(rps[2])
        ratios[name] = {"best": round(best2 / best1, 2) if best1 else None,
                        "mean": round(mean2 / mean1, 2) if mean1 else None}
        lines.append(f"{name:<5} --workers 1: {', '.join(f'{v:.1f}' for v in rps[1])} req/s   "
                     f"--workers 2: {', '.join(f'{v:.1f}' for v in rps[2])} req/s   "
                     f"ratio 2/1: {ratios[name]['mean']} (means), {ratios[name]['best']} (best runs)")
        # What the CPU cost per request allows on `cores` idle cores, whatever the load was: one event
        # loop can use one core; everything together can use all of them.
        one = [r for r in results if r["scenario"] == name and r["http_workers"] == 1 and r["cpu_http_per_1k"]]
        if one:
            http = sum(r["cpu_http_per_1k"] for r in one) / len(one) / 1000
            total = sum(r["cpu_per_1k"] for r in one) / len(one) / 1000
            cores = os.cpu_count() or 1
            ceiling1, ceiling2 = min(1 / http, cores / total), min(2 / http, cores / total)
            ratios[name]["ceiling"] = round(ceiling2 / ceiling1, 2)
            lines.append(f"      CPU per request (--workers 1): {http * 1000:.2f} ms event loop + "
                         f"{(total - http) * 1000:.2f} ms detection workers; on {cores} idle cores that allows at "
                         f"most {ceiling1:.0f} req/s with 1 HTTP process, {ceiling2:.0f} with 2: ratio ceiling "
                         f"{ratios[name]['ceiling']}")
    return "\n".join(lines), ratios


async def amain(args, children: proxy.Children, workdir: Path) -> dict:
    wrk = proxy.Wrk(children, workdir) if args.generator != "python" and shutil.which("wrk") else None
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": proxy.machine(),
            "load_before": proxy.load_avg(), "generator": "wrk" if wrk else "python-aiohttp",
            "duration": args.duration, "concurrency": args.concurrency, "detection_workers": args.detection_workers,
            "policy": "policies/patterns-only.yaml"}
    up_port = proxy.free_port()
    up = children.spawn([sys.executable, str(proxy.BENCH / "upstream.py"), "--listen", f"127.0.0.1:{up_port}",
                         "--events", "1", "--gap-ms", "0"], workdir / "upstream.log")
    upstream = proxy.Server("a", "upstream", f"http://127.0.0.1:{up_port}", up)
    await proxy.wait_ready(f"{upstream.url}/-/health", up)
    bodies = proxy.make_bodies()
    results: list[dict] = []
    for round_no in range(1, args.rounds + 1):
        for http_workers in (1, 2):
            results += await measure(args, children, workdir, upstream, wrk, http_workers, bodies, round_no)
    meta["load_after"] = proxy.load_avg()
    text, ratios = summarize(results, args.scenarios.split(","))
    report = (f"vendorgate serve --workers 1 vs 2, patterns-only policy, {meta['generator']}, c={args.concurrency}, "
              f"{args.duration:g} s per case, detection.workers {args.detection_workers}\n{meta['machine']}\n"
              f"load average before {meta['load_before']}, after {meta['load_after']} (a shared machine: other "
              f"work competes for the same cores)\n{text}\ntarget: ratio >= 1.7")
    return {"meta": meta, "results": results, "ratios": ratios, "report": report}


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", default="1kb,16kb", help="subset of 1kb,16kb")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2, help="measure 1 then 2 this many times")
    ap.add_argument("--detection-workers", type=int, default=2, help="detection.workers (the same for both)")
    ap.add_argument("--generator", choices=["auto", "python"], default="auto")
    ap.add_argument("--max-requests", type=int, default=200_000)
    ap.add_argument("--quick", action="store_true", help="1kb, 3 s per case, 1 round")
    ap.add_argument("--json", metavar="FILE", help="default bench/results/workers-TIME.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.scenarios, args.duration, args.warmup, args.rounds = "1kb", 3.0, 1.0, 1
    children = proxy.Children(uuid.uuid4().hex)
    workdir = Path(tempfile.mkdtemp(prefix="vg-bench-workers-"))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    out = None
    try:
        out = asyncio.run(amain(args, children, workdir))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every child process", file=sys.stderr)
    finally:
        children.stop_all()
        left = children.leftovers()
        if left:
            print("WARNING: processes left behind:\n  " + "\n  ".join(left), file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    if out is None:
        return 130
    out["leftover_processes"] = left
    print("\n" + out["report"])
    path = Path(args.json) if args.json else proxy.BENCH / "results" / f"workers-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"result: {path}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
