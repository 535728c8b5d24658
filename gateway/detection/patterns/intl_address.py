"""Street addresses outside the US shape: "Favoritenstrasse 36", "8 Rue Hedi Labidi",
"ul. Nad Jarem 22, Gdańsk", "Rua Arapiraca 1943 Apt. 559\\nTeixeira de Freitas\\nBrazil 35172".

A street is a street-type word (in the languages of Europe and the Americas)
next to capitalised name words and a house number, in either order: a type
before the name ("Rue", "Via", "Calle", "ul."), a type after it ("Pernilles vei",
"Luige tee") or fused to it ("Alingsåsvägen", "Schaarsteinweg"). Without a type
word, "number + capitalised words + number" ("324 Helmstok 174") is accepted
only with a unit, a country/postcode tail or an address word ("address",
"lives", "ship to") nearby.

The address then runs on through a unit ("Apt. 260") and up to four tail items
on the same or following lines: a city (capitalised words that end the line or
precede another tail item), a region code, a country, a postal code. Each line
becomes its own finding, so layout between lines is not redacted.
"""

from __future__ import annotations

import re

from gateway.detection.finding import Finding
from gateway.detection.patterns.address import ADDRESS_WORDS, POSTCODE, STREET_REGEX, SUFFIXES, UNITS
from gateway.detection.patterns.base import Recognizer, word_alternation
from gateway.detection.patterns.context import nearby, words

# Type words written before the street name.
PREFIX_TYPES = (
    "rue rua via viale vicolo piazza piazzale corso largo calle avenida avda avinguda paseo plaza camino carretera "
    "carrer travessa praça praca estrada alameda rodovia boulevard chemin place allée allee impasse quai cours "
    "route ulica aleja aleje plac strada calea bulevardul aleea odos akti leoforos avenue"
).split()
# Abbreviated prefixes, written with a dot ("ul. Nad Jarem", "Av. Paulista").
PREFIX_ABBRS = "ul al pl av bd str os tv pç".split()
# Type words written after the name, as a separate word: after a house number
# (English "12 Baker Street") or before one (the continental "Pernilles vei 115").
AFTER_NAME = (
    "straße strasse str gasse weg platz allee ring damm ufer chaussee steig pfad markt vei veien veg vegen vej gade "
    "väg vägen gata gatan gränd tie katu kuja tee tänav põik puiestee utca út tér rakpart sor straat laan plein "
    "kade gracht singel dreef"
).split()
CAPITALISED_AFTER_NAME = "Straße Strasse Gasse Weg Platz Allee Damm Ufer Chaussee Straat Laan Plein Gracht".split()
SUFFIX_TYPES = sorted(set(SUFFIXES) | set(AFTER_NAME))
# Endings of one-word street names ("Favoritenstrasse", "Ringvej", "Jäämerentie").
FUSED = (
    "straße strasse gasse weg platz allee damm ufer chaussee steig stieg pfad markt veien vegen vei veg vej "
    "gade vägen gatan gata väg katu tie kuja tänav straat laan plein gracht utca"
).split()
COUNTRIES = [
    "Afghanistan", "Albania", "Algeria", "Andorra", "Angola", "Argentina", "Armenia", "Australia", "Austria",
    "Azerbaijan", "Bahamas", "Bahrain", "Bangladesh", "Barbados", "Belarus", "Belgium", "Belize", "Benin",
    "Bhutan", "Bolivia", "Bosnia and Herzegovina", "Botswana", "Brazil", "Brunei", "Bulgaria", "Burkina Faso",
    "Burundi", "Cambodia", "Cameroon", "Canada", "Cape Verde", "Chad", "Chile", "China", "Colombia", "Comoros",
    "Congo", "Costa Rica", "Croatia", "Cuba", "Cyprus", "Czech Republic", "Czechia", "Denmark", "Djibouti",
    "Dominica", "Dominican Republic", "Ecuador", "Egypt", "El Salvador", "England", "Eritrea", "Estonia",
    "Eswatini", "Ethiopia", "Fiji", "Finland", "France", "Gabon", "Gambia", "Georgia", "Germany", "Ghana",
    "Greece", "Greenland", "Grenada", "Guatemala", "Guinea", "Guyana", "Haiti", "Honduras", "Hong Kong",
    "Hungary", "Iceland", "India", "Indonesia", "Iran", "Iraq", "Ireland", "Israel", "Italy", "Ivory Coast",
    "Jamaica", "Japan", "Jordan", "Kazakhstan", "Kenya", "Kosovo", "Kuwait", "Kyrgyzstan", "Laos", "Latvia",
    "Lebanon", "Lesotho", "Liberia", "Libya", "Liechtenstein", "Lithuania", "Luxembourg", "Madagascar",
    "Malawi", "Malaysia", "Maldives", "Mali", "Malta", "Mauritania", "Mauritius", "Mexico", "Moldova", "Monaco",
    "Mongolia", "Montenegro", "Morocco", "Mozambique", "Myanmar", "Namibia", "Nepal", "Netherlands",
    "New Zealand", "Nicaragua", "Niger", "Nigeria", "North Macedonia", "Northern Ireland", "Norway", "Oman",
    "Pakistan", "Panama", "Papua New Guinea", "Paraguay", "Peru", "Philippines", "Poland", "Portugal",
    "Puerto Rico", "Qatar", "Romania", "Russia", "Rwanda", "San Marino", "Saudi Arabia", "Scotland", "Senegal",
    "Serbia", "Seychelles", "Sierra Leone", "Singapore", "Slovakia", "Slovenia", "Somalia", "South Africa",
    "South Korea", "Korea", "South Sudan", "Spain", "Sri Lanka", "Sudan", "Suriname", "Sweden", "Switzerland",
    "Syria", "Taiwan", "Tajikistan", "Tanzania", "Thailand", "Togo", "Trinidad and Tobago", "Tunisia", "Turkey",
    "Türkiye", "Turkmenistan", "Uganda", "Ukraine", "United Arab Emirates", "United Kingdom", "United States",
    "United States of America", "Uruguay", "Uzbekistan", "Venezuela", "Vietnam", "Wales", "Yemen", "Zambia",
    "Zimbabwe", "USA", "UK", "UAE",
]

_L = r"[^\W\d_]"
_CAP = r"[^\W\d_a-z]"
_CAPWORD = _CAP + r"[^\W_]*(?:['’-][^\W_]+)*\.?"
_LINK = r"(?:de|del|della|delle|di|do|da|dos|das|du|des|la|le|les|van|von|der|den|ob|im|am|an|auf|bei|sur|y|e)"
_NAME = _CAPWORD + r"(?:[ \t]+(?:" + _LINK + r"[ \t]+)*(?:[dl]['’])?" + _CAPWORD + r"){0,4}"
_HOUSE = r"\d{1,5}[A-Za-z]?(?:[-/]\d{1,4}[A-Za-z]?)?(?![\w-])"
_NUM = r"(?<![\w.,/-])\d{1,6}[A-Za-z]?(?![\w-])"
_PREFIX = (r"(?:" + word_alternation([w.capitalize() for w in PREFIX_TYPES] + [w.upper() for w in PREFIX_TYPES],
                                      ignore_case=False)
           + r"|" + word_alternation(PREFIX_ABBRS) + r"\.)(?![^\W_])")
_ANY_PREFIX = r"(?:" + word_alternation(PREFIX_TYPES) + r"|" + word_alternation(PREFIX_ABBRS) + r"\.)(?![^\W_])"
_AFTER_PREFIX = r"[ \t]+(?:" + _LINK + r"[ \t]+)*(?:[dl]['’])?" + _NAME
_SUFFIX = word_alternation(SUFFIX_TYPES) + r"\.?(?![^\W_])"
# Lower-case ("Luige tee"), or capitalised where the word is not also English ("Langenhorner Chaussee").
_CONTINENTAL = (r"(?:" + word_alternation(AFTER_NAME, ignore_case=False) + r"|"
                + word_alternation(CAPITALISED_AFTER_NAME, ignore_case=False) + r")\.?(?![^\W_])")
_FUSED = _CAP + r"[^\W\d_]{2,}(?:-[^\W\d_]+)*-?(?:" + word_alternation(FUSED) + r")(?![^\W_])"
_UNIT = (r"(?:,?[ \t]*(?:\n[ \t]*(?:[^\w\s]{1,3}[ \t]*)?)?(?P<intl_unit>" + word_alternation(UNITS + ["flat"])
         + r"\.?[ \t]*#?[ \t]*[A-Za-z0-9-]{1,6}(?![\w-])))")

_STREET = (
    r"(?:" + _NUM + r"[ \t]+)?(?:"
    + _PREFIX + _AFTER_PREFIX + r"[ \t]+" + _HOUSE
    + r"|(?:" + _NAME + r"[ \t]+)?" + _FUSED + r"[ \t]+" + _HOUSE
    + r"|" + _NAME + r"[ \t]+" + _CONTINENTAL + r"[ \t]+" + _HOUSE
    + r"|" + _NUM + r"[ \t]+(?:" + _ANY_PREFIX + _AFTER_PREFIX + r"|" + _NAME + r"[ \t]+" + _SUFFIX
    + r"|(?:" + _NAME + r"[ \t]+)?" + _FUSED + r")"
    + r"|(?P<intl_bare>" + _NUM + r"[ \t]+" + _NAME + r"[ \t]+" + _HOUSE + r"))"
)

_POSTCODE = POSTCODE
_COUNTRY = r"(?:" + word_alternation(COUNTRIES) + r")(?![^\W_])(?:[ \t]*\([A-Z][a-z]+\))?"
# A region code ends its line or precedes a postcode ("CA 94110"), unlike "DOB Aug 19".
_REGION = r"[A-Z]{2,3}(?=[ \t]*(?:[,\n]|$)|[ \t]+" + _POSTCODE + r")"
_KNOWN = r"(?:" + _POSTCODE + r"|" + _REGION + r"|" + _COUNTRY + r")"
_LINE_END = r"(?=[ \t]*(?:[,;)\n]|\.?[ \t]*$|\.[ \t]|\?|!)|[ \t]+" + _KNOWN + r")"
_CITY = _CAPWORD + r"(?:[ \t]+(?:" + _LINK + r"[ \t]+)*" + _CAPWORD + r"){0,3}" + _LINE_END
_NEWLINE = r"\n[ \t]*(?:[^\w\s]{1,3}[ \t]*)?(?:\n[ \t]*(?:[^\w\s]{1,3}[ \t]*)?)?"
_SEP = r"(?:[ \t]*,[ \t]*(?:" + _NEWLINE + r")?|[ \t]*" + _NEWLINE + r"|[ \t]+)"
_TAIL = r"(?P<intl_tail>(?:" + _SEP + r"(?:" + _POSTCODE + r"|" + _COUNTRY + r"|" + _REGION + r"|" + _CITY + r")){1,4})"

# Every form holds a digit: a cheap scan to the next digit on the line rejects most word starts
# before the name words are parsed. The scan is possessive (a run of non-digits is never
# given back, so it costs one pass), and a lower-case start can only be an abbreviated
# type ("ul.", "av."), checked first.
_GATE = (r"(?=\d|" + _CAP + r"[^\d\n]{0,47}+\d|(?=(?:" + word_alternation(PREFIX_ABBRS) + r")\.)[^\d\n]{1,48}+\d)")
REGEX = r"(?<![\w.-])" + _GATE + _STREET + _UNIT + r"?" + _TAIL + r"?"

_US_STREET = re.compile(STREET_REGEX)
_TAIL_STRONG = re.compile(_SEP + r"(?:" + _POSTCODE + r"|" + _COUNTRY + r")", re.MULTILINE)
_EDGES = " \t,;"
# Words that make "number + name + number" an address without a unit or tail ("at" is not enough).
BARE_WORDS = words(["address", "addr", "lives", "live", "living", "reside", "resides", "residence", "ship",
                    "shipping", "deliver", "delivery", "mailing", "billing", "located", "moved"])


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """text[start:end] cut at line breaks, each piece trimmed of blanks, commas, a final dot and quote markers."""
    pieces = []
    pos = start
    while pos < end:
        stop = text.find("\n", pos, end)
        stop = end if stop < 0 else stop
        s, e = pos, stop
        while s < e and (text[s] in _EDGES or not (text[s].isalnum())):
            s += 1
        while e > s and text[e - 1] in _EDGES + ".":
            e -= 1
        if e > s:
            pieces.append((s, e))
        pos = stop + 1
    return pieces


def handle(text: str, m: re.Match[str]) -> list[Finding]:
    start, end = m.start(), m.end()
    tail, unit = m.group("intl_tail"), m.group("intl_unit")
    us = _US_STREET.match(text, start)
    if us is not None and us.end() >= end:
        return []
    strong_tail = bool(tail) and _TAIL_STRONG.search(tail) is not None
    context = nearby(text, start, end, ADDRESS_WORDS)
    if m.group("intl_bare") and not (unit or strong_tail or nearby(text, start, end, BARE_WORDS)):
        return []
    if strong_tail:
        score, note = 0.85, "postcode or country tail"
    elif unit or tail:
        score, note = 0.75, "unit or city tail"
    else:
        score, note = 0.6, "street only"
    if context:
        score = min(1.0, score + 0.15)
        note += f"; context '{context}' +0.15"
    why = f"intl_address: base {score:.2f}; {note}"
    return [Finding("STREET_ADDRESS", s, e, score, "intl_address", explanation=why) for s, e in _lines(text, start, end)]


# The full regex is too long for hyperscan; the street alone starts every match of it.
RECOGNIZER = Recognizer("intl_address", frozenset({"STREET_ADDRESS"}), REGEX, handle,
                        first=r"(?:[^\W_a-z]|[uapbsot])", prefilter=_STREET)
