"""Dates: a date of birth when birth words are near, otherwise a DATE_TIME.

A full date (day, month and year) scores 0.6 as Presidio's date recognizer
does; an ISO-style time after a numeric date ("1995-12-19 20:10:13.49") is
part of it.
"""

from __future__ import annotations

import re

from gateway.detection.finding import Finding
from gateway.detection.patterns.base import Recognizer, word_alternation
from gateway.detection.patterns.context import scored, words

_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}
_MONTH = word_alternation([
    "jan", "january", "feb", "february", "mar", "march", "apr", "april", "may", "jun", "june", "jul", "july",
    "aug", "august", "sep", "sept", "september", "oct", "october", "nov", "november", "dec", "december",
])
_ORD = r"(?:[sS][tT]|[nN][dD]|[rR][dD]|[tT][hH])?"

NUMERIC = (
    r"(?<![\w/.:-])(?:(?P<date_y1>\d{4})(?P<date_s1>[-/.])(?P<date_a1>\d{1,2})(?P=date_s1)(?P<date_b1>\d{1,2})"
    r"|(?P<date_a2>\d{1,2})(?P<date_s2>[-/.])(?P<date_b2>\d{1,2})(?P=date_s2)(?P<date_y2>\d{4}|\d{2}))"
    r"(?!\d|[/.-]\d)(?P<date_time>[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?(?![\w:]))?"
)
TEXTUAL = (
    r"(?<![\w])(?:(?P<date_m3>" + _MONTH + r")\.?[ \t]+(?P<date_d3>\d{1,2})" + _ORD + r",?[ \t]+(?P<date_y3>\d{4})"
    r"|(?P<date_d4>\d{1,2})" + _ORD + r"[ \t]+(?:[oO][fF][ \t]+)?(?P<date_m4>" + _MONTH + r")\.?,?[ \t]+(?P<date_y4>\d{4})"
    r"|(?P<date_d5>\d{1,2})-(?P<date_m5>" + _MONTH + r")-(?P<date_y5>\d{4}|\d{2}))(?![\w])"
)

BIRTH = words(["dob", "d.o.b", "d.o.b.", "birth", "born", "birthday", "birthdate", "bday", "date of birth",
               "b-day", "birth date"])


DATE_SCORE = 0.6


def _plausible(year: int, month: int, day: int) -> bool:
    return (year < 100 or 1900 <= year <= 2100) and 1 <= month <= 12 and 1 <= day <= 31


def _numeric_ok(m: re.Match[str]) -> bool:
    if m.group("date_y1"):
        return _plausible(int(m.group("date_y1")), int(m.group("date_a1")), int(m.group("date_b1")))
    year, a, b = int(m.group("date_y2")), int(m.group("date_a2")), int(m.group("date_b2"))
    return _plausible(year, a, b) or _plausible(year, b, a)


def _textual_ok(m: re.Match[str]) -> bool:
    for n in "345":
        month = m.group("date_m" + n)
        if month:
            return _plausible(int(m.group("date_y" + n)), _MONTHS[month[:3].lower()], int(m.group("date_d" + n)))
    return False


def _emit(text: str, start: int, end: int, recognizer: str) -> list[Finding]:
    dob = scored(text, "DATE_OF_BIRTH", start, end, 0.55, recognizer, BIRTH)
    if dob.score > 0.55:
        return [dob]
    return [Finding("DATE_TIME", start, end, DATE_SCORE, recognizer,
                    explanation=f"{recognizer}: base {DATE_SCORE:.2f}; full date, no birth context")]


def handle_numeric(text: str, m: re.Match[str]) -> list[Finding]:
    return _emit(text, m.start(), m.end(), "date") if _numeric_ok(m) else []


def handle_textual(text: str, m: re.Match[str]) -> list[Finding]:
    return _emit(text, m.start(), m.end(), "date") if _textual_ok(m) else []


ENTITIES = frozenset({"DATE_OF_BIRTH", "DATE_TIME"})
RECOGNIZERS = [
    Recognizer("date_numeric", ENTITIES, NUMERIC, handle_numeric, first=r"\d"),
    Recognizer("date_textual", ENTITIES, TEXTUAL, handle_textual, first="[0-9JjFfMmAaSsOoNnDd]"),
]
