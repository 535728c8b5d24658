"""Who is calling: API keys for callers, checked by the `auth` middleware.

A caller key looks like `vg_<id>_<secret>`: `id` (8 hex digits) finds the
caller's entry, `secret` (32 random bytes, base64url) proves it. The keys file
(`auth: {keys_file: callers.yaml}`) holds, per caller, the id, a random
per-key salt and HMAC-SHA256(salt, key) — never the key. A key is shown once,
by `vendorgate callers add`. Keys are 256-bit random, so a fast keyed hash is
enough (there is nothing to brute-force); the salt keeps two files' hashes
unrelated.

Callers send the key as `Authorization: Bearer KEY` (what the OpenAI and
Anthropic SDKs send for `api_key`) or `X-Vendorgate-Key: KEY`; both headers are
dropped before the request is forwarded (a vendor credential, when configured,
replaces `Authorization`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml
from aiohttp import web
from multidict import CIMultiDict
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.app.middleware import FLOW, WEBHOOK_ROUTE
from gateway.app.routing import split_route
from gateway.refusal import Refusal
from gateway.yamlfile import FileError, load_yaml, validate

KEY_HEADER = "X-Vendorgate-Key"
ANONYMOUS = "anonymous"
CALLER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
ALL_VENDORS = "*"
_KEY = re.compile(r"^vg_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


class CallerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: str = Field(pattern=r"^[0-9a-f]{8}$")
    salt: str
    hash: str
    vendors: list[str] = Field(min_length=1)
    created: str = ""
    revoked: str | None = None
    cert_cn: str | None = Field(None, min_length=1, max_length=128)  # mTLS: a client certificate's subject CN

    @field_validator("salt", "hash")
    @classmethod
    def _b64(cls, value: str) -> str:
        try:
            if len(base64.b64decode(value, validate=True)) < 16:
                raise ValueError
        except ValueError:
            raise ValueError("expected base64 of at least 16 bytes") from None
        return value


class CallersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    callers: dict[str, CallerEntry] = {}

    @field_validator("callers")
    @classmethod
    def _names(cls, value: dict) -> dict:
        for name in value:
            if not CALLER_NAME.match(name):
                raise ValueError(f"caller name {name!r} must match {CALLER_NAME.pattern}")
        ids = [e.key_id for e in value.values()]
        if len(ids) != len(set(ids)):
            raise ValueError("two callers share a key_id")
        cns = [e.cert_cn for e in value.values() if e.cert_cn and e.revoked is None]
        if len(cns) != len(set(cns)):
            raise ValueError("two active callers share a cert_cn")
        return value


def _digest(salt: bytes, key: str) -> bytes:
    return hmac.new(salt, key.encode(), hashlib.sha256).digest()


def check_caller_name(name: str) -> str:
    if not CALLER_NAME.match(name):
        raise ValueError(f"caller name {name!r} must match {CALLER_NAME.pattern} "
                         "(a service name, not a person: it appears in the audit log and in metrics)")
    return name


@dataclass(frozen=True)
class Caller:
    name: str
    vendors: frozenset[str]

    def may_use(self, vendor: str) -> bool:
        return ALL_VENDORS in self.vendors or vendor in self.vendors


@dataclass
class CallerKeys:
    """The keys file, loaded; `authenticate` never sees a plaintext key stored anywhere."""

    path: Path
    entries: dict[str, CallerEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> CallerKeys:
        """Validate the file; a missing file is an empty set of callers (nobody gets in)."""
        path = Path(path)
        if not path.exists():
            return cls(path, {})
        loaded = load_yaml(path)
        if loaded.data is None:
            return cls(path, {})
        parsed = validate(loaded, CallersFile)
        return cls(path, dict(parsed.callers))

    def names(self) -> list[str]:
        return sorted(n for n, e in self.entries.items() if e.revoked is None)

    def authenticate(self, key: str) -> Caller | None:
        m = _KEY.match(key)
        if m is None:
            return None
        for name, entry in self.entries.items():
            if entry.key_id != m.group(1) or entry.revoked is not None:
                continue
            expected = base64.b64decode(entry.hash)
            if hmac.compare_digest(_digest(base64.b64decode(entry.salt), key), expected):
                return Caller(name, frozenset(entry.vendors))
        return None

    def by_certificate(self, cn: str) -> Caller | None:
        """The caller whose `cert_cn` is this verified client certificate's subject CN."""
        for name, entry in self.entries.items():
            if entry.revoked is None and entry.cert_cn is not None and hmac.compare_digest(entry.cert_cn, cn):
                return Caller(name, frozenset(entry.vendors))
        return None

    # -- editing (the CLI) ------------------------------------------------

    def add(self, name: str, vendors: list[str] | None, cert_cn: str | None = None) -> str:
        """A new key for `name`; returns the key (shown once, never stored)."""
        check_caller_name(name)
        if name in self.entries and self.entries[name].revoked is None:
            raise ValueError(f"caller {name!r} already exists in {self.path}; `callers revoke {name}` first")
        if cert_cn is not None and any(e.cert_cn == cert_cn and e.revoked is None for e in self.entries.values()):
            raise ValueError(f"another active caller in {self.path} already has cert_cn {cert_cn!r}")
        used = {e.key_id for e in self.entries.values()}
        key_id = secrets.token_hex(4)
        while key_id in used:
            key_id = secrets.token_hex(4)
        key = f"vg_{key_id}_{secrets.token_urlsafe(32)}"
        salt = secrets.token_bytes(16)
        self.entries[name] = CallerEntry(
            key_id=key_id, salt=base64.b64encode(salt).decode(), hash=base64.b64encode(_digest(salt, key)).decode(),
            vendors=sorted(set(vendors)) if vendors else [ALL_VENDORS],
            created=datetime.now(UTC).isoformat(timespec="seconds"), cert_cn=cert_cn)
        self.save()
        return key

    def revoke(self, name: str) -> None:
        entry = self.entries.get(name)
        if entry is None or entry.revoked is not None:
            raise ValueError(f"no active caller {name!r} in {self.path}")
        self.entries[name] = entry.model_copy(update={"revoked": datetime.now(UTC).isoformat(timespec="seconds")})
        self.save()

    def save(self) -> None:
        data = {"callers": {n: e.model_dump(exclude_none=True) for n, e in sorted(self.entries.items())}}
        text = ("# vendorgate caller keys: salted HMAC-SHA256 hashes, never the keys.\n"
                "# Edit with `vendorgate callers add|list|revoke`; the gateway reloads it on SIGHUP.\n"
                + yaml.safe_dump(data, sort_keys=False))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A new file is 0600; an existing one keeps its mode (a Compose secret must stay readable by the
        # container's user: deploy/compose/make-secrets.sh makes it 0644 inside a 0700 folder).
        mode = self.path.stat().st_mode & 0o777 if self.path.exists() else 0o600
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, self.path)


def certificate_cn(request: web.Request) -> str | None:
    """The subject CN of the client certificate, when TLS verified one against `tls.client_ca_file`."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    cert = ssl_object.getpeercert() if ssl_object is not None else None
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return value
    return None


def presented_key(request: web.Request) -> str | None:
    key = request.headers.get(KEY_HEADER)
    if key:
        return key.strip()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


class AuthRefusal(Refusal):
    def __init__(self, status: int, message: str):
        super().__init__(status, message, outcome="rejected")


__all__ = ["ANONYMOUS", "KEY_HEADER", "AuthRefusal", "Caller", "CallerKeys", "FileError", "check_caller_name",
           "presented_key"]


AUTH_HEADER = web.RequestKey("vendorgate.auth_header", str)


def without_gateway_key(request: web.Request):
    """The request's headers minus the one that carried the gateway key (`X-Vendorgate-*` is dropped anyway)."""
    carrier = request.get(AUTH_HEADER)
    if carrier != "Authorization":
        return request.headers
    return CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() != "authorization")


def authenticate(callers, vendors):
    """Middleware (inside `refusals`): `callers()` is the current `CallerKeys`, or None when auth is off;
    `vendors()` the configured vendor names. Both are looked up per request so SIGHUP can swap them."""
    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        flow = request.get(FLOW)
        if flow is None or request.match_info.route.name == WEBHOOK_ROUTE:  # a vendor's webhook: its shared
            return await handler(request)                                    # secret (gateway.app.webhooks)
        keys = callers()
        if keys is None:
            flow.caller = ANONYMOUS
            return await handler(request)
        vendor, _ = split_route(request.raw_path)
        if vendor in vendors():
            flow.vendor = vendor  # a configured name: the audit record says what was attempted
        key = presented_key(request)
        cn = certificate_cn(request) if key is None else None
        if key is None and cn is not None:
            caller = keys.by_certificate(cn)
            if caller is None:
                raise AuthRefusal(401, "this client certificate is not mapped to a caller (cert_cn in the keys file)")
        elif key is None:
            raise AuthRefusal(401, f"authentication required: send the gateway key as `Authorization: Bearer KEY` "
                                   f"or `{KEY_HEADER}: KEY` (or a client certificate)")
        else:
            caller = keys.authenticate(key)
            if caller is None:
                raise AuthRefusal(401, "invalid or revoked gateway key")
            request[AUTH_HEADER] = KEY_HEADER if request.headers.get(KEY_HEADER) else "Authorization"
        flow.caller = caller.name
        if not caller.may_use(vendor):
            raise AuthRefusal(403, "this caller is not allowed to use this vendor")
        return await handler(request)

    return middleware
