"""Robust winnowing (Schleimer, Wilkerson & Aiken, SIGMOD 2003, section 4).

Every k-gram gets a fast un-keyed 32-bit hash; in each window of w consecutive
k-gram hashes one minimum is selected. Robust winnowing: if the previous
window's selection is still in the window and still minimal keep it, otherwise
take the rightmost minimum. Any two texts sharing a run of w + k - 1 chars share
a window, hence a selected minimum k-gram: that is the detection guarantee.

The vectorised path uses the fact that robust and rightmost-minimum selection
agree on every window whose minimum is unique; only stretches of windows with a
tied minimum (repetitive text) are replayed with the sequential rule.
"""

from __future__ import annotations

import numpy as np

_MASK32 = np.uint64(0xFFFFFFFF)
_U64_MAX = np.uint64(0xFFFFFFFFFFFFFFFF)


def kgram_hashes(text: str, k: int, base: int) -> np.ndarray:
    """32-bit hash of every k-gram of `text` (len(text) - k + 1 values).

    A polynomial hash mod 2**64 with an odd `base`, computed with prefix sums
    (no Python loop), then a splitmix64 finaliser; the top 32 bits are kept.
    """
    n = len(text) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint64)
    c = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64) + np.uint64(1)
    inv = pow(base, -1, 2**64)
    with np.errstate(over="ignore"):
        pw = _powers(base, len(c))
        ipw = _powers(inv, len(c))
        prefix = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(c * ipw, dtype=np.uint64)])
        h = (prefix[k:] - prefix[:-k]) * pw[k - 1 :]
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
    return h >> np.uint64(32)


def _powers(base: int, n: int) -> np.ndarray:
    out = np.full(n, base, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, dtype=np.uint64)


def winnow(hashes: np.ndarray, w: int) -> np.ndarray:
    """Positions selected by robust winnowing, ascending and distinct.

    A text with fewer than w k-grams is one (short) window.
    """
    n = len(hashes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    w = min(w, n)
    pos = np.arange(n, dtype=np.uint64)
    rightmost = _window_argmin((hashes << np.uint64(32)) | (_MASK32 - pos), w, rightmost=True)
    leftmost = _window_argmin((hashes << np.uint64(32)) | pos, w, rightmost=False)
    selected = rightmost.copy()
    tied = np.flatnonzero(rightmost != leftmost)
    if len(tied):
        _replay_ties(hashes, w, selected, tied)
    # Selections never move left, so distinct positions are where the value changes.
    return selected[np.concatenate([[True], selected[1:] != selected[:-1]])]


def _window_argmin(keys: np.ndarray, w: int, rightmost: bool) -> np.ndarray:
    """Argmin of every window from packed (hash, position) keys, O(n) (van Herk/Gil-Werman)."""
    n = len(keys)
    n_windows = n - w + 1
    # Blocks of w as columns, so each accumulate step is one long vector operation.
    blocks = np.concatenate([keys, np.full((-n) % w, _U64_MAX, dtype=np.uint64)]).reshape(-1, w).T
    prefix = np.minimum.accumulate(blocks, axis=0).T.ravel()
    suffix = np.minimum.accumulate(blocks[::-1], axis=0)[::-1].T.ravel()
    mins = np.minimum(suffix[:n_windows], prefix[w - 1 : w - 1 + n_windows])
    low = (mins & _MASK32).astype(np.int64)
    return (0xFFFFFFFF - low) if rightmost else low


def _replay_ties(hashes: np.ndarray, w: int, selected: np.ndarray, tied: np.ndarray) -> None:
    """Apply the robust rule over each stretch of windows whose minimum is tied."""
    h = hashes.tolist()
    stretch_starts = tied[np.concatenate([[True], np.diff(tied) > 1])]
    stretch_ends = tied[np.concatenate([np.diff(tied) > 1, [True]])]
    for first, last in zip(stretch_starts.tolist(), stretch_ends.tolist()):
        p = int(selected[first - 1]) if first > 0 else -1
        for i in range(first, last + 1):
            p = _robust_step(h, w, i, p)
            selected[i] = p


def _robust_step(h: list[int], w: int, i: int, previous: int) -> int:
    """Selection for window i given the previous window's selection."""
    if previous >= i:
        new = i + w - 1
        return new if h[new] < h[previous] else previous
    best = i + w - 1
    for j in range(i + w - 2, i - 1, -1):
        if h[j] < h[best]:
            best = j
    return best


def winnow_reference(hashes: list[int], w: int) -> list[int]:
    """The sequential algorithm, window by window; the definition `winnow` must equal."""
    n = len(hashes)
    if n == 0:
        return []
    w = min(w, n)
    chosen: list[int] = []
    p = -1
    for i in range(n - w + 1):
        p = _robust_step(hashes, w, i, p)
        if not chosen or chosen[-1] != p:
            chosen.append(p)
    return chosen
