"""bench/soak.py's 10-second version: mixed load through a real gateway (NER on) to a loopback vendor.
Zero unexpected errors, one audit record per answer and a log that verifies, nothing left running.
Latency and RSS are reported, not judged (they depend on the machine and its load)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # start-up (the NER model) + 10 s of load + a clean stop: ~40 s
def test_ten_second_soak_has_no_unexpected_errors_and_audits_every_request(tmp_path):
    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, "bench/soak.py", "--seconds", "10", "--clients", "64", "--run-id",
                          uuid.uuid4().hex, "--json", str(out)], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    result = json.loads(out.read_text())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert result["unexpected_errors"] == 0, result["errors"]
    assert result["answered"] == result["sent"] >= 64
    assert result["audit_records"] == result["answered"] and result["audit_intact"]
    assert result["leftover_processes"] == []
    assert {"json-1kb", "sse"} <= set(result["per_kind"])
    assert result["p50_ms"] is not None and result["p99_ms"] >= result["p50_ms"]
    assert result["rss_mb"]["growth_after_warmup"] is not None
    assert "RESULT: ok" in run.stdout
