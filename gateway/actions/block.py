from gateway.actions.base import Action, ActionContext, Replaced


class Block(Action):
    """Refuse the whole request. The pipeline checks for block before any
    transform runs, so reaching `apply` is a bug, and it fails closed."""

    name = "block"

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        raise RuntimeError("block is a decision, not a transform")
