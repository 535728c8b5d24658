"""Street addresses, PO boxes, US military (APO/FPO/DPO) addresses, ZIP codes and UK postcodes.

US: house number + street name + suffix, optional unit, optional city, state
and ZIP (lines may break between street and city). A house number + words +
city + state + ZIP is accepted without a known suffix, because the tail alone
is strong evidence. UK-style "Flat 3, 12 Baker Street, London NW1 6XE" too.
"""

from __future__ import annotations

import re

from gateway.detection.finding import Finding
from gateway.detection.patterns.base import Recognizer, word_alternation
from gateway.detection.patterns.context import scored, words

STATE_ABBRS = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC PR GU VI AS MP AA AE AP"
).split()
STATE_NAMES = [
    "Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware",
    "Florida", "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky",
    "Louisiana", "Maine", "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi", "Missouri",
    "Montana", "Nebraska", "Nevada", "New Hampshire", "New Jersey", "New Mexico", "New York",
    "North Carolina", "North Dakota", "Ohio", "Oklahoma", "Oregon", "Pennsylvania", "Rhode Island",
    "South Carolina", "South Dakota", "Tennessee", "Texas", "Utah", "Vermont", "Virginia", "Washington",
    "West Virginia", "Wisconsin", "Wyoming", "District of Columbia", "Puerto Rico",
]
SUFFIXES = (
    "street st avenue ave av boulevard blvd road rd lane ln drive dr court ct way place pl terrace ter terr "
    "parkway pkwy highway hwy circle cir square sq trail trl loop alley aly crescent cres close grove gardens "
    "gdns row walk mews expressway expy freeway fwy plaza plz ridge path pike crossing xing heights hts "
    "landing commons cove bend creek glen hollow meadow meadows estates turnpike tpke causeway junction jct "
    "manor mall pass run spur trace village vista haven harbor harbour hill hills park valley wharf quay "
    "parade embankment point pt broadway motorway route rte"
).split()
UNITS = ["apt", "apartment", "suite", "ste", "unit", "fl", "floor", "rm", "room", "bldg", "building", "dept"]

_STATE = (r"(?:" + word_alternation(STATE_ABBRS, ignore_case=False) + "|" + word_alternation(STATE_NAMES)
          + r")(?![A-Za-z])")
_ZIP = r"\d{5}(?:-\d{4})?(?![\d])"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2}(?![A-Za-z0-9])"
_SUFFIX = word_alternation(SUFFIXES) + r"\.?(?![A-Za-z])"
_NUM = r"(?<![\w.,/-])\d{1,6}[A-Za-z]?(?:[-/]\d{1,5}[A-Za-z]?)?"
_WORD = r"[A-Za-z0-9][A-Za-z0-9.'-]*"
_DIR = r"(?:[NSEW]|NE|NW|SE|SW|North|South|East|West)\.?"
_UNIT = (r"(?:,?[ \t]*(?:" + word_alternation(UNITS) + r"\.?[ \t]*#?|\#[ \t]*)"
         r"[ \t]*[A-Za-z0-9-]{1,6}(?![A-Za-z0-9]))")
_PREFIX = r"(?:" + word_alternation(["flat", "apartment", "apt", "unit", "suite", "room"]) + r"[ \t]*[A-Za-z0-9-]{1,5},?[ \t]+)"
_SEP = r"(?:,[ \t]*(?:\r?\n[ \t]*)?|[ \t]*\r?\n[ \t]*|[ \t]+)"
_CITY = r"[A-Z][A-Za-z.'-]*(?:[ \t]+[A-Z][A-Za-z.'-]*){0,3}"
_COUNTRY = r"(?:,?[ \t]+(?:USA|U\.S\.A\.|US|United[ \t]+States|UK|United[ \t]+Kingdom|England|Scotland|Wales|Ireland|Canada))?"
_US_TAIL = (_SEP + r"(?:" + _CITY + r",?[ \t]+)?(?P<addr_state>" + _STATE + r")(?:,?[ \t]+(?P<addr_zip>" + _ZIP + r"))?"
            + _COUNTRY)
_UK_TAIL = _SEP + r"(?:" + _CITY + r",?[ \t]+)?(?P<addr_pc>" + _UK_POSTCODE + r")" + _COUNTRY
_CITY_TAIL = r",[ \t]*(?P<addr_city>" + _CITY + r")" + _COUNTRY + r"(?=[ \t]*(?:[,.;:)\r\n]|$))"
_STREET = (_NUM + r"[ \t]+(?:" + _DIR + r"[ \t]+)?(?:(?:" + _WORD + r"[ \t]+){1,4}" + _SUFFIX + r"|[Bb]roadway(?![A-Za-z]))"
           r"(?:[ \t]+" + _DIR + r"(?![A-Za-z]))?")
_LOOSE = (_NUM + r"[ \t]+(?:" + _WORD + r"[ \t]+){0,3}" + _WORD + r"(?P<addr_lunit>" + _UNIT + r")?"
          + _SEP + _CITY + r",?[ \t]+" + _STATE + r",?[ \t]+(?P<addr_lzip>" + _ZIP + r")")

STREET_REGEX = (
    _PREFIX + r"?(?:" + _STREET + r"(?P<addr_unit>" + _UNIT + r")?(?:" + _US_TAIL + r"|" + _UK_TAIL + r"|" + _CITY_TAIL
    + r")?|" + _LOOSE + r")"
)
PO_BOX_REGEX = (r"(?<![\w])(?:[pP]\.?[ \t]*[oO]\.?[ \t]*(?i:box)|" + word_alternation(["post office box", "pmb"]) + ")[ \t]*#?[ \t]*\d{1,6}(?!\d)"
                r"(?:" + _SEP + _CITY + r",?[ \t]+" + _STATE + r"(?:,?[ \t]+(?P<pobox_zip>" + _ZIP + r"))?)?")
STATE_ZIP_REGEX = r"(?<![\w])" + _STATE + r",?[ \t]+(?P<statezip_zip>" + _ZIP + r")"
# Postal code shapes of many countries: US ZIP+4, PT, PL, SE/CZ/SK/GR, NL, CA, UK, plain 3-6 digits.
POSTCODE = (r"(?:\d{5}-\d{4}|\d{4}-\d{3}|\d{2}-\d{3}|\d{3}[ ]\d{2}|\d{4}[ ]?[A-Z]{2}|[A-Z]\d[A-Z][ ]?\d[A-Z]\d"
            r"|[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2}|\d{3,6})(?![\w-])")
ZIP_KEYED_REGEX = (r"(?<![\w])(?:" + word_alternation(["zip", "zip code", "zipcode", "postal code", "post code", "postcode"]) + ")(?![A-Za-z])[^\n\d]{0,12}?"
                   r"(?<![A-Za-z0-9])(?P<zipkey_v>" + POSTCODE + r")")
# A field named for a place in JSON, YAML, forms and CSV-like lines: `"city": "Rome"`, `Town: Leeds`.
CITY_KEYED_REGEX = (r"(?<![\w.\-])(?:" + word_alternation(["city", "town", "country", "municipality", "village",
                                                          "place of birth", "birthplace", "hometown"])
                    + r""")["']?[ \t]*[:=][ \t]*["']?(?P<citykey_v>[^\W\d_]{2,}(?:(?:[ \-'’]|, )[^\W\d_]+){0,3})"""
                    r"""(?=["'\r\n;]|[ \t]*$|[ \t]*,[ \t]*["\w])""")
_NOT_A_PLACE = frozenset({"null", "none", "nil", "unknown", "n", "na", "true", "false", "string", "required", "optional"})
UK_POSTCODE_REGEX = r"(?<![A-Za-z0-9])" + _UK_POSTCODE
MILITARY_REGEX = (r"(?<![\w])(?:(?:PSC|CMR|Unit)[ \t]+\d{1,5},?[ \t]+Box[ \t]+\d{1,5}"
                  r"|(?:USNS|USNV|USS|USCGC)[ \t]+[^\W\d_][^\W_]*(?:[ \t]+[^\W\d_][^\W_]*){0,2})"
                  + _SEP + r"(?:APO|FPO|DPO)[ \t]+(?:AA|AE|AP)[ \t]+(?P<mil_zip>" + _ZIP + r")")
ZIP_NEAR_REGEX = r"(?<![\w.-])\d{5}(?:-\d{4})?(?!\w|[.-]\d)"

ADDRESS_WORDS = words(["address", "addr", "live", "lives", "living", "lived", "reside", "resides", "residence",
                       "ship", "shipping", "deliver", "delivery", "mail", "mailing", "located", "moved", "home",
                       "billing", "office", "visit", "at"])
POSTCODE_WORDS = words(["postcode", "post code", "postal", "address", "london", "uk", "england", "scotland", "wales",
                        "flat", "road", "street", "lane"])

ZIP_WORDS = words(["zip", "zipcode", "zip code", "postal", "postal code", "postcode", "post code"])

_CAPITAL_AFTER_NUMBER = re.compile(r"[^ \t]+[ \t]+(?:[A-Z0-9]|(?:N|S|E|W)\.?[ \t])")


def _zip_finding(m: re.Match[str], group: str, score: float, recognizer: str, why: str) -> list[Finding]:
    if m.group(group) is None:
        return []
    return [Finding("ZIP_CODE", m.start(group), m.end(group), score, recognizer,
                    explanation=f"{recognizer}: base {score:.2f}; {why}")]


def handle_street(text: str, m: re.Match[str]) -> list[Finding]:
    start, end = m.start(), m.end()
    strong_tail = m.group("addr_zip") or m.group("addr_pc") or m.group("addr_lzip")
    if strong_tail:
        base, note = 0.9, "city/state/postcode tail"
    elif m.group("addr_state") or m.group("addr_unit") or m.group("addr_city"):
        base, note = 0.75, "unit or city tail"
    else:
        base, note = 0.6, "street only"
    finding = scored(text, "STREET_ADDRESS", start, end, base, "street_address", ADDRESS_WORDS, note=note)
    lower_case = not _CAPITAL_AFTER_NUMBER.match(text, start)
    if lower_case and not strong_tail and finding.score <= base:
        return []
    zips = (_zip_finding(m, "addr_zip", 0.9, "street_address", "ZIP of an address")
            or _zip_finding(m, "addr_lzip", 0.9, "street_address", "ZIP of an address"))
    return [finding, *zips]


def handle_po_box(text: str, m: re.Match[str]) -> list[Finding]:
    found = Finding("STREET_ADDRESS", m.start(), m.end(), 0.8, "po_box", explanation="po_box: base 0.80")
    return [found, *_zip_finding(m, "pobox_zip", 0.9, "po_box", "ZIP of an address")]


def handle_military(text: str, m: re.Match[str]) -> list[Finding]:
    """US military mail: "PSC 1234, Box 5678 / APO AE 09001", "USNS Comfort / FPO AA 34055"."""
    found = Finding("STREET_ADDRESS", m.start(), m.end(), 0.9, "military_address",
                    explanation="military_address: base 0.90; APO/FPO/DPO line")
    return [found, *_zip_finding(m, "mil_zip", 0.9, "military_address", "ZIP of an address")]


def handle_state_zip(text: str, m: re.Match[str]) -> list[Finding]:
    return _zip_finding(m, "statezip_zip", 0.75, "zip_code", "after a state")


def handle_zip_keyed(text: str, m: re.Match[str]) -> list[Finding]:
    return _zip_finding(m, "zipkey_v", 0.8, "zip_code", "after a zip/postal keyword")


def handle_city_keyed(text: str, m: re.Match[str]) -> list[Finding]:
    """The value of a field named city/town/country/... is a place."""
    start, end = m.span("citykey_v")
    if text[start:end].casefold() in _NOT_A_PLACE:
        return []
    return [Finding("LOCATION", start, end, 0.75, "city_keyed", explanation="city_keyed: value of a place field")]


def handle_uk_postcode(text: str, m: re.Match[str]) -> list[Finding]:
    value = m.group()
    if not any(ch.isdigit() for ch in value[-3:]):
        return []
    return [scored(text, "ZIP_CODE", m.start(), m.end(), 0.45, "uk_postcode", POSTCODE_WORDS)]


def handle_zip_near(text: str, m: re.Match[str]) -> list[Finding]:
    """Five digits are a ZIP only with a zip/postal word within the context window."""
    found = scored(text, "ZIP_CODE", m.start(), m.end(), 0.4, "zip_code", ZIP_WORDS)
    return [found] if found.score > 0.4 else []


ADDRESS = frozenset({"STREET_ADDRESS", "ZIP_CODE"})
ZIP = frozenset({"ZIP_CODE"})
STREET = Recognizer("street_address", ADDRESS, STREET_REGEX, handle_street, first="[0-9FfAaUuSsRr]")
PO_BOX = Recognizer("po_box", ADDRESS, PO_BOX_REGEX, handle_po_box, first="[PpMm]")
MILITARY = Recognizer("military_address", ADDRESS, MILITARY_REGEX, handle_military, first="[PCUu]")
STATE_ZIP = Recognizer("state_zip", ZIP, STATE_ZIP_REGEX, handle_state_zip, first="[A-Za-z]")
ZIP_KEYED = Recognizer("zip_keyed", ZIP, ZIP_KEYED_REGEX, handle_zip_keyed, first="[ZzPp]")
ZIP_NEAR = Recognizer("zip_near", ZIP, ZIP_NEAR_REGEX, handle_zip_near, first=r"\d")
CITY_KEYED = Recognizer("city_keyed", frozenset({"LOCATION"}), CITY_KEYED_REGEX, handle_city_keyed, first="[CcTtMmVvPpBbHh]")
UK_POSTCODE = Recognizer("uk_postcode", ZIP, UK_POSTCODE_REGEX, handle_uk_postcode, first="[A-Z]")
