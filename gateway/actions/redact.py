from gateway.actions.base import Action, ActionContext


class Redact(Action):
    """Replace the value with its entity type, e.g. `<EMAIL_ADDRESS>`."""

    name = "redact"

    def apply(self, value: str, ctx: ActionContext) -> str:
        return f"<{ctx.entity_type}>"
