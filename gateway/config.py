"""Gateway configuration: where to listen, where data lives, and the vendors.

Relative paths in a config file are resolved against that file's folder, so a
config and its policies can move together.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from yarl import URL

from gateway.audit.settings import AuditConfig, SinkConfig, check_sink_names
from gateway.policy import Policy, load_policy
from gateway.vendors import preset
from gateway.yamlfile import FileError, load_yaml, validate

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_CONFIG = REPO_ROOT / "deploy" / "vendorgate.yaml"
DEFAULT_DATA_DIR = Path(".vendorgate")
VENDOR_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MiB = 1024 * 1024


class ConfigError(FileError):
    """An invalid config file (or a policy it points to)."""


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8080")
    return value


def _resolved(value: Path | None, info: ValidationInfo) -> Path | None:
    """A path from the config, relative to the config file's folder."""
    if value is None:
        return None
    base = (info.context or {}).get("base_dir", Path.cwd())
    return (base / value).resolve()


def _http_url(value: str, why: str) -> URL:
    """An absolute http:// or https:// URL, or a ValueError saying `why` one is needed."""
    url = URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(why)
    return url


def split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(listen: str) -> bool:
    host, _ = split_listen(listen)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: we cannot know where it resolves, so it is not loopback


RESERVED_VENDOR_NAMES = frozenset({"healthz", "readyz", "metrics", "status"})


class AuthConfig(BaseModel):
    """Callers authenticate with API keys; the keys file holds salted hashes (`vendorgate callers`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys_file: Path

    @field_validator("keys_file")
    @classmethod
    def _resolve(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolved(value, info)


class TLSConfig(BaseModel):
    """HTTPS on the main listener; with `client_ca_file`, callers may present a client certificate
    signed by that CA, mapped to a caller by its subject CN (`cert_cn` in the keys file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None

    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolved(value, info)


class AdminConfig(BaseModel):
    """The admin listener: /metrics, /healthz, /readyz, and /status behind the admin token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1:9090"
    token_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        return _listen(value)


class TracingConfig(BaseModel):
    """OpenTelemetry traces (off without this section): one span per request, a child span per
    stage, attributes without values, sent by OTLP over HTTP to `otlp_endpoint`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    otlp_endpoint: str                     # e.g. http://otel-collector:4318/v1/traces
    service_name: str = Field("vendorgate", min_length=1, max_length=128)
    sample_ratio: float = Field(1.0, ge=0, le=1)   # of the traces that do not come with a sampled parent

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        _http_url(value, "otlp_endpoint must be an http:// or https:// URL (OTLP over HTTP)")
        return value


class Credential(BaseModel):
    """Inject the vendor credential so callers never hold it; a caller's own
    copy of the header is stripped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header: str
    env: str
    prefix: str = ""


class WebhookSecret(BaseModel):
    """The shared secret a vendor sends with each webhook it posts to the gateway, in `header`
    (Label Studio: a custom header of the webhook), after `prefix`; kept in the environment variable
    `env` or in the file `file` (read at each delivery, so it can be rotated), never in the config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: Path | None = None
    prefix: str = ""

    @field_validator("file")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolved(value, info)

    @model_validator(mode="after")
    def _one_source(self) -> WebhookSecret:
        if (self.env is None) == (self.file is None):
            raise ValueError("set exactly one of `env` (an environment variable) or `file` (a file) for the secret")
        return self


class WebhooksConfig(BaseModel):
    """Webhooks the vendor posts to the gateway (`POST /-/webhooks/<vendor>`, README "Vendors"):
    refused without the shared secret; mapped back and restored in `caller`'s vault scope (the
    caller whose requests put the data at the vendor); delivered to `target`, inside the company."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    secret: WebhookSecret
    caller: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    credential: Credential | None = None     # injected into the delivery to `target`
    timeout_seconds: float = Field(30.0, gt=0)

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        _http_url(value, "target must be an absolute http:// or https:// URL (your service that takes the webhook)")
        return value


class VendorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream: str
    policy: Path
    credential: Credential | None = None
    max_body_bytes: int = Field(10 * MiB, gt=0)
    timeout_seconds: float = Field(60.0, gt=0)
    # request headers (gateway.app.headers): only these names are forwarded (plus the injected credential);
    # their values are scanned like the path and query. A caller's credential header aimed at a vendor with
    # no configured credential is stripped, or refused with `block`.
    forward_headers: tuple[str, ...] | None = None     # default: gateway.app.headers.DEFAULT_FORWARD
    caller_credentials: Literal["strip", "block", "forward"] = "strip"
    # what comes back
    set_cookie: Literal["strip", "forward"] = "strip"
    max_response_bytes: int = Field(64 * MiB, gt=0)    # decoded size of a response the gateway decodes
    stream_max_seconds: float | None = Field(900.0, gt=0)   # a streamed response ends after this long
    stream_max_bytes: int | None = Field(1024 * MiB, gt=0)  # ... or this many bytes from the vendor
    # whose tokens a response may restore: issued to this caller (default), this caller's conversation
    # (X-Vendorgate-Conversation), this request only, or anyone's for this vendor (the old behaviour)
    restore_scope: Literal["caller", "conversation", "request", "vendor"] = "caller"
    # The vendor's API format (README "Vendors"): field rules, stream dialect, error shape.
    format: Literal["generic", "openai", "anthropic", "label-studio", "labelbox"] = "generic"
    webhooks: WebhooksConfig | None = None

    @model_validator(mode="after")
    def _webhook_scope(self) -> VendorConfig:
        if self.webhooks is not None and self.restore_scope not in ("caller", "vendor"):
            raise ValueError(f"webhooks restore in a caller's scope (or the vendor's); restore_scope: "
                             f"{self.restore_scope} has no caller scope for a webhook to use")
        return self

    @field_validator("upstream")
    @classmethod
    def _upstream(cls, value: str) -> str:
        url = _http_url(value, "upstream must be an absolute http:// or https:// URL")
        if url.query_string or url.fragment:
            raise ValueError("upstream must not have a query string or fragment")
        return value.rstrip("/")

    @field_validator("policy")
    @classmethod
    def _resolve(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolved(value, info)


class DetectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int = Field(0, ge=0, description="0 means one per CPU core")
    timeout_seconds: float = Field(10.0, gt=0)
    small_chars: int = Field(16_384, ge=1, description="a detection job of at most this many characters is small work")
    caller_queue: int = Field(128, ge=1, description="requests one caller may have waiting for detection (then 429)")


class VaultConfig(BaseModel):
    """Where tokenize surrogates live: PostgreSQL (shared by several instances)
    when `dsn` is set; without this section, a SQLite file in the data dir."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dsn: str
    table: str = Field("vendorgate_tokens", pattern=r"^[a-z_][a-z0-9_]{0,40}$")


class BudgetStoreConfig(BaseModel):
    """Where exposure budgets are counted; every gateway instance that shares it shares the budgets
    (they must also share the master key). Without it: SQLite in the data dir, one machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redis: str = Field(pattern=r"^rediss?://")
    prefix: str = Field("vendorgate", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")


class DemoVendorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1:8081"

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        return _listen(value)


class CanaryConfig(BaseModel):
    """Synthetic values of every type sent through each route's real stages on a schedule,
    to prove protection is live (README "Canaries"). Nothing reaches a vendor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_seconds: float = Field(3600.0, ge=10)
    vendors: list[str] = Field(default_factory=list, description="routes to probe; empty: every vendor")


class FingerprintsConfig(BaseModel):
    """Where the protected-document index lives: PostgreSQL tables shared by every gateway
    instance and the CLI using this config (they must share the master key). Without this
    section, `fingerprints.sqlite` in the data dir."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    dsn: str
    db_schema: str = Field("public", alias="schema", pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    @field_validator("dsn")
    @classmethod
    def _postgres(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("dsn must be a postgresql:// URL (leave the section out for SQLite in the data dir)")
        return value


class LimitsConfig(BaseModel):
    """Client-side connection limits (`gateway.app.limits`, `gateway.app.handler`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    header_timeout_seconds: float = Field(10.0, gt=0)     # a new connection's request head must arrive by then
    body_timeout_seconds: float = Field(30.0, gt=0)       # the whole request body must arrive by then (408)
    idle_timeout_seconds: float = Field(15.0, gt=0)       # keep-alive: close after this long without a request
    max_connections_per_client: int = Field(64, gt=0)     # open at once per client address; more get 503
    max_headers: int = Field(100, gt=0)                   # header lines per request
    max_header_bytes: int = Field(32 * 1024, gt=0)        # all header names and values together (431)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1:8080"
    data_dir: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"  # json: the per-request log line is one JSON object
    detection: DetectionConfig = DetectionConfig()
    demo_vendor: DemoVendorConfig | None = None
    vault: VaultConfig | None = None
    audit: AuditConfig = AuditConfig()
    budget_store: BudgetStoreConfig | None = None
    fingerprints: FingerprintsConfig | None = None
    vendors: dict[str, VendorConfig]
    sinks: list[SinkConfig] = []
    canary: CanaryConfig | None = None
    auth: AuthConfig | None = None
    tls: TLSConfig | None = None
    allow_unauthenticated: bool = False
    admin: AdminConfig | None = None
    tracing: TracingConfig | None = None
    drain_seconds: float = Field(30.0, ge=0, description="on SIGTERM, how long in-flight requests may finish")
    # Where callers reach the gateway when a proxy in front rewrites Host or scheme: links a vendor's
    # answer hands out (Anthropic's `results_url`) are moved onto this origin instead of the request's.
    public_url: str | None = None
    watch_config: bool = False  # reload (as on SIGHUP) when the config, a policy or the keys file changes
    limits: LimitsConfig = LimitsConfig()

    @field_validator("sinks")
    @classmethod
    def _sink_names(cls, value: list) -> list:
        return check_sink_names(value)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = URL(value)
        except ValueError:
            url = URL()
        if url.scheme not in ("http", "https") or not url.host or url.path not in ("", "/") \
                or url.query_string or url.fragment or url.user or url.password:
            raise ValueError("public_url must be an origin like https://vendorgate.example.com[:port] "
                             "(http or https, a host, no path, query or credentials)")
        return str(url.origin())

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        return _listen(value)

    @field_validator("data_dir")
    @classmethod
    def _resolve_data_dir(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _resolved(value, info)

    @field_validator("vendors")
    @classmethod
    def _names(cls, value: dict) -> dict:
        if not value:
            raise ValueError("at least one vendor is required")
        for name in value:
            if not VENDOR_NAME.match(name):
                raise ValueError(f"vendor name {name!r} must match {VENDOR_NAME.pattern} (it is a URL path segment)")
            if name in RESERVED_VENDOR_NAMES:
                raise ValueError(f"vendor name {name!r} is reserved (/{name} is a gateway endpoint)")
        return value


@dataclass(frozen=True)
class Settings:
    """A validated config with its policies loaded: what the gateway runs on."""

    config: Config
    path: Path
    data_dir: Path
    policies: dict[str, Policy]


def load_config(path: Path | str | None = None, data_dir: Path | None = None) -> Settings:
    """Load and validate the config and every policy it names."""
    path = Path(path) if path else SHIPPED_CONFIG
    loaded = load_yaml(path)
    try:
        config = validate(loaded, Config, context={"base_dir": path.resolve().parent})
    except FileError as exc:
        raise ConfigError(exc.path, exc.problems) from None
    problems = []
    if config.auth is None and not config.allow_unauthenticated and not is_loopback(config.listen):
        problems.append(f"{loaded.line_of(('listen',)) or 0}: listen: {config.listen} is not a loopback address and "
                        "there is no `auth:` section; add `auth: {keys_file: callers.yaml}` (see `vendorgate callers "
                        "add`) or, if something in front authenticates callers, `allow_unauthenticated: true`")
    if config.admin is not None and config.admin.token_env is None and not is_loopback(config.admin.listen):
        problems.append(f"{loaded.line_of(('admin', 'listen')) or 0}: admin.listen: {config.admin.listen} is not a "
                        "loopback address; set admin.token_env so /metrics and /status need the admin token")
    if config.canary is not None:
        unknown = sorted(set(config.canary.vendors) - set(config.vendors))
        if unknown:
            problems.append(f"{loaded.line_of(('canary', 'vendors')) or 0}: canary.vendors: {', '.join(unknown)} "
                            f"is not a configured vendor (configured: {', '.join(sorted(config.vendors))})")
    if problems:
        raise ConfigError(path, problems)
    policies = {name: preset(vendor.format).apply(load_policy(vendor.policy)) for name, vendor in config.vendors.items()}
    resolved_dir = data_dir or config.data_dir or (Path.cwd() / DEFAULT_DATA_DIR)
    return Settings(config=config, path=path.resolve(), data_dir=Path(resolved_dir).resolve(), policies=policies)
