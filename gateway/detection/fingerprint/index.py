"""The protected-document index: add documents, match outbound text against them.

Each document is fingerprinted in one mode (code or prose, by file extension).
Outbound text is fingerprinted in every mode that has documents, and each
mode's fingerprints are compared only with that mode's documents (the mode is
inside the keyed hash), so each mode keeps its own guarantee: a passage of at
least t normalised characters shared with a document is always found, nothing
shorter than k ever matches.

`match` keeps all hashes in memory as a sorted array and reloads only when the
store's version counter moves, so a lookup is a binary search per fingerprint.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives import constant_time, hashes, hmac

from gateway.detection.fingerprint.fingerprints import KEY_PURPOSE, Fingerprinter, Fingerprints, Settings
from gateway.detection.fingerprint.normalise import MODES
from gateway.detection.fingerprint.records import DocumentInfo, DocumentMatch
from gateway.detection.fingerprint.sources import MAX_FILE_BYTES, mode_for, read_text, scan_paths
from gateway.detection.fingerprint.store import FingerprintStore, SQLiteFingerprintStore, StoredFingerprints
from gateway.keys import KeyProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Loaded:
    """In-memory copy of the store, sorted by hash."""

    version: int
    hashes: np.ndarray
    doc_ids: np.ndarray
    positions: np.ndarray
    ordinals: np.ndarray  # rank of the fingerprint within its document, by position
    documents: dict[int, DocumentInfo]
    modes: tuple[str, ...]


class FingerprintIndex:
    def __init__(self, store: FingerprintStore, keys: KeyProvider, settings: Settings | None = None,
                 recheck_seconds: float = 0.0):
        """`recheck_seconds` > 0 asks the store for its version at most that often (a
        network round trip per field adds up on a shared PostgreSQL store)."""
        self.store = store
        self.recheck_seconds = recheck_seconds
        self._checked_at = float("-inf")
        self.settings, key_id = _settle_settings(store, keys, settings)
        self._fingerprinter = Fingerprinter(keys.derive(KEY_PURPOSE, key_id=key_id), self.settings)
        self._loaded: _Loaded | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path, keys: KeyProvider, settings: Settings | None = None) -> FingerprintIndex:
        return cls(SQLiteFingerprintStore.in_data_dir(data_dir), keys, settings)

    def add(self, label: str, source: str | Path, text: str, mode: str | None = None) -> DocumentInfo:
        """Index `text` under `label`; `source` names it and (by extension) picks the mode."""
        fp = self._fingerprinter.fingerprints(text, mode or mode_for(source))
        return self.store.add_document(label, str(source), fp.mode, len(fp.normalised), fp.hashes, fp.positions)

    def add_paths(self, label: str, paths: list[Path], max_bytes: int = MAX_FILE_BYTES) -> list[DocumentInfo]:
        """Index files and folders (recursively); skipped files are logged with a reason."""
        scan = scan_paths(paths, max_bytes)
        for skipped in scan.skipped:
            log.warning("fingerprint index: skipped %s: %s", skipped.path, skipped.reason)
        return [self.add(label, path, read_text(path)) for path in scan.files]

    def list(self) -> list[DocumentInfo]:
        return self.store.documents()

    def remove(self, label_or_doc_id: str | int) -> int:
        return self.store.remove(label_or_doc_id)

    def match(self, text: str) -> list[DocumentMatch]:
        """Indexed documents sharing passages with `text`, largest text share first."""
        loaded = self._current()
        matches: list[DocumentMatch] = []
        for mode in loaded.modes:
            matches.extend(self._match_mode(loaded, self._fingerprinter.fingerprints(text, mode)))
        return sorted(matches, key=lambda m: (-m.text_fraction, m.doc_id))

    def _current(self) -> _Loaded:
        now = time.monotonic()
        if self._loaded is not None and now - self._checked_at < self.recheck_seconds:
            return self._loaded
        self._checked_at = now
        version = self.store.version()
        if self._loaded is None or self._loaded.version != version:
            self._loaded = _load(self.store, version)
        return self._loaded

    def _match_mode(self, loaded: _Loaded, fp: Fingerprints) -> list[DocumentMatch]:
        lo = np.searchsorted(loaded.hashes, fp.hashes, "left")
        hi = np.searchsorted(loaded.hashes, fp.hashes, "right")
        counts = hi - lo
        hit = np.flatnonzero(counts)
        if not len(hit):
            return []
        query = np.repeat(hit, counts[hit])
        first = np.repeat(lo[hit], counts[hit])
        run_start = np.repeat(np.cumsum(counts[hit]) - counts[hit], counts[hit])
        entries = first + np.arange(len(query)) - run_start
        k = self.settings.k
        out: list[DocumentMatch] = []
        for doc_id in np.unique(loaded.doc_ids[entries]).tolist():
            doc = loaded.documents[doc_id]
            mine = loaded.doc_ids[entries] == doc_id
            q = np.unique(query[mine])
            text_runs = _runs(q, fp.positions[q], k)
            e = np.unique(entries[mine])
            order = np.argsort(loaded.ordinals[e])
            doc_runs = _runs(loaded.ordinals[e][order], loaded.positions[e][order], k)
            doc_chars = sum(b - a for a, b in doc_runs)
            text_chars = sum(b - a for a, b in text_runs)
            out.append(
                DocumentMatch(
                    doc_id=doc_id,
                    label=doc.label,
                    path=doc.path,
                    matched_chars_doc=doc_chars,
                    doc_fraction=doc_chars / doc.normalised_length if doc.normalised_length else 0.0,
                    text_fraction=text_chars / len(fp.normalised),
                    spans=[fp.normalised.original_span(a, b) for a, b in text_runs],
                    span_chars=[b - a for a, b in text_runs],
                )
            )
        return out


def _runs(ordinals: np.ndarray, positions: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Normalised ranges covered by matched fingerprints.

    Fingerprints adjacent in the selection (consecutive ordinals) lie in one
    shared passage, so the range between them counts; overlapping ranges merge.
    """
    if not len(ordinals):
        return []
    breaks = np.flatnonzero(np.diff(ordinals) != 1) + 1
    starts = positions[np.concatenate([[0], breaks])].tolist()
    ends = (positions[np.concatenate([breaks - 1, [len(positions) - 1]])] + k).tolist()
    merged: list[tuple[int, int]] = []
    for a, b in sorted(zip(starts, ends)):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def _load(store: FingerprintStore, version: int) -> _Loaded:
    stored = store.load()
    documents = {d.doc_id: d for d in store.documents()}
    known = np.isin(stored.doc_ids, np.fromiter(documents, dtype=np.int64, count=len(documents)))
    if not known.all():  # a document removed between the two reads: the next lookup reloads anyway
        stored = StoredFingerprints(stored.hashes[known], stored.doc_ids[known], stored.positions[known])
    by_doc = np.lexsort((stored.positions, stored.doc_ids))
    ordinals = np.empty(len(by_doc), dtype=np.int64)
    ordinals[by_doc] = np.arange(len(by_doc))
    by_hash = np.argsort(stored.hashes, kind="stable")
    modes = tuple(m for m in MODES if any(d.mode == m for d in documents.values()))
    return _Loaded(
        version,
        stored.hashes[by_hash],
        stored.doc_ids[by_hash],
        stored.positions[by_hash],
        ordinals[by_hash],
        documents,
        modes,
    )


def _settle_settings(store: FingerprintStore, keys: KeyProvider, wanted: Settings | None) -> tuple[Settings, str]:
    """Settings and key id are fixed when an index is created; both sides must agree.

    A key check (a keyed hash of a constant) is saved with them, so a process
    with another master key is refused instead of silently matching nothing.
    """
    saved = store.read_settings()
    if not saved:
        settings = wanted or Settings()
        key_id = keys.current_id()
        store.write_settings(
            {"k": str(settings.k), "t": str(settings.t), "identifiers": str(int(settings.identifiers)),
             "key_id": key_id, "key_check": _key_check(keys, key_id)}
        )
        return settings, key_id
    settings = Settings(int(saved["k"]), int(saved["t"]), saved["identifiers"] == "1")
    if wanted is not None and wanted != settings:
        raise ValueError(
            f"fingerprint index was built with {settings}; remove it and re-index to use {wanted}"
        )
    key_id = saved["key_id"]
    if "key_check" in saved and not constant_time.bytes_eq(
            saved["key_check"].encode(), _key_check(keys, key_id).encode()):
        raise ValueError(
            f"fingerprint index was built with another master key (key id {key_id!r}); every process using "
            "one index must share the master key ($VENDORGATE_MASTER_KEY or the same keys.json)"
        )
    return settings, key_id


def _key_check(keys: KeyProvider, key_id: str) -> str:
    mac = hmac.HMAC(keys.derive(KEY_PURPOSE, key_id=key_id), hashes.SHA256())
    mac.update(b"vendorgate key check")
    return mac.finalize()[:8].hex()
