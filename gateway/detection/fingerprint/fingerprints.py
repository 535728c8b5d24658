"""Keyed fingerprints of a text: winnow on a fast hash, then HMAC the survivors.

Only the k-grams winnowing selects (about 2/(w+1) of them) are HMAC'd, which
keeps the per-request cost low; the stored and compared value is always the
keyed hash, HMAC-SHA256(key, mode || k-gram) truncated to 8 bytes, so an index
reveals nothing about the text without the key. The winnowing hash's base is
also derived from the key, so the pattern of selected positions cannot be
recomputed from a guessed document either (defence in depth, not a proof).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes, hmac

from gateway.detection.fingerprint.normalise import Normalised, normalise
from gateway.detection.fingerprint.winnow import kgram_hashes, winnow

# Not "fingerprint": gateway.reversible.tokens derives that purpose for value digests.
KEY_PURPOSE = "document-fingerprint"


@dataclass(frozen=True)
class Settings:
    """k: noise threshold; t: guarantee threshold (normalised chars)."""

    k: int = 32
    t: int = 64
    identifiers: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.t:
            raise ValueError("fingerprint settings need 1 <= k <= t")

    @property
    def w(self) -> int:
        return self.t - self.k + 1


@dataclass(frozen=True)
class Fingerprints:
    """Selected k-grams of one normalised text: keyed hash and normalised start."""

    mode: str
    normalised: Normalised
    hashes: np.ndarray
    positions: np.ndarray


class Fingerprinter:
    def __init__(self, key: bytes, settings: Settings):
        self.settings = settings
        self._hmac = hmac.HMAC(key, hashes.SHA256())
        self._base = int.from_bytes(self._keyed(b"winnow-base"), "big") | 1

    def fingerprints(self, text: str, mode: str) -> Fingerprints:
        s = self.settings
        norm = normalise(text, mode, identifiers=s.identifiers)
        positions = winnow(kgram_hashes(norm.text, s.k, self._base), s.w)
        prefix = mode + "\0"
        t, k = norm.text, s.k
        base = self._hmac
        digests = bytearray()
        for p in positions.tolist():
            h = base.copy()
            h.update((prefix + t[p : p + k]).encode("utf-8", "surrogatepass"))
            digests += h.finalize()[:8]
        keyed = np.frombuffer(bytes(digests), dtype=">i8").astype(np.int64)
        return Fingerprints(mode, norm, keyed, positions.astype(np.int64))

    def _keyed(self, message: bytes) -> bytes:
        h = self._hmac.copy()
        h.update(message)
        return h.finalize()[:8]
