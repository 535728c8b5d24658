"""Bad input: policy option values are validated at load time, and `scan` keeps one output line per input line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.policy.model import PolicyError, load_policy


@pytest.mark.parametrize("option", [
    'EMAIL_ADDRESS: {action: mask, keep: "four"}',
    "EMAIL_ADDRESS: {action: mask, keep: -3}",
    "EMAIL_ADDRESS: {action: mask, keep: 1000}",
    "EMAIL_ADDRESS: {action: mask, keep: true}",
    'EMAIL_ADDRESS: {action: mask, char: "ab"}',
    'EMAIL_ADDRESS: {action: mask, char: ""}',
    'EMAIL_ADDRESS: {action: mask, char: "x"}',
    "US_SSN: {action: hash, length: 1000}",
    "US_SSN: {action: hash, length: 0}",
    'US_SSN: {action: hash, length: "long"}',
])
def test_policy_option_values_out_of_range_are_policy_errors_with_line(tmp_path, option):
    path = tmp_path / "p.yaml"
    path.write_text(f"name: t\nactions:\n  {option}\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert "p.yaml:3" in str(info.value)


def test_policy_check_command_fails_on_a_bad_option_value(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text('name: t\nactions:\n  EMAIL_ADDRESS: {action: mask, keep: "four"}\n')
    out = subprocess.run([sys.executable, "-m", "gateway", "policy", "check", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "keep" in out.stdout + out.stderr


def test_policy_valid_options_still_load(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text('name: t\nactions:\n  EMAIL_ADDRESS: {action: mask, keep: 0, char: "#"}\n'
                    "  US_SSN: {action: hash, length: 24}\n")
    assert load_policy(path).action_for("US_SSN").options == {"length": 24}


def test_scan_writes_one_line_for_a_blank_input_line():
    lines = [json.dumps({"text": "hello"}), "", "   ", json.dumps({"text": "bye"})]
    out = subprocess.run([sys.executable, "-m", "gateway", "scan", "--workers", "1"], input="\n".join(lines) + "\n",
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(results) == 4
    assert results[0]["text"] == "hello" and results[3]["text"] == "bye"
    assert "error" in results[1] and "error" in results[2]
