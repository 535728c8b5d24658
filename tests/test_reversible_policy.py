"""Policy checks for the reversible actions: options are validated, the
pipeline-internal "collisions" option can't be set from a policy."""

import pytest
from support import REPO

from gateway.policy import PolicyError, load_policy


def write(tmp_path, body: str):
    path = tmp_path / "policy.yaml"
    path.write_text("name: t\n" + body)
    return path


def test_shipped_llm_api_policy_tokenizes_contacts_and_never_restores_cards():
    policy = load_policy(REPO / "policies" / "llm-api.yaml")
    assert {policy.action_for(t).action for t in ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER")} == {"tokenize"}
    assert policy.action_for("SECRET").action == "block"
    assert {"CREDIT_CARD", "US_SSN"} <= set(policy.never_restore)
    assert {"PERSON", "CREDIT_CARD"} <= policy.reversible_types and "SECRET" not in policy.reversible_types


@pytest.mark.parametrize("action", ["tokenize", "encrypt", "fpe", "synthetic"])
def test_collisions_option_is_not_settable_from_a_policy(tmp_path, action):
    with pytest.raises(PolicyError, match="has no option collisions"):
        load_policy(write(tmp_path, f"actions:\n  PERSON: {{action: {action}, collisions: {{abc: 3}}}}\n"))


def test_fpe_luhn_must_be_a_boolean(tmp_path):
    assert load_policy(write(tmp_path, "actions:\n  CREDIT_CARD: {action: fpe, luhn: true}\n"))
    with pytest.raises(PolicyError, match="luhn"):
        load_policy(write(tmp_path, "actions:\n  CREDIT_CARD: {action: fpe, luhn: sometimes}\n"))


def test_never_restore_names_known_types_only(tmp_path):
    with pytest.raises(PolicyError, match="unknown entity type 'CREDITCARD'"):
        load_policy(write(tmp_path, "never_restore: [CREDITCARD]\n"))


def test_scan_reports_a_value_fpe_cannot_protect_as_blocked(tmp_path):
    from gateway.cli.scan import render
    from gateway.detection.finding import Finding
    from gateway.keys import LocalKeyProvider

    policy = load_policy(write(tmp_path, "actions:\n  DATE_TIME: fpe\n"))
    text = "due on March 5"
    result = render(text, [Finding("DATE_TIME", 7, 14, 0.9, "test")], policy, LocalKeyProvider.in_data_dir(tmp_path), False)
    assert result["text"] is None and result["blocked"] == ["DATE_TIME"]
