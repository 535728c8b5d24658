"""What the gateway costs per request, against the same upstream direct and through a plain proxy.

One command, one machine, one run, four targets in front of one upstream (bench/upstream.py):

  (a) direct     the upstream itself
  (b) passthru   bench/passthrough.py, a dozen-line aiohttp reverse proxy
  (c) patterns   vendorgate with policies/patterns-only.yaml (patterns, secrets, terms; no NER)
  (d) ner        vendorgate with policies/example.yaml (the shipped default policy: NER on)

Scenarios: `1kb` JSON (a name, an email, a phone number), `16kb` JSON, `1mb` JSON Lines batch
(application/x-ndjson), `sse` (POST 1 KB, the upstream streams text/event-stream; time to first
event and total), each at 1 and 16 concurrent clients; `starvation`: two callers post 1 MB in a
loop while a third sends 1 KB requests (its p50/p99 and failures; target p99 < 100 ms, none failed).

Per case it prints requests/s, p50/p99 and the p50/p99 added over (a), CPU-seconds per 1,000
requests of the proxy's main process and of its children (the detection workers), MB/s, peak RSS
of the gateway processes (1 MB case), and (c)/(b), (d)/(b) ratios. Load generator: wrk (Debian
package) for the 1kb and 16kb POSTs when installed (it costs the shared cores least), else an
in-process aiohttp client; always that client for 1mb, sse and starvation (wrk cannot time a first
event, and drops the requests in flight at its deadline; a wrk case with fewer than 5 completed
requests per client is measured again with the python client). The output says which was used. Between
cases the bench waits until the target is idle, so one case's backlog is not billed to the next.

  python bench/proxy.py --quick                  # ~3 minutes: 1kb, 16kb, sse; 2 s per case
  python bench/proxy.py                          # the full run: every scenario, 10 s per case, ~20 minutes
  python bench/proxy.py --smoke                  # the tiniest: a,b,c x 1kb x 1 client, 1 s (the test's)

Only 127.0.0.1. Every child (servers, wrk, py-spy) runs in its own process group, registered with
a watchdog process that kills those groups if this process dies in any way (even SIGKILL); on exit,
SIGINT and SIGTERM they are stopped here, and the run ends by checking that none is left.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
MARK = "VG_BENCH_RUN"  # in every child's environment, so leftovers can be found by value
CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGETS = {"a": "direct", "b": "passthru", "c": "patterns", "d": "ner"}
SCENARIOS = ("1kb", "16kb", "1mb", "sse", "starvation")
SSE_EVENTS = 20
# wrk drops the requests in flight when its time is up; at a few 1 MB requests per second that
# would hide most of them (and leave the gateway a backlog), so 1 MB, SSE and starvation use the
# python client, which stops starting requests at the deadline and waits for those in flight.
WRK_SCENARIOS = ("1kb", "16kb")
FEW = 5  # fewer completed requests than FEW x clients: flagged, the figures are thin

# ----------------------------------------------------------------------------- child processes

WATCHDOG = r"""
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGHUP, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line == "done":
        sys.exit(0)
    if line[:1] in "+-":
        (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
for sig in (signal.SIGTERM, signal.SIGKILL):  # stdin closed without "done": the bench died
    for g in groups:
        try: os.killpg(g, sig)
        except OSError: pass
    time.sleep(1)
"""


def _pdeathsig() -> None:
    """In the child before exec: own process group, and SIGKILL if the bench dies."""
    os.setsid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Children:
    """Every process this bench starts. Stops them group by group; a watchdog covers a dead bench
    (PDEATHSIG alone would spare the gateway's detection workers, which are grandchildren)."""

    def __init__(self, token: str):
        self.token = token
        self.env = {**os.environ, MARK: token, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.procs: list[subprocess.Popen] = []
        self.watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG], stdin=subprocess.PIPE, text=True,
                                         start_new_session=True)

    def _tell(self, line: str) -> None:
        try:
            self.watchdog.stdin.write(line + "\n")
            self.watchdog.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def spawn(self, cmd: list[str], log: Path | None = None, env: dict | None = None, **kw) -> subprocess.Popen:
        out = open(log, "ab") if log else subprocess.DEVNULL
        proc = subprocess.Popen(cmd, env={**self.env, **(env or {})}, stdout=kw.pop("stdout", out), stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, preexec_fn=_pdeathsig, cwd=kw.pop("cwd", ROOT), **kw)
        self.procs.append(proc)
        self._tell(f"+{proc.pid}")
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 5.0) -> None:
        """SIGINT to the main process (a clean shutdown), then SIGTERM/SIGKILL to its whole group."""
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGINT)
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not group_members(proc.pid):
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + 2
            while group_members(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            pass
        self._tell(f"-{proc.pid}")

    def stop_all(self) -> None:
        for proc in self.procs:  # all shut down in parallel; stop() then waits for each
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
        for proc in reversed(self.procs):
            self.stop(proc)
        self._tell("done")
        try:
            self.watchdog.stdin.close()
            self.watchdog.wait(5)
        except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
            pass

    def leftovers(self) -> list[str]:
        return marked_processes(self.token)


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()  # fields from state (3rd) on; comm may hold spaces


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def group_members(pgid: int) -> list[int]:
    out = []
    for pid in _pids():
        st = _proc_stat(pid)
        if st and int(st[2]) == pgid and st[0] != "Z":
            out.append(pid)
    return out


def marked_processes(token: str) -> list[str]:
    """Live processes whose environment carries this run's mark (a zombie has none to read)."""
    needle = f"{MARK}={token}".encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{pid} {cmdline[:120]}")
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """pid and all its descendants (the gateway's detection workers and resource tracker)."""
    parent = {}
    for p in _pids():
        st = _proc_stat(p)
        if st:
            parent[p] = int(st[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return out


def cpu_seconds(pid: int) -> float:
    st = _proc_stat(pid)
    return (int(st[11]) + int(st[12])) / CLK_TCK if st else 0.0  # utime + stime


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- bodies

FIRST = ["John", "Maria", "Wei", "Aisha", "Carlos", "Emma", "Liam", "Sofia", "Noah", "Olivia"]
LAST = ["Smith", "Garcia", "Chen", "Okafor", "Müller", "Rossi", "Johnson", "Kowalski", "Brown", "Silva"]
PROSE = ("the customer asked about a refund for the order placed last week and we said we would reply "
         "today with the details of the shipment and the invoice once the warehouse confirms it").split()


def _person(rng: random.Random) -> tuple[str, str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    email = f"{first.lower()}.{last.lower().replace('ü', 'u')}@example.com"
    phone = f"+1 415-{rng.randrange(600, 900)}-{rng.randrange(1000, 10000):04d}"  # 555-01xx would not parse as a real number
    return f"{first} {last}", email, phone


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(PROSE) for _ in range(n))


def body_1kb() -> bytes:
    """A chat request about one person: a name, an email and a phone number, ~1 KB."""
    rng = random.Random(1)
    text = "Please draft a reply to John Smith (john.smith@example.com, +1 415-867-5309) about his order."
    while True:
        body = json.dumps({"model": "gpt-4o-mini", "messages": [
            {"role": "system", "content": "You are a support assistant."}, {"role": "user", "content": text}]}).encode()
        if len(body) >= 1000:
            return body
        text += " " + rng.choice(PROSE)


def body_16kb() -> bytes:
    """A longer conversation: 16 KB of messages, a contact every few messages."""
    rng = random.Random(16)
    messages, size = [], 0
    while size < 16 * 1024:
        name, email, phone = _person(rng)
        content = _words(rng, 60) + (f" Contact {name} at {email} or {phone}." if len(messages) % 3 == 0 else "")
        messages.append({"role": rng.choice(["user", "assistant"]), "content": content})
        size += len(content) + 40
    return json.dumps({"model": "gpt-4o-mini", "messages": messages}).encode()


def body_1mb() -> bytes:
    """A labeling batch: 1 MiB of JSON Lines records, each with a person, contacts and text."""
    rng = random.Random(1024)
    lines, size, i = [], 0, 0
    while size < 1024 * 1024:
        name, email, phone = _person(rng)
        line = json.dumps({"id": i, "customer": name, "email": email, "phone": phone, "text": _words(rng, 40)})
        lines.append(line)
        size += len(line) + 1
        i += 1
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Body:
    name: str
    data: bytes
    ctype: str
    path: str  # below the vendor prefix


def make_bodies() -> dict[str, Body]:
    small = body_1kb()
    return {
        "1kb": Body("1kb", small, "application/json", "v1/chat/completions"),
        "16kb": Body("16kb", body_16kb(), "application/json", "v1/chat/completions"),
        "1mb": Body("1mb", body_1mb(), "application/x-ndjson", "v1/batch"),
        "sse": Body("sse", json.dumps({**json.loads(small), "stream": True}).encode(), "application/json",
                    "v1/chat/stream"),
    }


# ----------------------------------------------------------------------------- load generators

def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


HEADERS = {"X-Vendorgate-Caller": "bench"}


async def python_load(url: str, body: Body, conc: int, duration: float, max_requests: int, min_ok: int = 0,
                      limit: float = 0.0) -> dict:
    """Closed loop: `conc` clients, each posting until the deadline or the shared request budget ends
    (and, for a warm-up, until `min_ok` requests succeeded or `limit` seconds passed)."""
    lat: list[float] = []
    errors: dict[str, int] = {}
    budget = [max_requests]
    timeout = aiohttp.ClientTimeout(total=max(30.0, duration * 3))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc), timeout=timeout,
                                     auto_decompress=False) as session:
        start = time.perf_counter()
        deadline = start + duration
        hard = start + max(limit, duration)

        def more() -> bool:
            now = time.perf_counter()
            return budget[0] > 0 and (now < deadline or (len(lat) < min_ok and now < hard))

        async def client():
            while more():
                budget[0] -= 1
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body.data, headers={**HEADERS, "Content-Type": body.ctype}) as r:
                        await r.read()
                        if r.status >= 400:
                            errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                            continue
                except Exception as exc:  # counted, never hidden
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                lat.append(time.perf_counter() - t0)

        await asyncio.gather(*(client() for _ in range(conc)))
        elapsed = time.perf_counter() - start
    return _stats(lat, sum(errors.values()), errors, elapsed, len(body.data), "python-aiohttp")


async def sse_load(url: str, body: Body, conc: int, duration: float, max_requests: int) -> dict:
    """Streams: time to the first `data:` event and to the end; a stream missing events is a failure."""
    first: list[float] = []
    total: list[float] = []
    errors: dict[str, int] = {}
    budget = [max_requests]
    timeout = aiohttp.ClientTimeout(total=max(30.0, duration * 3))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc), timeout=timeout) as session:
        start = time.perf_counter()
        deadline = start + duration

        async def client():
            while time.perf_counter() < deadline and budget[0] > 0:
                budget[0] -= 1
                t0 = time.perf_counter()
                t_first, events = None, 0
                try:
                    async with session.post(url, data=body.data, headers={**HEADERS, "Content-Type": body.ctype}) as r:
                        if r.status >= 400:
                            await r.read()
                            errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                            continue
                        async for line in r.content:
                            if line.startswith(b"data:"):
                                events += 1
                                if t_first is None:
                                    t_first = time.perf_counter() - t0
                except Exception as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                if events != SSE_EVENTS + 1:
                    errors["short_stream"] = errors.get("short_stream", 0) + 1
                    continue
                first.append(t_first)
                total.append(time.perf_counter() - t0)

        await asyncio.gather(*(client() for _ in range(conc)))
        elapsed = time.perf_counter() - start
    out = _stats(total, sum(errors.values()), errors, elapsed, len(body.data), "python-aiohttp")
    out.update(ttfe_p50_ms=_ms(pct(first, 50)), ttfe_p99_ms=_ms(pct(first, 99)))
    return out


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 3)


def _stats(lat: list[float], n_err: int, errors: dict, elapsed: float, body_bytes: int, gen: str) -> dict:
    ok = len(lat)
    return {"generator": gen, "ok": ok, "errors": n_err, "error_kinds": errors, "seconds": round(elapsed, 3),
            "rps": round(ok / elapsed, 2) if elapsed else 0.0, "p50_ms": _ms(pct(lat, 50)), "p99_ms": _ms(pct(lat, 99)),
            "mb_s": round(ok * body_bytes / elapsed / 1e6, 3) if elapsed else 0.0}


WRK_LUA = r"""
local f = assert(io.open(os.getenv("BENCH_BODY"), "rb")); wrk.body = f:read("*a"); f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("BENCH_CTYPE")
wrk.headers["X-Vendorgate-Caller"] = "bench"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n', summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


class Wrk:
    """wrk as the generator for plain POSTs: C, so on 2 shared cores it takes less CPU from the servers."""

    def __init__(self, children: Children, workdir: Path):
        self.children = children
        self.workdir = workdir
        self.script = workdir / "post.lua"
        self.script.write_text(WRK_LUA)
        self.bodies: dict[str, Path] = {}
        self.version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0:1]

    def start(self, url: str, body: Body, conc: int, duration: float) -> tuple[subprocess.Popen, Path]:
        if body.name not in self.bodies:
            self.bodies[body.name] = self.workdir / f"body-{body.name}"
            self.bodies[body.name].write_bytes(body.data)
        out = self.workdir / f"wrk-{uuid.uuid4().hex[:8]}.out"
        secs = max(1, round(duration))
        cmd = ["wrk", "-t", str(min(conc, 2)), "-c", str(conc), "-d", f"{secs}s", "--timeout", "30s",
               "-s", str(self.script), url]
        return self.children.spawn(cmd, out, env={"BENCH_BODY": str(self.bodies[body.name]), "BENCH_CTYPE": body.ctype}), out

    def finish(self, proc: subprocess.Popen, out: Path, body: Body) -> dict:
        self.children.stop(proc)
        text = out.read_text(errors="replace")
        line = next((l for l in text.splitlines() if l.startswith("BENCHJSON ")), None)
        if line is None:
            raise RuntimeError(f"wrk gave no result: {text[-500:]}")
        r = json.loads(line[len("BENCHJSON "):])
        elapsed = r["duration_us"] / 1e6
        socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
        ok = max(0, r["requests"] - r["status"])
        kinds = {k: r[k] for k in ("connect", "read", "write", "timeout", "status") if r[k]}
        return {"generator": "wrk", "ok": ok, "errors": r["status"] + socket_errors, "error_kinds": kinds,
                "seconds": round(elapsed, 3), "rps": round(ok / elapsed, 2) if elapsed else 0.0,
                "p50_ms": round(r["p50_us"] / 1000, 3), "p99_ms": round(r["p99_us"] / 1000, 3),
                "mb_s": round(ok * len(body.data) / elapsed / 1e6, 3) if elapsed else 0.0}

    async def run(self, url: str, body: Body, conc: int, duration: float) -> dict:
        proc, out = self.start(url, body, conc, duration)
        await wait_exit(proc, duration + 60)
        return self.finish(proc, out, body)


async def wait_exit(proc: subprocess.Popen, timeout: float) -> None:
    """Poll instead of a blocking wait in a thread, so Ctrl-C cancels at once (the caller then stops it)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------------------- servers

@dataclass
class Server:
    key: str
    label: str
    url: str  # requests go to {url}/{path}
    proc: subprocess.Popen
    notes: list[str] = field(default_factory=list)

    def pids(self) -> list[int]:
        return tree(self.proc.pid)


GATEWAY_CONFIG = """listen: "127.0.0.1:{port}"
data_dir: {data_dir}
detection:
  workers: {detection_workers}
vendors:
  bench:
    upstream: "http://127.0.0.1:{upstream_port}"
    policy: {policy}
    max_body_bytes: 10485760
"""


def serve_supports_workers() -> bool:
    """`vendorgate serve --workers N` does not exist yet; this finds out instead of assuming."""
    out = subprocess.run([sys.executable, "-m", "gateway", "serve", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=60)
    return "--workers" in out.stdout


async def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: server exited with {proc.returncode} (see its log)")
            try:
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status < 500:
                        return
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url}: not ready after {timeout}s")


async def start_servers(args, children: Children, workdir: Path, targets: list[str]) -> dict[str, Server]:
    py = sys.executable
    up_port = free_port()
    servers: dict[str, Server] = {}
    up = children.spawn([py, str(BENCH / "upstream.py"), "--listen", f"127.0.0.1:{up_port}",
                         "--events", str(SSE_EVENTS), "--gap-ms", str(args.sse_gap_ms)], workdir / "upstream.log")
    servers["a"] = Server("a", TARGETS["a"], f"http://127.0.0.1:{up_port}", up)
    await wait_ready(f"{servers['a'].url}/-/health", up)
    if "b" in targets:
        port = free_port()
        proc = children.spawn([py, str(BENCH / "passthrough.py"), "--listen", f"127.0.0.1:{port}",
                               "--upstream", f"http://127.0.0.1:{up_port}"], workdir / "passthrough.log")
        servers["b"] = Server("b", TARGETS["b"], f"http://127.0.0.1:{port}/bench", proc)
    workers_note = None
    extra: list[str] = []
    if args.workers is not None:
        if serve_supports_workers():
            extra = ["--workers", str(args.workers)]
        else:
            workers_note = f"--workers {args.workers} skipped: `vendorgate serve` has no --workers option yet"
            print(f"note: {workers_note}", flush=True)
    policies = {"c": ROOT / "policies" / "patterns-only.yaml", "d": ROOT / args.ner_policy}
    for key in ("c", "d"):
        if key not in targets:
            continue
        port = free_port()
        cfg = workdir / f"gateway-{key}.yaml"
        cfg.write_text(GATEWAY_CONFIG.format(port=port, data_dir=workdir / f"data-{key}", upstream_port=up_port,
                                             policy=policies[key], detection_workers=args.detection_workers))
        proc = children.spawn([py, "-m", "gateway", "serve", "--config", str(cfg), *extra], workdir / f"gateway-{key}.log")
        label = f"{TARGETS[key]} ({policies[key].name})"
        servers[key] = Server(key, label, f"http://127.0.0.1:{port}/bench", proc,
                              [workers_note] if workers_note else [])
    for key, s in servers.items():
        if key != "a":
            await wait_ready(s.url.rsplit("/", 1)[0] + "/-/health", s.proc)
    return servers


# ----------------------------------------------------------------------------- one case

def _cpu(server: Server) -> tuple[float, float]:
    pids = server.pids()
    main = cpu_seconds(pids[0])
    return main, sum(cpu_seconds(p) for p in pids[1:])


async def drain(server: Server, limit: float = 120.0) -> float:
    """Wait until the server's processes are idle (< 5% of a core over 0.5 s), so a backlog left
    by one case (requests the generator gave up on) is not billed to the next."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        before = sum(_cpu(server))
        await asyncio.sleep(0.5)
        if sum(_cpu(server)) - before < 0.025:
            break
    return round(time.monotonic() - t0, 1)


async def _sample_rss(server: Server, stop: asyncio.Event, peak: dict) -> None:
    """Peak of the summed RSS of the server's processes (main + workers), every 50 ms."""
    while not stop.is_set():
        total = sum(rss_mb(p) for p in server.pids())
        peak["sum_mb"] = max(peak.get("sum_mb", 0.0), total)
        try:
            await asyncio.wait_for(stop.wait(), 0.05)
        except TimeoutError:
            pass


async def load(args, wrk: Wrk | None, url: str, body: Body, conc: int, duration: float) -> dict:
    if body.name == "sse":
        return await sse_load(url, body, conc, duration, args.max_requests)
    if wrk is not None and body.name in WRK_SCENARIOS:
        return await wrk.run(url, body, conc, duration)
    return await python_load(url, body, conc, duration, args.max_requests)


async def run_case(args, wrk, server: Server, upstream: Server, body: Body, conc: int, children: Children,
                   workdir: Path) -> dict:
    url = f"{server.url}/{body.path}"
    if args.warmup > 0:  # python client: it waits for the first slow requests (each worker builds its detectors)
        if body.name == "sse":
            await sse_load(url, body, conc, args.warmup, args.max_requests)
        else:
            await python_load(url, body, conc, args.warmup, args.max_requests, min_ok=conc + 2, limit=30)
        await drain(server)
    stats = await _measure(args, wrk, server, upstream, body, conc, children, workdir, url)
    if stats["generator"] == "wrk" and stats["few"]:
        # wrk dropped what was in flight at its deadline: at this rate that is most requests
        attempt = {k: stats[k] for k in ("ok", "errors", "rps", "p50_ms", "p99_ms")}
        stats = await _measure(args, None, server, upstream, body, conc, children, workdir, url)
        stats["wrk_attempt"] = attempt
    return stats


async def _measure(args, wrk, server: Server, upstream: Server, body: Body, conc: int, children: Children,
                   workdir: Path, url: str) -> dict:
    main0, kids0 = _cpu(server)
    up0 = cpu_seconds(upstream.proc.pid)
    stop, peak = asyncio.Event(), {}
    sampler = asyncio.create_task(_sample_rss(server, stop, peak)) if body.name == "1mb" else None
    spy = None
    if args.py_spy and server.key == "c" and body.name == "1kb" and conc == 16:
        spy = start_py_spy(args, children, server, workdir)
    stats = await load(args, wrk, url, body, conc, args.duration)
    if spy is not None:
        await finish_py_spy(args, children, spy)
    stop.set()
    if sampler is not None:
        await sampler
    main1, kids1 = _cpu(server)
    up1 = cpu_seconds(upstream.proc.pid)
    done = stats["ok"] + stats["errors"]
    per_k = lambda cpu: round(cpu * 1000 / done, 3) if done else None
    stats.update(target=server.key, label=server.label, scenario=body.name, concurrency=conc,
                 body_bytes=len(body.data), cpu_main_per_1k=per_k(main1 - main0),
                 cpu_children_per_1k=per_k(kids1 - kids0), cpu_upstream_per_1k=per_k(up1 - up0),
                 processes=len(server.pids()), few=stats["ok"] < FEW * conc)
    stats["drain_seconds"] = await drain(server)
    if server.key == "a":  # the upstream is the server: its CPU is the "main" process
        stats["cpu_upstream_per_1k"] = stats["cpu_main_per_1k"]
    if sampler is not None:
        stats["peak_rss_mb"] = round(peak.get("sum_mb", 0.0), 1)
    return stats


async def run_starvation(args, wrk, server: Server, bodies: dict[str, Body]) -> dict:
    """Two 1 MB posters in a loop and one 1 KB caller, for --duration; the small caller's view."""
    big, small = bodies["1mb"], bodies["1kb"]
    big_url, small_url = f"{server.url}/{big.path}", f"{server.url}/{small.path}"
    # python client for both: a small request stuck behind the big ones at the deadline still counts
    big_stats, small_stats = await asyncio.gather(python_load(big_url, big, 2, args.duration, args.max_requests),
                                                  python_load(small_url, small, 1, args.duration, args.max_requests))
    await drain(server)
    verdict = small_stats["errors"] == 0 and small_stats["p99_ms"] is not None and small_stats["p99_ms"] < 100
    return {"target": server.key, "label": server.label, "scenario": "starvation", "small": small_stats,
            "big": big_stats, "meets_target": verdict}


# ----------------------------------------------------------------------------- py-spy

def start_py_spy(args, children: Children, server: Server, workdir: Path):
    exe = shutil.which("py-spy") or args.py_spy_bin
    out = Path(args.py_spy)
    secs = max(1, int(args.duration) - 1)
    cmd = [exe, "record", "--pid", str(server.proc.pid), "--duration", str(secs), "--rate", "100",
           "--format", "raw", "--output", str(out)]
    return children.spawn(cmd, workdir / "py-spy.log"), secs


async def finish_py_spy(args, children: Children, spy) -> None:
    proc, secs = spy
    await wait_exit(proc, secs + 30)
    children.stop(proc)


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frame(raw: str) -> str:
    """py-spy's 'func (path/file.py:123)' as 'file.py:func': lines merged, paths shortened to the package."""
    m = _FRAME.match(raw.strip())
    if not m:
        return raw.strip()
    path = m["file"]
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{m['func']}"


def summarize_profile(path: Path, top: int = 15) -> dict:
    """Own and total share of samples per function from py-spy's collapsed stacks ('a;b;c N')."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n = int(n)
        samples += n
        frames = [_frame(f) for f in stack.split(";") if ".py" in f]  # not py-spy's process/thread labels
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            total[f] = total.get(f, 0) + n
    share = lambda d: [(f, round(100 * v / samples, 1)) for f, v in sorted(d.items(), key=lambda kv: -kv[1])[:top]]
    return {"samples": samples, "own": share(own), "total": share(total)}


# ----------------------------------------------------------------------------- report

def _fmt(v, nd=1) -> str:
    if v is None:
        return "-"
    return f"{v:,.{nd}f}"


def _ratio(x, y) -> str:
    return f"{x / y:.2f}" if x is not None and y else "-"


def report(results: list[dict], starvation: list[dict], meta: dict) -> str:
    lines = [f"vendorgate proxy bench  {meta['when']}",
             f"machine: {meta['machine']}; load average before {meta['load_before']}, after {meta['load_after']}",
             f"load generator: {meta['generator']}; {meta['duration']} s per case after {meta['warmup']} s warm-up; "
             f"detection workers per gateway: {meta['detection_workers']}",
             "added = this target's p50/p99 minus the direct upstream's (a), same scenario and concurrency; "
             "cpu/1k = CPU-seconds per 1,000 requests (main process | its child processes)"]
    lines += [f"note: {n}" for n in meta["notes"]]
    base = {(r["scenario"], r["concurrency"]): r for r in results if r["target"] == "a"}
    b = {(r["scenario"], r["concurrency"]): r for r in results if r["target"] == "b"}
    header = (f"{'scenario':<8} {'conc':>4} {'target':<24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'+p50':>8} {'+p99':>8} {'cpu/1k main|kids':>17} {'MB/s':>7} {'err':>5} {'extra':<30}")
    lines += ["", header, "-" * len(header)]
    for r in results:
        a = base.get((r["scenario"], r["concurrency"]))
        add50 = r["p50_ms"] - a["p50_ms"] if a and a["p50_ms"] is not None and r["p50_ms"] is not None else None
        add99 = r["p99_ms"] - a["p99_ms"] if a and a["p99_ms"] is not None and r["p99_ms"] is not None else None
        r["added_p50_ms"], r["added_p99_ms"] = (round(add50, 3) if add50 is not None else None,
                                                round(add99, 3) if add99 is not None else None)
        extra = []
        if r["scenario"] == "sse":
            extra.append(f"first event p50 {_fmt(r['ttfe_p50_ms'])} p99 {_fmt(r['ttfe_p99_ms'])}")
        if "peak_rss_mb" in r:
            extra.append(f"peak RSS {r['peak_rss_mb']:,.0f} MB ({r['processes']} procs)")
        if r["error_kinds"]:
            extra.append("errors " + ",".join(f"{k}:{v}" for k, v in r["error_kinds"].items()))
        if r["few"]:
            extra.append(f"only {r['ok']} completed: thin")
        if "wrk_attempt" in r:
            extra.append(f"python client (wrk completed only {r['wrk_attempt']['ok']})")
        elif r["generator"] != "wrk" and meta["generator"].startswith("wrk"):
            extra.append("python client")
        cpu = f"{_fmt(r['cpu_main_per_1k'], 2)}|{_fmt(r['cpu_children_per_1k'], 2)}"
        lines.append(f"{r['scenario']:<8} {r['concurrency']:>4} {r['target'] + ' ' + r['label']:<24.24} "
                     f"{_fmt(r['rps']):>9} {_fmt(r['p50_ms'], 2):>8} {_fmt(r['p99_ms'], 2):>8} "
                     f"{_fmt(add50, 2):>8} {_fmt(add99, 2):>8} {cpu:>17} {_fmt(r['mb_s'], 2):>7} {r['errors']:>5} "
                     f"{'; '.join(extra)}")
    ratios = []
    for r in results:
        if r["target"] in ("c", "d") and (r["scenario"], r["concurrency"]) in b:
            rb = b[(r["scenario"], r["concurrency"])]
            cpu_r = (r["cpu_main_per_1k"] or 0) + (r["cpu_children_per_1k"] or 0) if r["ok"] else None
            cpu_b = (rb["cpu_main_per_1k"] or 0) + (rb["cpu_children_per_1k"] or 0) if rb["ok"] else None
            r["ratio_vs_b"] = {"rps": _ratio(r["rps"], rb["rps"]), "p50": _ratio(r["p50_ms"], rb["p50_ms"]),
                               "p99": _ratio(r["p99_ms"], rb["p99_ms"]), "cpu_per_1k": _ratio(cpu_r, cpu_b)}
            ratios.append(f"{r['scenario']:<8} {r['concurrency']:>4} ({r['target']})/(b)  req/s {r['ratio_vs_b']['rps']:>6}"
                          f"  p50 {r['ratio_vs_b']['p50']:>6}  p99 {r['ratio_vs_b']['p99']:>6}"
                          f"  cpu/1k (all procs) {r['ratio_vs_b']['cpu_per_1k']:>6}")
    if ratios:
        lines += ["", "ratios against the plain passthrough (b):"] + ratios
    if starvation:
        lines += ["", "starvation: 2 callers post 1 MB JSONL in a loop, 1 caller sends 1 KB; the 1 KB caller's view "
                      "(target: p99 < 100 ms, no failure)"]
        for s in starvation:
            sm, bg = s["small"], s["big"]
            lines.append(f"  {s['target'] + ' ' + s['label']:<26.26} small: {sm['ok']} ok, {sm['errors']} failed, "
                         f"p50 {_fmt(sm['p50_ms'], 1)} ms, p99 {_fmt(sm['p99_ms'], 1)} ms  | 1 MB: {bg['ok']} ok, "
                         f"{bg['errors']} failed, {_fmt(bg['mb_s'], 2)} MB/s  -> "
                         f"{'meets target' if s['meets_target'] else 'FAILS target'}")
    return "\n".join(lines)


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}, Python {platform.python_version()}"


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def amain(args, children: Children, workdir: Path) -> dict:
    targets = [t for t in args.targets.split(",") if t]
    scenarios = [s for s in args.scenarios.split(",") if s]
    concs = [int(c) for c in args.concurrency.split(",") if c]
    bad = [t for t in targets if t not in TARGETS] + [s for s in scenarios if s not in SCENARIOS]
    if bad:
        raise SystemExit(f"unknown target or scenario: {', '.join(bad)}")
    use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
    if args.generator == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk not installed (apt-get install -y wrk) - or use --generator python")
    wrk = Wrk(children, workdir) if use_wrk else None
    gen = (f"{wrk.version[0].split(' Copyright')[0] if wrk.version else 'wrk'} for the 1kb and 16kb POSTs, python aiohttp "
           "client (in this process) for 1mb, sse and starvation" if wrk else "python aiohttp client (in this process)")
    bodies = make_bodies()
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": machine(),
            "load_before": load_avg(), "generator": gen, "duration": args.duration, "warmup": args.warmup,
            "detection_workers": args.detection_workers or f"0 (one per core: {os.cpu_count()})", "notes": []}
    print(f"starting servers: {', '.join(TARGETS[t] for t in ['a'] + [t for t in targets if t != 'a'])} "
          f"(gateways load spaCy, ~10-30 s)...", flush=True)
    t_start = time.monotonic()
    servers = await start_servers(args, children, workdir, targets)
    meta["startup_seconds"] = round(time.monotonic() - t_start, 1)
    for s in servers.values():
        meta["notes"] += [n for n in s.notes if n not in meta["notes"]]
    results, starvation = [], []
    for scenario in scenarios:
        for conc in (concs if scenario != "starvation" else [0]):
            for key in targets:
                server = servers[key]
                if scenario == "starvation":
                    print(f"  starvation  {server.label} ...", flush=True)
                    starvation.append(await run_starvation(args, wrk, server, bodies))
                    continue
                print(f"  {scenario:<5} c={conc:<3} {server.label} ...", end=" ", flush=True)
                r = await run_case(args, wrk, server, servers["a"], bodies[scenario], conc, children, workdir)
                print(f"{r['rps']:.1f} req/s, p50 {_fmt(r['p50_ms'], 2)} ms, {r['errors']} errors", flush=True)
                results.append(r)
    meta["load_after"] = load_avg()
    text = report(results, starvation, meta)
    out = {"meta": meta, "results": results, "starvation": starvation, "report": text}
    if args.py_spy and Path(args.py_spy).exists():
        out["profile"] = summarize_profile(Path(args.py_spy))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="See the module docstring and README "
                                 "'Performance'.", formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", default="a,b,c,d", help="subset of a (direct), b (passthru), c (patterns), d (ner)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}")
    ap.add_argument("--concurrency", default="1,16", help="client counts, comma-separated")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds measured per case (wrk rounds to whole s)")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load before each case")
    ap.add_argument("--quick", action="store_true", help="--duration 2 --warmup 0.5 and (unless --scenarios) only "
                                                        "1kb,16kb,sse: ~3 min")
    ap.add_argument("--smoke", action="store_true", help="the tiniest run, for tests: a,b,c x 1kb x 1 client, 1 s, "
                                                        "1 detection worker")
    ap.add_argument("--run-id", default=None, help="mark put in every child's environment (tests look for leftovers)")
    ap.add_argument("--max-requests", type=int, default=200_000, help="request cap per case (python client)")
    ap.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto",
                    help="auto: wrk when installed (SSE always uses the python client)")
    ap.add_argument("--ner-policy", default="policies/example.yaml", help="policy of target d (repo-relative)")
    ap.add_argument("--detection-workers", type=int, default=0, help="detection.workers in the gateways' config (0 = per core)")
    ap.add_argument("--workers", type=int, help="passed as `vendorgate serve --workers N` when serve supports it; "
                                                "skipped with a note otherwise")
    ap.add_argument("--sse-gap-ms", type=float, default=5.0, help="upstream pause between SSE events")
    ap.add_argument("--py-spy", metavar="FILE", help="py-spy record (collapsed stacks) of gateway (c)'s main process "
                                                     "during the 1kb/16-client case; prints the top functions")
    ap.add_argument("--py-spy-bin", default="/tmp/vg-tools/bin/py-spy", help="py-spy when not on PATH")
    ap.add_argument("--json", metavar="FILE", help="write the result here (default bench/results/proxy-TIME.json)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the servers' logs and configs (printed path)")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 2.0, 0.5
        if args.scenarios == ",".join(SCENARIOS):  # 1 MB cases take seconds per request on a gateway
            args.scenarios = "1kb,16kb,sse"
    if args.smoke:
        args.targets, args.scenarios, args.concurrency = "a,b,c", "1kb", "1"
        args.duration, args.warmup, args.detection_workers = 1.0, 0.5, 1

    token = args.run_id or uuid.uuid4().hex
    children = Children(token)
    workdir = Path(tempfile.mkdtemp(prefix="vg-bench-"))

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored (`cmd &`)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
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
        if out is not None:
            out["leftover_processes"] = left
            out["child_pgids"] = [p.pid for p in children.procs]
        if args.keep_logs:
            print(f"logs and configs: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if out is None:
        return 130
    print()
    print(out["report"])
    if "profile" in out:
        p = out["profile"]
        print(f"\npy-spy on gateway (c) main process, 1kb x16: {p['samples']} samples (idle excluded)")
        print("  own time:   " + "\n              ".join(f"{v:5.1f}%  {f}" for f, v in p["own"]))
        print("  total time: " + "\n              ".join(f"{v:5.1f}%  {f}" for f, v in p["total"]))
    path = Path(args.json) if args.json else BENCH / "results" / f"proxy-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"\nresult: {path}" + ("" if not out["leftover_processes"] else "  (processes were left behind!)"))
    return 1 if out["leftover_processes"] else 0


if __name__ == "__main__":
    sys.exit(main())
