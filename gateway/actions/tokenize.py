from gateway.actions.base import Action, ActionContext, Replaced
from gateway.reversible.tokens import Issued, collision_attempt, surrogate_length, tokenize_surrogate


class Tokenize(Action):
    """Replace a value with a vault-backed surrogate such as `PERSON_7QX2K4M9TB`.

    Stable for the same value and vendor (the vendor can still see that two
    mentions are the same person), unlinkable across vendors. A value whose
    surrogate collided with another value's gets a longer one.
    """

    name = "tokenize"
    reversible = True
    options = frozenset()

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        attempt = collision_attempt(ctx.collisions, ctx.keys, ctx.vendor, ctx.entity_type, value)
        surrogate = tokenize_surrogate(ctx.keys, ctx.vendor, ctx.entity_type, value, surrogate_length(attempt))
        return Replaced(surrogate, (Issued(surrogate, ctx.entity_type, value),))
