"""Key provider: where the gateway's secret keys come from.

A master key never leaves this module; callers ask for a key *derived* for one
purpose and one vendor (HKDF-SHA256), so a leak of one derived key exposes
nothing else. Keys have ids so that rotation keeps old material readable.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_FILE_NAME = "keys.json"
ENV_VAR = "VENDORGATE_MASTER_KEY"
# What a data dir holds that only its key opens or checks: with any of these and no key, nothing starts.
STATE_FILES = {
    "audit.sqlite": "an audit log",
    "vault.sqlite3": "a token vault",
    "ledger.sqlite": "an exposure ledger",
    "fingerprints.sqlite": "a protected-document index",
    "budgets.sqlite": "exposure budgets",
}


class KeyProviderError(Exception):
    """Raised when keys are missing, unreadable or malformed."""


def data_dir_state(data_dir: Path) -> list[str]:
    """What in `data_dir` needs its key, e.g. ["an audit log (audit.sqlite)"]."""
    return [f"{what} ({name})" for name, what in STATE_FILES.items() if (Path(data_dir) / name).exists()]


def missing_key_message(path: Path, state: list[str]) -> str:
    return (f"{path.parent} holds {', '.join(state)} but no key file {path.name}: restore {path} from your backup "
            f"(or set ${ENV_VAR} to the key it held); `vendorgate keys init --force` would start a new key, and "
            "what the old one protected could no longer be read or verified")

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
        return _hkdf(master.material, f"vendorgate/{purpose}/{vendor}".encode(), length)


@functools.lru_cache(maxsize=4096)  # purposes × vendors × key ids: a handful in practice
def _hkdf(material: bytes, info: bytes, length: int) -> bytes:
    """Remembered: every token, vault row and fingerprint asks for a key, and HKDF each time
    was a visible share of a large batch's CPU."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material)


class LocalKeyProvider(KeyProvider):
    """Keys in a JSON file (mode 0600) in the data dir, or one key from an env var.

    File shape: {"current": "k1", "keys": {"k1": "<base64 32 bytes>", ...}}.
    """

    def __init__(self, path: Path, env: dict[str, str] | None = None, create: bool | None = None):
        """`create`: None (default) makes a new key only when the file is missing and the folder holds
        nothing a key protects (a fresh data dir); False never writes (read-only commands); True makes
        one even next to existing state (`vendorgate keys init --force`)."""
        self.path = Path(path)
        env = os.environ if env is None else env
        self._keys: dict[str, bytes] = {}
        self._current = ""
        if env.get(ENV_VAR):
            self._keys = {"env": _decode_key(env[ENV_VAR], ENV_VAR)}
            self._current = "env"
            return
        if not self.path.exists():
            state = data_dir_state(self.path.parent)
            if create is False:
                raise KeyProviderError(missing_key_message(self.path, state) if state else
                                       f"no key file {self.path} (and ${ENV_VAR} is not set): use --data-dir or "
                                       "--config to point at the gateway's data dir")
            if state and create is not True:
                raise KeyProviderError(missing_key_message(self.path, state))
            self._write({"current": "k1", "keys": {"k1": _new_key()}})
        self._load()

    @classmethod
    def in_data_dir(cls, data_dir: Path, create: bool | None = None) -> LocalKeyProvider:
        return cls(Path(data_dir) / KEY_FILE_NAME, create=create)

    @classmethod
    def existing(cls, data_dir: Path) -> LocalKeyProvider:
        """The data dir's key, never creating one (read-only commands)."""
        return cls.in_data_dir(data_dir, create=False)

    def _load(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
            self._keys = {kid: _decode_key(v, f"{self.path}: key {kid!r}") for kid, v in raw["keys"].items()}
            self._current = raw["current"]
        except KeyProviderError:
            raise
        except PermissionError:
            raise KeyProviderError(f"cannot read key file {self.path}: permission denied; run as the user that "
                                   "owns the data dir") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyProviderError(f"key file {self.path} is corrupt ({type(exc).__name__}); restore it from your "
                                   "backup (it must hold {\"current\": ID, \"keys\": {ID: base64}})") from None
        if self._current not in self._keys:
            raise KeyProviderError(f"key file {self.path}: current key {self._current!r} is not in 'keys'")

    def _write(self, raw: dict) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(raw, fh, indent=2)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise KeyProviderError(f"cannot write key file {self.path}: {exc.strerror or type(exc).__name__}; "
                                   "make the data dir writable by the gateway's user or choose another "
                                   "(--data-dir or data_dir:)") from None

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
