"""Token formats for reversible actions, and how to find them again in text.

Two kinds of token go to vendors:

* tokenize surrogates, ``PERSON_7QX2K4M9TB``: the entity type, ``_``, then
  Crockford base32 of HMAC-SHA256(per-vendor key, type + NUL + value). The
  vault maps them back. 10 characters carry 50 bits: among n values of one type
  for one vendor the chance that any two share a surrogate is about
  n^2 / 2^51, i.e. ~4e-6 for 100,000 values and ~4e-4 for a million. That is
  small but not nothing, so the vault checks every store and a value whose
  surrogate is already taken gets a longer one (see `surrogate_length`).
* encrypt tokens, ``vg1k1_PERSON_<base32>``: AES-SIV of the value under a key
  derived for the vendor and key id, associated data binding the entity type
  and vendor. Self-contained: no vault, and only the same vendor's key opens it.

All matching is case-insensitive and tolerant of Crockford look-alikes
(i/l read as 1, o as 0) because language models re-case what they echo.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from gateway.keys import KeyProvider

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(ALPHABET)}
_DECODE.update({c.lower(): i for c, i in list(_DECODE.items())})
_DECODE.update({"I": 1, "i": 1, "L": 1, "l": 1, "O": 0, "o": 0})

SURROGATE_LENGTH = 10
SURROGATE_STEP = 4
MAX_SURROGATE_LENGTH = 26
MAX_TYPE_LENGTH = 40
MAX_KEY_ID_LENGTH = 16
ENCRYPT_PREFIX = "vg1"
MAX_ENCRYPT_VALUE_BYTES = 128
_SIV_TAG_BYTES = 16


class TokenError(ValueError):
    """A token is malformed, tampered with, or not meant for this vendor."""



@dataclass(frozen=True)
class Issued:
    """A reversible surrogate handed to a vendor; the pipeline stores it in the vault."""

    surrogate: str
    entity_type: str
    original: str = field(repr=False)

def b32encode(data: bytes) -> str:
    """Crockford base32, no padding, upper case."""
    bits = int.from_bytes(data, "big")
    n_chars = (len(data) * 8 + 4) // 5
    bits <<= n_chars * 5 - len(data) * 8
    return "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in reversed(range(n_chars)))


def b32decode(text: str) -> bytes:
    """Inverse of `b32encode`; any case, i/l read as 1 and o as 0."""
    try:
        values = [_DECODE[c] for c in text]
    except KeyError:
        raise TokenError("not Crockford base32") from None
    n_bytes = len(values) * 5 // 8
    bits = 0
    for v in values:
        bits = (bits << 5) | v
    extra = len(values) * 5 - n_bytes * 8
    if bits & ((1 << extra) - 1):
        raise TokenError("not canonical Crockford base32")
    return (bits >> extra).to_bytes(n_bytes, "big")


def canonical(text: str) -> str:
    """The Crockford spelling a vendor's re-cased echo of `text` stands for."""
    return "".join(ALPHABET[_DECODE[c]] if c in _DECODE else c for c in text.upper())


def check_entity_type(entity_type: str) -> str:
    if not re.fullmatch(rf"[A-Za-z][A-Za-z0-9_]{{0,{MAX_TYPE_LENGTH - 1}}}", entity_type):
        raise TokenError("entity type must be letters, digits and _ (at most 40)")
    return entity_type.upper()


def fingerprint(keys: KeyProvider, vendor: str, entity_type: str, value: str) -> str:
    """A keyed digest naming a value without revealing it; the vault records
    values whose surrogate collided under this name."""
    key = keys.derive("fingerprint", vendor)
    return hmac.new(key, f"{entity_type}\0{value}".encode(), hashlib.sha256).hexdigest()[:32]


def surrogate_length(attempt: int) -> int:
    """Length of the surrogate after `attempt` collisions: 10, 14, 18, ..."""
    return min(SURROGATE_LENGTH + SURROGATE_STEP * attempt, MAX_SURROGATE_LENGTH)


def tokenize_surrogate(keys: KeyProvider, vendor: str, entity_type: str, value: str, length: int = SURROGATE_LENGTH) -> str:
    entity_type = check_entity_type(entity_type)
    key = keys.derive("tokenize", vendor)
    digest = hmac.new(key, f"{entity_type}\0{value}".encode(), hashlib.sha256).digest()
    return f"{entity_type}_{b32encode(digest)[:length]}"


def _siv(keys: KeyProvider, vendor: str, key_id: str) -> AESSIV:
    return AESSIV(keys.derive("siv", vendor, key_id, length=64))


def _associated_data(entity_type: str, vendor: str) -> list[bytes]:
    return [entity_type.encode(), vendor.encode()]


def encrypt_token(keys: KeyProvider, vendor: str, entity_type: str, value: str) -> str:
    """Deterministic: the same value, type, vendor and key give the same token."""
    entity_type = check_entity_type(entity_type)
    key_id = keys.current_id()
    if not re.fullmatch(rf"[A-Za-z0-9]{{1,{MAX_KEY_ID_LENGTH}}}", key_id):
        raise TokenError("key id must be 1-16 letters or digits to be named in a token")
    plain = value.encode()
    if len(plain) > MAX_ENCRYPT_VALUE_BYTES:
        raise TokenError(f"value is longer than {MAX_ENCRYPT_VALUE_BYTES} bytes")
    sealed = _siv(keys, vendor, key_id).encrypt(plain, _associated_data(entity_type, vendor))
    return f"{ENCRYPT_PREFIX}{key_id.lower()}_{entity_type}_{b32encode(sealed)}"


def parse_encrypt_token(token: str) -> tuple[str, str, str]:
    """(key id marker, entity type, ciphertext text) of an encrypt token."""
    m = _ENCRYPT_FULL.fullmatch(token)
    if not m:
        raise TokenError("not a vendorgate encrypt token")
    return m.group("kid").lower(), m.group("type").upper(), m.group("ct")


def decrypt_token(keys: KeyProvider, vendor: str, token: str) -> tuple[str, str]:
    """(entity type, value) of a token made for `vendor`; TokenError otherwise."""
    kid, entity_type, ct = parse_encrypt_token(token)
    key_id = next((k for k in keys.key_ids() if k.lower() == kid), None)
    if key_id is None:
        raise TokenError("token names a key that is not configured")
    try:
        plain = _siv(keys, vendor, key_id).decrypt(b32decode(ct), _associated_data(entity_type, vendor))
    except InvalidTag:
        raise TokenError("token does not decrypt for this vendor (tampered or foreign)") from None
    return entity_type, plain.decode()


_CT_MAX = (8 * (MAX_ENCRYPT_VALUE_BYTES + _SIV_TAG_BYTES) + 4) // 5
_CT_MIN = (8 * (1 + _SIV_TAG_BYTES) + 4) // 5
_TYPE = rf"[A-Za-z][A-Za-z0-9_]{{0,{MAX_TYPE_LENGTH - 1}}}"
ENCRYPT_PATTERN = rf"{ENCRYPT_PREFIX}(?P<kid>[A-Za-z0-9]{{1,{MAX_KEY_ID_LENGTH}}})_(?P<type>{_TYPE})_(?P<ct>[0-9A-Za-z]{{{_CT_MIN},{_CT_MAX}}})"
_ENCRYPT_FULL = re.compile(ENCRYPT_PATTERN, re.IGNORECASE)

# Boundaries: a token is not glued to letters or digits; `_`, `*`, quotes and
# other punctuation around it (markdown, JSON, code) are fine.
BEFORE = r"(?<![A-Za-z0-9])"
AFTER = r"(?![A-Za-z0-9])"

MAX_ENCRYPT_TOKEN_LENGTH = len(ENCRYPT_PREFIX) + MAX_KEY_ID_LENGTH + 1 + MAX_TYPE_LENGTH + 1 + _CT_MAX
MAX_TOKENIZE_LENGTH = MAX_TYPE_LENGTH + 1 + MAX_SURROGATE_LENGTH
MAX_TOKEN_LENGTH = max(MAX_ENCRYPT_TOKEN_LENGTH, MAX_TOKENIZE_LENGTH)


def tokenize_pattern(entity_types: Iterable[str] | None = None) -> str:
    """Regex (no boundaries) for tokenize surrogates of the given types, or of
    any type-shaped prefix when `entity_types` is None."""
    if entity_types is None:
        type_part = _TYPE
    else:
        names = sorted({t.upper() for t in entity_types}, key=len, reverse=True)
        type_part = "|".join(re.escape(t) for t in names) or "(?!)"
    return rf"(?P<ttype>{type_part})_(?P<tcode>[0-9A-Za-z]{{{SURROGATE_LENGTH},{MAX_SURROGATE_LENGTH}}})"


TOKEN_PATTERN = re.compile(f"{BEFORE}(?:{ENCRYPT_PATTERN}|{tokenize_pattern()}){AFTER}", re.IGNORECASE)


@functools.lru_cache(maxsize=64)
def _tokens_of(entity_types: frozenset[str]) -> re.Pattern:
    return re.compile(f"{BEFORE}(?:{ENCRYPT_PATTERN}|{tokenize_pattern(entity_types)}){AFTER}", re.IGNORECASE)


def find_tokens(text: str, entity_types: Iterable[str] | None = None) -> set[str]:
    """Token-shaped strings in `text` (as written). The pipeline uses this on the
    caller's own request so the restorer leaves those literals alone. The pattern
    is built once per set of types (a 4,000-task batch asks once per issued token)."""
    if "_" not in text:  # every token format has one; most request text has none, and the scan is slow
        return set()
    pattern = TOKEN_PATTERN if entity_types is None else _tokens_of(frozenset(entity_types))
    return {m.group(0) for m in pattern.finditer(text)}


def max_token_length(known: Iterable[str] = ()) -> int:
    """Longest string the restorer may have to hold back for a response:
    the longest token format, or a longer known synthetic value."""
    return max([MAX_TOKEN_LENGTH, *(len(k) for k in known)])


def collision_attempt(collisions: Mapping[str, int], keys: KeyProvider, vendor: str, entity_type: str, value: str) -> int:
    """How many times this value's surrogate collided before (0 almost always).

    `collisions` is `vault.collisions(vendor)`, passed by the pipeline in the action context.
    """
    if not collisions:
        return 0
    return int(collisions.get(fingerprint(keys, vendor, entity_type, value), 0))
