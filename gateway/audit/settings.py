"""The `audit:` and `sinks:` sections of the config: where the log lives, how it is signed and pruned, where records are streamed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from yarl import URL

SINK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class _Sink(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    batch_size: int = Field(100, gt=0, le=10000)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if value and not SINK_NAME.match(value):
            raise ValueError(f"sink name must match {SINK_NAME.pattern} (it names the spool file)")
        return value


class JsonlSink(_Sink):
    type: Literal["jsonl"]
    path: Path

    @field_validator("path")
    @classmethod
    def _resolve(cls, value: Path, info: ValidationInfo) -> Path:
        return ((info.context or {}).get("base_dir", Path.cwd()) / value).resolve()


class SyslogSink(_Sink):
    type: Literal["syslog"]
    host: str
    port: int = Field(514, gt=0, lt=65536)
    protocol: Literal["udp", "tcp"] = "tcp"
    facility: int = Field(13, ge=0, le=23, description="13 = log audit")
    app_name: str = Field("vendorgate", pattern=r"^[!-~]{1,48}$")
    confirm_seconds: float = Field(1.0, ge=0, description="TCP: a record counts as delivered once the "
                                   "connection stayed up this long after it was written")
    timeout_seconds: float = Field(5.0, gt=0)


class HttpSink(_Sink):
    type: Literal["http"]
    url: str
    token_env: str | None = None
    source: str = "vendorgate"
    sourcetype: str = "vendorgate:audit"
    index: str | None = None
    timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


def _http_url(value: str) -> str:
    url = URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("url must be an absolute http:// or https:// URL")
    return value


SinkConfig = Annotated[JsonlSink | SyslogSink | HttpSink, Field(discriminator="type")]


def sink_name(sink: _Sink) -> str:
    return sink.name or sink.type


def check_sink_names(sinks: list) -> list:
    names = [sink_name(s) for s in sinks]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"sink names must be unique (give each a `name:`): {', '.join(dupes)}")
    return sinks


class AuditConfig(BaseModel):
    """Where the audit log lives and how often it is signed and pruned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dsn: str | None = Field(None, description="postgresql://... to share one log between gateways; default SQLite in data_dir")
    checkpoint_every_records: int = Field(1000, gt=0)
    checkpoint_every_seconds: float = Field(60.0, gt=0)
    retention_days: int | None = Field(None, gt=0, description="prune records older than this; unset keeps everything")
    anchor: bool = Field(True, description="append every signed checkpoint to a file outside the database")
    anchor_dir: Path | None = Field(None, description="where the anchor file lives (default <data_dir>/anchor); mount "
                                    "it from another host or an append-only volume, or a rollback of the data dir "
                                    "rolls the anchor back with it")
    witness_url: str | None = Field(None, description="also POST every signed checkpoint here (an external witness)")
    witness_token_env: str | None = Field(None, description="environment variable holding a bearer token for it")
    witness_timeout_seconds: float = Field(5.0, gt=0)

    @field_validator("anchor_dir")
    @classmethod
    def _resolve_anchor(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else ((info.context or {}).get("base_dir", Path.cwd()) / value).resolve()

    @field_validator("witness_url")
    @classmethod
    def _witness(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)

    @field_validator("dsn")
    @classmethod
    def _postgres(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("dsn must be a postgresql:// URL (leave it unset for SQLite in the data dir)")
        return value
