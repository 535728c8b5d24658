from gateway.actions.base import Action, ActionContext, Issued
from gateway.reversible.tokens import collision_attempt, surrogate_length, tokenize_surrogate


class Tokenize(Action):
    """Replace a value with a vault-backed surrogate such as `PERSON_7QX2K4M9TB`.

    Stable for the same value and vendor (the vendor can still see that two
    mentions are the same person), unlinkable across vendors. A value whose
    surrogate collided with another value's gets a longer one.
    """

    name = "tokenize"
    reversible = True
    options = frozenset()  # "collisions" is set by the pipeline, never by a policy

    def apply(self, value: str, ctx: ActionContext) -> str:
        attempt = collision_attempt(ctx.options, ctx.keys, ctx.vendor, ctx.entity_type, value)
        surrogate = tokenize_surrogate(ctx.keys, ctx.vendor, ctx.entity_type, value, surrogate_length(attempt))
        ctx.issued.append(Issued(surrogate, ctx.entity_type, value))
        return surrogate
