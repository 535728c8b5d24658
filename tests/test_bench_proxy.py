"""bench/proxy.py in its tiniest mode: it runs, its result parses, and it leaves no process behind.

No timing assertions: the numbers depend on the machine and its load; this only guards the
harness itself (README "Performance")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _marked(token: str) -> list[int]:
    needle = f"VG_BENCH_RUN={token}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_smoke_run_parses_and_leaves_nothing(tmp_path):
    token = uuid.uuid4().hex
    out = tmp_path / "result.json"
    run = subprocess.run([sys.executable, "bench/proxy.py", "--smoke", "--run-id", token, "--json", str(out)],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result) >= {"meta", "results", "starvation", "report", "leftover_processes", "child_pgids"}
    assert result["leftover_processes"] == []
    assert {r["target"] for r in result["results"]} == {"a", "b", "c"}
    for r in result["results"]:
        assert r["scenario"] == "1kb" and r["concurrency"] == 1
        for key in ("rps", "p50_ms", "p99_ms", "added_p50_ms", "added_p99_ms", "cpu_main_per_1k",
                    "cpu_children_per_1k", "mb_s", "errors", "generator"):
            assert key in r, key
        assert r["ok"] > 0 and r["errors"] == 0
    assert "load generator:" in result["report"]
    assert _marked(token) == []
    assert _live_members(set(result["child_pgids"])) == []  # nor any member of a group it started


def _live_members(pgids: set[int]) -> list[str]:
    """Running (not zombie: those are only waiting to be reaped) processes in these groups."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) in pgids and fields[0] != "Z":
            found.append(f"{pid} {stat[:80]}")
    return found
