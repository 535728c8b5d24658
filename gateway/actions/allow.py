from gateway.actions.base import Action, ActionContext, Replaced


class Allow(Action):
    """Forward the value as it is (the audit still counts it)."""

    name = "allow"

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        return Replaced(value)
