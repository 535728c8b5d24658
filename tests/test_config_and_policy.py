"""Bad config and policy files fail with file, line and field."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gateway.app.server import build_app
from gateway.config import ConfigError, load_config
from gateway.policy import PolicyError, load_policy


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_shipped_config_and_example_policy_are_valid():
    settings = load_config()
    assert "demo" in settings.config.vendors
    assert settings.policies["demo"].action_for("EMAIL_ADDRESS").action == "mask"


def test_unknown_policy_key_names_file_line_and_field(tmp_path):
    path = write(tmp_path, "p.yaml", """
        name: x
        min_score: 0.5
        actoins:
          PERSON: redact
    """)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    assert f"{path}:3: actoins: unknown key" in str(err.value)


def test_unknown_entity_and_action_are_errors_with_lines(tmp_path):
    path = write(tmp_path, "p.yaml", """
        actions:
          PERSON: redact
          EMAIL: mask
          PHONE_NUMBER: shred
    """)
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    text = str(err.value)
    assert "unknown entity type 'EMAIL'" in text
    assert f"{path}:4: actions.PHONE_NUMBER" in text and "unknown action 'shred'" in text


def test_unknown_action_option_is_an_error(tmp_path):
    path = write(tmp_path, "p.yaml", """
        actions:
          EMAIL_ADDRESS: {action: mask, keep_last: 4}
    """)
    with pytest.raises(PolicyError, match="has no option keep_last; allowed: char, keep"):
        load_policy(path)


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "p.yaml", "name: x\nactions: [unclosed\n")
    with pytest.raises(PolicyError, match=r"p.yaml:\d+: invalid YAML"):
        load_policy(path)


def test_duplicate_keys_are_errors(tmp_path):
    path = write(tmp_path, "p.yaml", "actions:\n  PERSON: redact\n  PERSON: allow\n")
    with pytest.raises(PolicyError, match="duplicate key 'PERSON'"):
        load_policy(path)


def test_config_unknown_key_and_bad_upstream(tmp_path):
    write(tmp_path, "p.yaml", "name: ok\n")
    path = write(tmp_path, "c.yaml", """
        listen: "127.0.0.1:8080"
        vendors:
          acme:
            upstream: "ftp://x"
            policy: p.yaml
            retries: 3
    """)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert f"{path}:4: vendors.acme.upstream" in text
    assert f"{path}:6: vendors.acme.retries: unknown key" in text


def test_invalid_policy_stops_the_gateway_from_starting(tmp_path):
    write(tmp_path, "p.yaml", "min_score: 7\n")
    path = write(tmp_path, "c.yaml", 'vendors:\n  acme:\n    upstream: "http://127.0.0.1:9"\n    policy: p.yaml\n')
    with pytest.raises(PolicyError, match="p.yaml:1: min_score"):
        load_config(path)
    out = subprocess.run([sys.executable, "-m", "gateway", "serve", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "p.yaml:1: min_score" in out.stderr


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "policies").mkdir()
    write(tmp_path, "policies/p.yaml", "name: ok\n")
    path = write(tmp_path, "c.yaml", 'data_dir: state\nvendors:\n  acme:\n    upstream: "http://127.0.0.1:9"\n    policy: policies/p.yaml\n')
    settings = load_config(path)
    assert settings.config.vendors["acme"].policy == (tmp_path / "policies/p.yaml").resolve()
    assert settings.data_dir == (tmp_path / "state").resolve()


def test_missing_credential_env_refuses_to_start(tmp_path, monkeypatch):
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    write(tmp_path, "p.yaml", "name: ok\n")
    path = write(tmp_path, "c.yaml", """
        vendors:
          acme:
            upstream: "http://127.0.0.1:9"
            policy: p.yaml
            credential: {header: Authorization, env: NOPE_TOKEN}
    """)
    with pytest.raises(ConfigError, match="NOPE_TOKEN is not set"):
        build_app(load_config(path))


def test_policy_check_cli_reports_ok_and_failures(tmp_path):
    bad = write(tmp_path, "bad.yaml", "default_action: vaporize\n")
    out = subprocess.run([sys.executable, "-m", "gateway", "policy", "check", "policies/example.yaml", str(bad)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "ok   policies/example.yaml" in out.stdout
    assert f"{bad}:1: default_action" in out.stderr


def test_readme_config_example_is_a_valid_config(tmp_path):
    import shutil

    from support import REPO

    readme = (REPO / "README.md").read_text()
    example = readme[readme.index("## Config"):].split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "policies").mkdir()
    shutil.copy(REPO / "policies" / "llm-api.yaml", tmp_path / "policies" / "llm-api.yaml")
    (tmp_path / "vendorgate.yaml").write_text(example)
    settings = load_config(tmp_path / "vendorgate.yaml")
    assert list(settings.config.vendors) == ["openai"]
    assert settings.config.audit.retention_days == 400


def test_every_shipped_policy_is_valid():
    from support import REPO

    for path in sorted((REPO / "policies").glob("*.yaml")):
        load_policy(path)
