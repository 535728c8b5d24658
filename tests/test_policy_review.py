"""`vendorgate policy test` and `policy diff`: the review before a policy ships,
run through the real stages (detection in worker processes)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli.policy_review import run_diff, run_tests

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted((REPO / "policies").glob("*.yaml"))
EMAIL = "priya.raman@example.net"


def cases_for(policy: Path) -> Path:
    return REPO / "policies" / "tests" / f"{policy.stem}.cases.yaml"


def test_every_shipped_policy_has_cases():
    missing = [p.name for p in SHIPPED if not cases_for(p).exists()]
    assert not missing, f"policies without policies/tests/<name>.cases.yaml: {missing}"


@pytest.mark.parametrize("policy", [p for p in SHIPPED if cases_for(p).exists()], ids=lambda p: p.stem)
async def test_shipped_policy_passes_its_cases(policy, engine):
    out = io.StringIO()
    code = await run_tests(str(policy), str(cases_for(policy)), out, engine=engine)
    assert code == 0, out.getvalue()
    assert " 0 failed" in out.getvalue()


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def test_a_wrong_expectation_fails_and_names_the_case_without_the_value(tmp_path, engine):
    cases = write(tmp_path / "c.yaml", f"""
cases:
  - name: email goes out in clear (wrong on purpose)
    text: "write to {EMAIL}"
    expect: {{outcome: forwarded, actions: {{EMAIL_ADDRESS: allow}}, not_sent: ["{EMAIL}"]}}
  - name: nothing to find
    text: "the parcel never arrived"
    expect: {{outcome: forwarded, absent: [EMAIL_ADDRESS]}}
""")
    out = io.StringIO()
    code = await run_tests(str(REPO / "policies" / "example.yaml"), str(cases), out, engine=engine)
    text = out.getvalue()
    assert code == 1
    assert "FAILED  email goes out in clear (wrong on purpose)" in text
    assert "EMAIL_ADDRESS: expected allow, got mask" in text
    assert "PASSED  nothing to find" in text
    assert "1 passed, 1 failed" in text
    assert EMAIL not in text


def test_policy_test_command_exits_1_on_a_mismatch(tmp_path):
    cases = write(tmp_path / "c.yaml", f"""
policy: {REPO / 'policies' / 'llm-api.yaml'}
cases:
  - name: a secret is expected to pass (wrong on purpose)
    text: "deploy with AKIA2E0A8F3B244C9986"
    expect: {{outcome: forwarded}}
""")
    run = subprocess.run([sys.executable, "-m", "gateway", "policy", "test", "--cases", str(cases)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "outcome: expected forwarded, got blocked" in run.stdout
    assert "0 passed, 1 failed" in run.stdout


def test_a_malformed_case_is_an_error_naming_file_and_line(tmp_path):
    cases = write(tmp_path / "c.yaml", "cases:\n  - name: no input\n    expect: {outcome: forwarded}\n")
    run = subprocess.run([sys.executable, "-m", "gateway", "policy", "test", str(REPO / "policies" / "example.yaml"),
                          "--cases", str(cases)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert f"{cases}:2: cases[1]: needs a name, exactly one of text/body" in run.stderr
    assert "Traceback" not in run.stderr


async def test_diff_flags_a_change_from_tokenize_to_allow(tmp_path, engine):
    old = REPO / "policies" / "llm-api.yaml"
    new = write(tmp_path / "new.yaml", old.read_text().replace("  EMAIL_ADDRESS: tokenize", "  EMAIL_ADDRESS: allow"))
    sample = write(tmp_path / "sample.jsonl", "\n".join([
        json.dumps({"text": f"Contact {EMAIL} about the order."}),
        json.dumps({"body": {"messages": [{"role": "user", "content": "mail me at ada@example.org"}]},
                    "content_type": "application/json"}),
        json.dumps({"text": "no personal data here"}),
    ]) + "\n")
    out = io.StringIO()
    code = await run_diff(str(old), str(new), str(sample), out, engine=engine)
    text = out.getvalue()
    assert code == 1
    assert "actions.EMAIL_ADDRESS  tokenize → allow   ⚠ weaker" in text
    assert "sample: 3 bodies" in text
    assert "newly in clear: EMAIL_ADDRESS ×2" in text
    assert EMAIL not in text and "ada@example.org" not in text


async def test_diff_of_a_stricter_policy_exits_0_and_counts_what_is_newly_blocked(tmp_path, engine):
    old = REPO / "policies" / "example.yaml"
    new = write(tmp_path / "new.yaml", old.read_text().replace("  US_SSN: hash", "  US_SSN: block"))
    sample = write(tmp_path / "sample.jsonl", json.dumps({"text": "SSN 536-22-8841 on file"}) + "\n")
    out = io.StringIO()
    code = await run_diff(str(old), str(new), str(sample), out, engine=engine)
    assert code == 0, out.getvalue()
    assert "newly blocked:  US_SSN ×1" in out.getvalue()
    assert "536-22-8841" not in out.getvalue()
