"""Phone numbers: a cheap regex finds digit runs, `phonenumbers` decides."""

from __future__ import annotations

import re

import phonenumbers

from gateway.detection.finding import Finding
from gateway.detection.patterns.base import Recognizer
from gateway.detection.patterns.context import scored, words

REGEX = (
    r"(?<![\w+.-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d[\d .-]{5,16}\d"
    r"(?:[ \t]*(?:x|ext\.?|extension)[ \t]*\d{1,6})?(?!\d)"
)

BOOST = words(["phone", "tel", "telephone", "call", "called", "calling", "mobile", "cell", "cellphone",
               "fax", "contact", "reach", "text", "sms", "whatsapp", "ph", "landline", "dial", "office", "desk",
               "message", "messages", "answering", "voicemail"])
DAMP = words(["order", "invoice", "tracking", "account", "acct", "ref", "reference", "serial", "transaction",
              "confirmation", "isbn", "sku", "po", "build", "version", "id"])

_SEPARATED = re.compile(r"[ .()+-]")
# North American numbers are most of the traffic and `phonenumbers` is slow on
# them (it tries every NANP region), so plain NANP shapes are checked here.
_NANP = re.compile(
    r"(?:\+?1[ .-]?)?(?:\((?P<area>\d{3})\)|(?P<area2>\d{3}))[ .-]?(?P<exchange>\d{3})[ .-]?\d{4}"
    r"(?:[ \t]*(?:x|ext\.?|extension)[ \t]*\d{1,6})?"
)
_LENIENCY = phonenumbers.Leniency.POSSIBLE


def _matches(candidate: str):
    found = list(phonenumbers.PhoneNumberMatcher(candidate, "US", leniency=_LENIENCY))
    if not found and candidate.startswith("0"):
        found = list(phonenumbers.PhoneNumberMatcher(candidate, "GB", leniency=_LENIENCY))
    return found


def _nanp(text: str, m: re.Match[str]) -> list[Finding] | None:
    """A candidate that is, or starts with, a North American number."""
    candidate = m.group()
    shape = _NANP.match(candidate)
    if shape is None or (shape.end() < len(candidate) and candidate[shape.end()] not in " .-"):
        return None
    area = shape.group("area") or shape.group("area2")
    plausible = area[0] in "23456789" and area[1] != "9" and shape.group("exchange")[0] in "23456789"
    base, note = (0.7, "NANP number") if plausible else (0.5, "NANP-shaped number")
    if not _SEPARATED.search(shape.group()):
        # a bare "4155550134" is still a phone number when its area code and exchange are plausible
        base, note = (0.5, note + ", no separators") if plausible else (0.3, note + ", no separators")
    return [scored(text, "PHONE_NUMBER", m.start(), m.start() + shape.end(), base, "phone", BOOST, DAMP, note,
                   damp_after=False)]


_GROUPED = re.compile(r"(?:\(\d{1,5}\)[ .-]?|\d{1,5}[ .-])(?:\d{2,5}[ .-])*\d{2,7}")


def _local(text: str, m: re.Match[str]) -> list[Finding]:
    """A short local number ("74 849 807", "(84) 244-757") that `phonenumbers` cannot
    place without a country: digit groups, 6-12 digits, and a phone word nearby."""
    shape = _GROUPED.fullmatch(m.group())
    digits = sum(ch.isdigit() for ch in m.group())
    if shape is None or not 6 <= digits <= 12:
        return []
    found = scored(text, "PHONE_NUMBER", m.start(), m.end(), 0.3, "phone", BOOST, DAMP, "grouped local number")
    return [found] if found.score > 0.3 else []


def handle(text: str, m: re.Match[str]) -> list[Finding]:
    nanp = _nanp(text, m)
    if nanp is not None:
        return nanp
    return _international(text, m) or _local(text, m)


def _international(text: str, m: re.Match[str]) -> list[Finding]:
    offset = m.start()
    results = []
    for match in _matches(m.group()):
        start, end = offset + match.start, offset + match.end
        raw = match.raw_string
        digits = sum(ch.isdigit() for ch in raw)
        international = raw.startswith("+")
        if phonenumbers.is_valid_number(match.number):
            base, note = 0.7, "valid number"
        else:
            base, note = 0.5, "possible number"
        if not _SEPARATED.search(raw):
            base, note = 0.3, note + ", no separators"
        finding = scored(text, "PHONE_NUMBER", start, end, base, "phone", BOOST, DAMP, note, damp_after=False)
        if digits < 10 and not international and finding.score <= base:
            continue
        results.append(finding)
    return results


RECOGNIZER = Recognizer("phone", frozenset({"PHONE_NUMBER"}), REGEX, handle, first=r"[\d(+]")
