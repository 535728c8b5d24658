import hashlib
import hmac

from gateway.actions.base import Action, ActionContext, Replaced


class Hash(Action):
    """Keyed HMAC-SHA256 with a per-vendor key, truncated: stable per value and
    vendor (joins still work), unlinkable across vendors, not reversible."""

    name = "hash"
    options = frozenset({"length"})
    MIN_LENGTH, MAX_LENGTH = 8, 64  # hex digits of HMAC-SHA256

    def check_options(self, options) -> None:
        length = options.get("length", 16)
        if isinstance(length, bool) or not isinstance(length, int) or not self.MIN_LENGTH <= length <= self.MAX_LENGTH:
            raise ValueError(f"hash option 'length' must be a whole number from {self.MIN_LENGTH} to "
                             f"{self.MAX_LENGTH}, got {length!r}")

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        length = int(ctx.options.get("length", 16))
        key = ctx.keys.derive("hash", ctx.vendor)
        digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return Replaced(f"{ctx.entity_type}_{digest[:length]}")
