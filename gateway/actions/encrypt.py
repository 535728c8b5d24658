from gateway.actions.base import Action, ActionContext, Replaced
from gateway.actions.tokenize import Tokenize
from gateway.reversible.tokens import MAX_ENCRYPT_VALUE_BYTES, encrypt_token


class Encrypt(Action):
    """Replace a value with an AES-SIV token (`vg1k1_PERSON_...`) that carries
    the value itself, so restoring needs no vault; only this vendor's key opens it.

    Values longer than 128 bytes would make tokens too long to hold back while
    streaming a response, so they get a vault-backed surrogate instead.
    """

    name = "encrypt"
    reversible = True
    options = frozenset()

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        if len(value.encode()) > MAX_ENCRYPT_VALUE_BYTES:
            return Tokenize().apply(value, ctx)
        return Replaced(encrypt_token(ctx.keys, ctx.vendor, ctx.entity_type, value))
