from gateway.actions.base import Action, ActionContext, Replaced


class Mask(Action):
    """Hide all but the last `keep` characters: `************1111`.

    Separators (spaces, dashes, dots, @) are kept so the vendor still sees the shape.
    """

    name = "mask"
    options = frozenset({"keep", "char"})
    MAX_KEEP = 64

    def check_options(self, options) -> None:
        keep = options.get("keep", 4)
        if isinstance(keep, bool) or not isinstance(keep, int) or not 0 <= keep <= self.MAX_KEEP:
            raise ValueError(f"mask option 'keep' must be a whole number from 0 to {self.MAX_KEEP}, got {keep!r}")
        char = options.get("char", "*")
        if not isinstance(char, str) or len(char) != 1 or char.isalnum() or not char.isprintable():
            raise ValueError(f"mask option 'char' must be one printable character that is not a letter or digit, "
                             f"got {char!r}")

    def apply(self, value: str, ctx: ActionContext) -> Replaced:
        keep = int(ctx.options.get("keep", 4))
        char = str(ctx.options.get("char", "*"))
        visible = [i for i, c in enumerate(value) if c.isalnum()]
        shown = set(visible[-keep:]) if keep > 0 else set()
        return Replaced("".join(c if (i in shown or not c.isalnum()) else char for i, c in enumerate(value)))
