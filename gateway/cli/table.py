"""Plain-text tables for the CLI: columns as wide as their widest cell, so
long vendor or caller names never push a row out of line."""

from __future__ import annotations


def table(headers: list[str], rows: list[list[str]], right: frozenset[int] = frozenset()) -> str:
    """Columns separated by two spaces; `right` holds the indexes of right-aligned
    (numeric) columns. The last column is not padded."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        out[-1] = cells[-1].rjust(widths[-1]) if len(cells) - 1 in right else cells[-1]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers)] + [line(r) for r in rows])
