"""Key provider: where the gateway's secret keys come from.

A master key never leaves this module; callers ask for a key *derived* for one
purpose and one vendor (HKDF-SHA256), so a leak of one derived key exposes
nothing else. Keys have ids so that rotation keeps old material readable.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_FILE_NAME = "keys.json"
ENV_VAR = "VENDORGATE_MASTER_KEY"


class KeyProviderError(Exception):
    """Raised when keys are missing, unreadable or malformed."""




@dataclass(frozen=True)
class MasterKey:
    key_id: str
    material: bytes


class KeyProvider:
    """Base interface: a set of master keys, one of them current."""

    def current_id(self) -> str:
        raise NotImplementedError

    def master(self, key_id: str) -> MasterKey:
        raise NotImplementedError

    def key_ids(self) -> list[str]:
        raise NotImplementedError

    def derive(self, purpose: str, vendor: str = "", key_id: str | None = None, length: int = 32) -> bytes:
        """A key for one purpose (e.g. "hash", "siv") and one vendor."""
        master = self.master(key_id or self.current_id())
        info = f"vendorgate/{purpose}/{vendor}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(master.material)


class LocalKeyProvider(KeyProvider):
    """Keys in a JSON file (mode 0600) in the data dir, or one key from an env var.

    File shape: {"current": "k1", "keys": {"k1": "<base64 32 bytes>", ...}}.
    """

    def __init__(self, path: Path, env: dict[str, str] | None = None):
        self.path = Path(path)
        env = os.environ if env is None else env
        self._keys: dict[str, bytes] = {}
        self._current = ""
        if env.get(ENV_VAR):
            self._keys = {"env": _decode_key(env[ENV_VAR], ENV_VAR)}
            self._current = "env"
            return
        if not self.path.exists():
            self._write({"current": "k1", "keys": {"k1": _new_key()}})
        self._load()

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> LocalKeyProvider:
        return cls(Path(data_dir) / KEY_FILE_NAME)

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
            self._keys = {kid: _decode_key(v, f"{self.path}: key {kid!r}") for kid, v in raw["keys"].items()}
            self._current = raw["current"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyProviderError(f"cannot read key file {self.path}: {type(exc).__name__}") from None
        if self._current not in self._keys:
            raise KeyProviderError(f"key file {self.path}: current key {self._current!r} is not in 'keys'")

    def _write(self, raw: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(raw, fh, indent=2)
        os.replace(tmp, self.path)

    def current_id(self) -> str:
        return self._current

    def key_ids(self) -> list[str]:
        return list(self._keys)

    def master(self, key_id: str) -> MasterKey:
        try:
            return MasterKey(key_id, self._keys[key_id])
        except KeyError:
            raise KeyProviderError(f"no key with id {key_id!r} is configured") from None

    def rotate(self) -> str:
        """Add a new current key; old keys stay for reading."""
        if self._current == "env":
            raise KeyProviderError(f"keys come from ${ENV_VAR}; rotate them where that variable is set")
        n = 1 + max((int(k[1:]) for k in self._keys if k[1:].isdigit()), default=0)
        new_id = f"k{n}"
        raw = {"current": new_id, "keys": {k: base64.b64encode(v).decode() for k, v in self._keys.items()}}
        raw["keys"][new_id] = _new_key()
        self._write(raw)
        self._load()
        return new_id


def _new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        raise KeyProviderError(f"{where}: not valid base64") from None
    if len(key) < 32:
        raise KeyProviderError(f"{where}: a key must be at least 32 bytes")
    return key
