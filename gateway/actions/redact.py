from gateway.actions.base import Action, ActionContext, Replaced


class Redact(Action):
    """Replace the value with its entity type, e.g. `<EMAIL_ADDRESS>`."""

    name = "redact"

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        return Replaced(f"<{ctx.entity_type}>")
