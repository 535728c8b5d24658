import hashlib
import hmac

from gateway.actions.base import Action, ActionContext, Replaced


class Hash(Action):
    """Keyed HMAC-SHA256 with a per-vendor key, truncated: stable per value and
    vendor (joins still work), unlinkable across vendors, not reversible."""

    name = "hash"
    options = frozenset({"length"})

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        length = int(ctx.options.get("length", 16))
        key = ctx.keys.derive("hash", ctx.vendor)
        digest = hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return Replaced(f"{ctx.entity_type}_{digest[:length]}")
