"""`vendorgate scan` keeps its JSON Lines contract."""

import json
import subprocess
import sys


def test_scan_contract_in_order_with_errors_per_line():
    lines = [
        json.dumps({"text": "Please write to john.smith@example.com today"}),
        "not json",
        json.dumps({"nope": 1}),
        json.dumps({"text": "nothing here"}),
    ]
    out = subprocess.run([sys.executable, "-m", "gateway", "scan", "--workers", "1"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(results) == 4
    first = results[0]
    email = next(f for f in first["findings"] if f["entity_type"] == "EMAIL_ADDRESS")
    assert (email["start"], email["end"], email["action"]) == (16, 38, "redact")
    assert first["text"].startswith("Please write to <EMAIL_ADDRESS>")
    assert "john.smith" not in first["text"]
    assert "error" in results[1] and "error" in results[2]
    assert results[3] == {"findings": [], "text": "nothing here"}


def test_scan_with_policy_blocks_and_explains(tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("actions:\n  US_SSN: block\n")
    out = subprocess.run([sys.executable, "-m", "gateway", "scan", "--workers", "1", "--explain", "--policy", str(policy)],
                         input=json.dumps({"text": "my ssn is 536-22-8841"}) + "\n", capture_output=True, text=True, timeout=300)
    result = json.loads(out.stdout)
    assert result["text"] is None and result["blocked"] == ["US_SSN"]
    assert result["findings"][0]["recognizer"]
