"""`in_order`: which replacements made which text, when many texts share one path (JSON Lines)."""

from __future__ import annotations

from gateway.reversible.offsets import in_order


def test_each_line_takes_the_replacements_that_turn_its_text_into_the_text_sent():
    pairs = [("Maria and Wei", "Aiko and Lin"), ("no names", "no names"), ("Wei again", "Lin again")]
    replaced = [(0, "Maria", "Aiko"), (10, "Wei", "Lin"), (0, "Wei", "Lin")]
    assert in_order(pairs, replaced) == [[0, 1], [], [2]]


def test_a_replacement_that_changed_nothing_is_never_counted():
    pairs = [("Maria on 2024-01-02", "Aiko on 2024-01-02")]
    assert in_order(pairs, [(0, "Maria", "Aiko"), (9, "2024-01-02", "2024-01-02")]) == [[0]]


def test_once_a_line_cannot_be_explained_the_rest_is_unknown():
    pairs = [("Maria", "Aiko"), ("Wei", "Lin"), ("Ana", "Eva")]
    replaced = [(0, "Maria", "Aiko"), (0, "Bob", "Lin"), (0, "Ana", "Eva")]
    assert in_order(pairs, replaced) == [[0], None, None]
