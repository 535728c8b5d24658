"""Format-preserving encryption of digit strings (FF3-1, NIST SP 800-38G Rev. 1).

Digits become other digits, the count stays the same, and everything that is
not a digit (spaces, dashes, letters) stays in place, so a vendor that
validates formats still accepts the value. With option `luhn: true` all digits
but the last are encrypted and the last is recomputed, so a card number stays
Luhn-valid.

Security limits, on purpose visible here:
* Small domains are weak: with few possible values an attacker can tabulate
  them. FF3-1 requires radix^length >= 1,000,000, so fewer than 6 digits (after
  setting the Luhn digit aside) are refused with `FPEDomainTooSmall`; use
  tokenize for PINs, 4-digit years and the like.
* Deterministic: equal inputs give equal outputs for the same vendor and entity
  type, so a vendor sees which records share a value (that is also what keeps
  joins working).
* Standard status: NIST SP 800-38G Rev. 1 (draft, 2019) replaced FF3 by FF3-1
  (56-bit tweak) after attacks on FF3; further cryptanalysis led NIST's later
  draft of Rev. 1 (2025) to propose withdrawing FF3-1 and keeping only FF1.
  Check the current status before relying on it; prefer `encrypt` or
  `tokenize` unless the vendor truly needs the format.

Key: HKDF of the master for ("fpe", vendor), 256 bits; tweak: the first
7 bytes of SHA-256 of the entity type. Outputs are also stored in the vault
(they are issued surrogates) so a response can be restored without decrypting
arbitrary digit strings; if an output collides with another value's (possible
across entity types or with the Luhn digit recomputed), the value falls back to
a tokenize surrogate.
"""

import hashlib

from ff3 import FF3Cipher

from gateway.actions.base import Action, ActionContext, Replaced
from gateway.actions.tokenize import Tokenize
from gateway.reversible.tokens import Issued, collision_attempt

MIN_DIGITS = 6
MAX_DIGITS = 56


class FPEDomainTooSmall(ValueError):
    """The value has too few (or too many) digits for FF3-1."""


def luhn_check_digit(payload: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def _cipher(ctx: ActionContext) -> FF3Cipher:
    key = ctx.keys.derive("fpe", ctx.vendor, length=32)
    tweak = hashlib.sha256(ctx.entity_type.encode()).digest()[:7]
    return FF3Cipher(key.hex(), tweak.hex(), radix=10)


def encrypt_digits(value: str, ctx: ActionContext, luhn: bool = False) -> str:
    digits = "".join(c for c in value if c.isascii() and c.isdigit())
    payload = digits[:-1] if luhn else digits
    if not MIN_DIGITS <= len(payload) <= MAX_DIGITS:
        raise FPEDomainTooSmall(
            f"fpe needs {MIN_DIGITS}..{MAX_DIGITS} digits to encrypt, the value has {len(payload)}"
        )
    out = _cipher(ctx).encrypt(payload)
    if luhn:
        out += luhn_check_digit(out)
    it = iter(out)
    return "".join(next(it) if (c.isascii() and c.isdigit()) else c for c in value)


class FPE(Action):
    name = "fpe"
    reversible = True
    options = frozenset({"luhn"})

    def check_options(self, options) -> None:
        if not isinstance(options.get("luhn", False), bool):
            raise ValueError("fpe option 'luhn' must be true or false")

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        if collision_attempt(ctx.collisions, ctx.keys, ctx.vendor, ctx.entity_type, value):
            return Tokenize().apply(value, ctx)
        surrogate = encrypt_digits(value, ctx, luhn=bool(ctx.options.get("luhn", False)))
        return Replaced(surrogate, (Issued(surrogate, ctx.entity_type, value),))
