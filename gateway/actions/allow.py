from gateway.actions.base import Action, ActionContext


class Allow(Action):
    """Forward the value as it is (the audit still counts it)."""

    name = "allow"

    def apply(self, value: str, ctx: ActionContext) -> str:
        return value
