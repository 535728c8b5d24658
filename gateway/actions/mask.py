from gateway.actions.base import Action, ActionContext, Replaced


class Mask(Action):
    """Hide all but the last `keep` characters: `************1111`.

    Separators (spaces, dashes, dots, @) are kept so the vendor still sees the shape.
    """

    name = "mask"
    options = frozenset({"keep", "char"})

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        keep = int(ctx.options.get("keep", 4))
        char = str(ctx.options.get("char", "*"))
        visible = [i for i, c in enumerate(value) if c.isalnum()]
        shown = set(visible[-keep:]) if keep > 0 else set()
        return Replaced("".join(c if (i in shown or not c.isalnum()) else char for i, c in enumerate(value)))
