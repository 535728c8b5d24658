"""The built-in recognizers, in the order the combined scan tries them.

Order matters where shapes overlap: a validated earlier alternative wins at a
position; a rejected one lets the scanner try the later ones there.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from gateway.detection.finding import Finding
from gateway.detection.patterns import address, dates, intl_address, phone, validators
from gateway.detection.patterns.base import Recognizer
from gateway.detection.patterns.context import nearby, scored, words


def _one(entity: str, base: float, recognizer: str, boost=None, damp=None, group: str | None = None):
    """A handler emitting one finding over the match (or over `group`)."""

    def handle(text: str, m: re.Match[str]) -> list[Finding]:
        start, end = (m.start(group), m.end(group)) if group else (m.start(), m.end())
        return [scored(text, entity, start, end, base, recognizer, boost, damp)]

    return handle


# --- email -----------------------------------------------------------------
# Email and domain regexes open with a possessive lookahead (the local part up to
# "@", the first label up to "."): one pass over a word rejects it, where the
# backtracking body would retry every shorter prefix. `@` and `.` are outside
# the scanned classes, so the lookahead only ever rejects what the body would.
_URL_USER_BEFORE = re.compile(r"://[^\s/@:]*:$")


def _handle_email(text: str, m: re.Match[str]) -> list[Finding]:
    """`user:password@host` inside a URL is a credential, left to the secrets layer."""
    if text[m.start() - 1:m.start()] == ":" and _URL_USER_BEFORE.search(text, max(0, m.start() - 200), m.start()):
        return []
    return [Finding("EMAIL_ADDRESS", m.start(), m.end(), 0.9, "email", explanation="email: base 0.90")]


EMAIL = Recognizer(
    "email",
    frozenset({"EMAIL_ADDRESS"}),
    r"(?<![\w.%+-])(?=[A-Za-z0-9._%+-]{1,64}+@)[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,24}(?![\w-])",
    _handle_email,
    first="[A-Za-z0-9]",
)

# --- url -------------------------------------------------------------------
_URL_TRAILING = ".,;:!?)]}'\""
# RFC 2606/6761 names and localhost never identify anyone. A private-use name (`.internal`, `.local`,
# `.corp`, `.lan`, `.home.arpa`) does: it is the company's own network, a host or bucket it keeps private.
_RESERVED_HOST = re.compile(r"(?:^|\.)(?:example(?:\.com|\.net|\.org)?|test|invalid|localhost)$", re.I)
_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s]*:[^/@\s]*@", re.I)


def _handle_url(text: str, m: re.Match[str]) -> list[Finding]:
    value = m.group().rstrip(_URL_TRAILING)
    if _CREDENTIALS.match(value):
        return []
    start, end = m.start(), m.start() + len(value)
    try:
        host = urlsplit(value if "://" in value else "http://" + value).hostname or ""
    except ValueError:
        host = ""
    if _RESERVED_HOST.search(host):
        found = [Finding("URL", start, end, 0.3, "url", explanation="url: base 0.30; reserved or local host")]
    else:
        found = [Finding("URL", start, end, 0.5, "url", explanation="url: base 0.50; as a bare domain")]
    if host and (validators.ipv4(host) or validators.ipv6(host)):
        at = value.find(host)
        if at >= 0:
            found.append(Finding("IP_ADDRESS", start + at, start + at + len(host), 0.6, "url",
                                 explanation="url: IP address host; base 0.60"))
    return found


URL = Recognizer(
    "url",
    frozenset({"URL", "IP_ADDRESS"}),
    r"(?<![\w.])(?:[hH](?i:ttps?://)|[fF](?i:tp://)|[wW](?i:ss?://|ww\.)|[sS]3://|[gG](?i:s://))[^\s<>\"'`\[\]{}|\\^]+",
    _handle_url,
    first="[HhFfWwSsGg]",
    rescan=True,
)

# --- network ---------------------------------------------------------------
_NET_BOOST = words(["ip", "ip address", "host", "addr", "address", "server", "client", "remote", "from", "src",
                    "dst", "source", "destination", "mac", "device", "gateway", "peer", "origin"])
_NET_DAMP = words(["version", "ver", "v", "release", "build", "oid"])

MAC = Recognizer(
    "mac_address",
    frozenset({"MAC_ADDRESS"}),
    r"(?<![\w:.-])(?:[0-9A-Fa-f]{2}(?P<mac_sep>[:-])(?:[0-9A-Fa-f]{2}(?P=mac_sep)){4}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![\w:-]|\.\w)",
    _one("MAC_ADDRESS", 0.6, "mac_address", _NET_BOOST),
    first="[0-9A-Fa-f]",
)


def _handle_ipv6(text: str, m: re.Match[str]) -> list[Finding]:
    value = m.group()
    if not validators.ipv6(value):
        return []
    hex_digits = sum(ch not in ":." for ch in value)
    base = 0.6 if hex_digits >= 6 else 0.35
    return [scored(text, "IP_ADDRESS", m.start(), m.end(), base, "ipv6", _NET_BOOST)]


IPV6 = Recognizer(
    "ipv6",
    frozenset({"IP_ADDRESS"}),
    r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:])",
    _handle_ipv6,
    first="[0-9A-Fa-f:]",
)


def _handle_ipv4(text: str, m: re.Match[str]) -> list[Finding]:
    if not validators.ipv4(m.group()):
        return []
    return [scored(text, "IP_ADDRESS", m.start(), m.end(), 0.6, "ipv4", _NET_BOOST, _NET_DAMP)]


IPV4 = Recognizer(
    "ipv4",
    frozenset({"IP_ADDRESS"}),
    r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)",
    _handle_ipv4,
    first=r"\d",
)

# --- banking ---------------------------------------------------------------
_ALNUM = re.compile(r"[A-Za-z0-9]")


def _handle_iban(text: str, m: re.Match[str]) -> list[Finding]:
    positions = [m.start() + i for i, ch in enumerate(m.group()) if ch != " "]
    expected = validators.IBAN_LENGTHS.get(m.group()[:2])
    lengths = [expected] if expected else range(len(positions), 14, -1)
    for length in lengths:
        if length > len(positions):
            continue
        end = positions[length - 1] + 1
        if end < len(text) and _ALNUM.match(text, end):
            continue
        if validators.iban(text[m.start():end]):
            return [Finding("IBAN_CODE", m.start(), end, 0.9, "iban", explanation="iban: base 0.90; mod-97 ok")]
    return []


IBAN = Recognizer(
    "iban",
    frozenset({"IBAN_CODE"}),
    r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?![A-Za-z0-9])",
    _handle_iban,
    first="[A-Z]",
)

_CARD_BOOST = words(["card", "credit", "debit", "visa", "mastercard", "amex", "american express", "discover",
                     "cc", "pan", "payment", "cardholder", "charge", "charged"])
_CARD_DAMP = words(["order", "invoice", "tracking", "shipment", "ref", "reference", "transaction id", "serial",
                    "isbn", "sku", "confirmation", "po"])


def _handle_card(text: str, m: re.Match[str]) -> list[Finding]:
    digits = [m.start() + i for i, ch in enumerate(m.group()) if ch.isdigit()]
    ends = [i for i in range(len(digits)) if i == len(digits) - 1 or digits[i + 1] != digits[i] + 1]
    for last in reversed(ends):
        count = last + 1
        if 12 <= count <= 19 and validators.credit_card(text[m.start():digits[last] + 1]):
            if count > 12:
                return [scored(text, "CREDIT_CARD", m.start(), digits[last] + 1, 0.9, "credit_card",
                               _CARD_BOOST, _CARD_DAMP, "luhn ok")]
            short = scored(text, "CREDIT_CARD", m.start(), digits[last] + 1, 0.3, "credit_card",
                           _CARD_BOOST, _CARD_DAMP, "12-digit Maestro, luhn ok")
            if short.score > 0.3:
                return [short]
    return []


CARD = Recognizer(
    "credit_card",
    frozenset({"CREDIT_CARD"}),
    r"(?<![\w.-])\d(?:[ -]?\d){11,18}(?!\d)",
    _handle_card,
    first=r"\d",
)

# --- national ids ----------------------------------------------------------
_SSN_BOOST = words(["ssn", "ssns", "social security", "social security number", "social", "ss#", "ss #",
                    "ssa", "tin", "taxpayer"])
_ITIN_BOOST = words(["itin", "tin", "taxpayer", "tax id", "irs"])
_ID_DAMP = words(["order", "invoice", "tracking", "ref", "reference", "ticket", "case", "serial", "part",
                  "sku", "isbn", "build"])
_ROUTING = words(["routing", "aba", "rtn", "routing number", "transit", "bank routing", "wire"])
_PASSPORT = words(["passport", "passport no", "passport number"])


def _handle_ssn(text: str, m: re.Match[str]) -> list[Finding]:
    value = m.group()
    dashed = m.group("ssn_sep") == "-"
    if validators.ssn(value):
        return [scored(text, "US_SSN", m.start(), m.end(), 0.6 if dashed else 0.4, "us_ssn", _SSN_BOOST, _ID_DAMP,
                       "ssn rules ok")]
    if validators.itin(value):
        return [scored(text, "US_ITIN", m.start(), m.end(), 0.5, "us_itin", _ITIN_BOOST, _ID_DAMP, "itin rules ok")]
    return []


SSN = Recognizer(
    "us_ssn",
    frozenset({"US_SSN", "US_ITIN"}),
    r"(?<![\w-])\d{3}(?P<ssn_sep>[- ])\d{2}(?P=ssn_sep)\d{4}(?![\w]|-\d)",
    _handle_ssn,
    first=r"\d",
)


def _handle_nine_digits(text: str, m: re.Match[str]) -> list[Finding]:
    """Nine bare digits mean nothing alone: the context word picks the type."""
    start, end, value = m.start(), m.end(), m.group()
    if nearby(text, start, end, _ROUTING) and validators.aba(value):
        return [scored(text, "US_BANK_ROUTING", start, end, 0.5, "aba_routing", _ROUTING, note="aba checksum ok")]
    if nearby(text, start, end, _SSN_BOOST) and validators.ssn(value):
        return [scored(text, "US_SSN", start, end, 0.4, "us_ssn", _SSN_BOOST, note="unseparated, ssn rules ok")]
    if nearby(text, start, end, _ITIN_BOOST) and validators.itin(value):
        return [scored(text, "US_ITIN", start, end, 0.4, "us_itin", _ITIN_BOOST, note="unseparated, itin rules ok")]
    if nearby(text, start, end, _PASSPORT):
        return [scored(text, "US_PASSPORT", start, end, 0.4, "passport", _PASSPORT)]
    return []


NINE_DIGITS = Recognizer(
    "nine_digits",
    frozenset({"US_SSN", "US_ITIN", "US_BANK_ROUTING", "US_PASSPORT"}),
    r"(?<![\w.-])\d{9}(?!\w|[.-]\d)",
    _handle_nine_digits,
    first=r"\d",
)

_FILLER = r"[^\n\d]{0,24}?(?<![A-Za-z0-9])"
_US_PASSPORT = re.compile(r"\d{9}|[A-Z]\d{8}")


def _handle_passport(text: str, m: re.Match[str]) -> list[Finding]:
    value = m.group("passport_v")
    entity = "US_PASSPORT" if _US_PASSPORT.fullmatch(value) else "PASSPORT"
    start, end = m.start("passport_v"), m.end("passport_v")
    return [Finding(entity, start, end, 0.75, "passport", explanation="passport: base 0.75; keyword 'passport'")]


PASSPORT = Recognizer(
    "passport",
    frozenset({"US_PASSPORT", "PASSPORT"}),
    r"(?<![\w])[pP](?i:assport)" + _FILLER + r"(?P<passport_v>(?=[A-Z]{0,3}\d)[A-Z0-9]{6,9})(?![\w-])",
    _handle_passport,
    first="[Pp]",
)

DRIVER_LICENSE = Recognizer(
    "driver_license",
    frozenset({"US_DRIVER_LICENSE"}),
    r"(?<![\w])(?:[dD](?i:river'?s?|riving)[ \t]+(?i:licen[cs]e|lic\.?)|DL|D/L|DLN)(?![A-Za-z])" + _FILLER
    + r"(?P<dl_v>(?=[A-Z-]{0,4}\d)[A-Z0-9][A-Z0-9-]{3,18}(?:[ ]\d{3,4}){0,3})(?![\w-])",
    _one("US_DRIVER_LICENSE", 0.75, "driver_license", group="dl_v"),
    first="[DdL]",
)

MEDICAL_RECORD = Recognizer(
    "medical_record",
    frozenset({"MEDICAL_RECORD_NUMBER"}),
    r"(?<![\w])(?:MRN|[mM](?i:edical[ \t]+record(?:[ \t]+(?:number|no\.?|#))?)|[pP](?i:atient[ \t]+id)"
    r"|[cC](?i:hart[ \t]+(?:number|no\.?)))"
    r"(?![A-Za-z])" + _FILLER + r"(?P<mrn_v>(?=[A-Z-]{0,4}\d)[A-Z0-9][A-Z0-9-]{4,15})(?![\w-])",
    _one("MEDICAL_RECORD_NUMBER", 0.7, "medical_record", group="mrn_v"),
    first="[MmPpCc]",
)

# --- age -------------------------------------------------------------------


def _handle_age(text: str, m: re.Match[str]) -> list[Finding]:
    """"42 years old", "aged 42", "42 y/o", "just turned 42.", "when she was 42"."""
    for group in ("age_n1", "age_n2", "age_n3", "age_n4", "age_n5"):
        if m.group(group):
            number = int(m.group(group))
            break
    if not 0 < number < 125:
        return []
    if group in ("age_n4", "age_n5"):
        return [Finding("AGE", m.start(group), m.end(group), 0.6, "age",
                        explanation="age: base 0.60; number after 'turned' or 'when ... was'")]
    return [Finding("AGE", m.start(), m.end(), 0.6, "age", explanation="age: base 0.60")]


AGE = Recognizer(
    "age",
    frozenset({"AGE"}),
    r"(?<![\w.])(?:(?P<age_n1>\d{1,3})[ -]?(?i:years?|yrs?)[ -](?i:old)|(?P<age_n3>\d{1,3})[ ]?(?i:y/o|yo))(?![\w])"
    r"|(?<![\w])[aA](?i:ged?)[ \t]*(?::|=|[ \t]of)?[ \t]*(?P<age_n2>\d{1,3})(?![\d.])"
    r"|(?<![\w])[tT](?i:urn(?:ed|s|ing)?)[ \t]+(?P<age_n4>\d{1,3})(?=[ \t]*(?:[.,;!?)]|$|(?i:this|next|last|today|in|on)\b))"
    r"|(?<![\w])[wW](?i:hen)[ \t]+(?i:he|she|i|they|we|you)[ \t]+(?i:was|were|is|are|turned)[ \t]+"
    r"(?P<age_n5>\d{1,3})(?![\w:/-]|\.\d|[ \t]+(?i:min|minutes?|hours?|h|sec|seconds?|days?|weeks?|months?|km|"
    r"miles?|feet|ft|m|pm|am|percent|o'clock)\b|[ \t]*%)",
    _handle_age,
    first="[0-9AaTtWw]",
)


# --- bank accounts, crypto wallets, DEA numbers ----------------------------
_ACCOUNT = words(["account", "account number", "acct", "acct no", "a/c", "bank account", "checking", "savings",
                  "account #", "acct #"])

BANK_ACCOUNT = Recognizer(
    "bank_account",
    frozenset({"US_BANK_NUMBER"}),
    r"(?<![\w])(?:[aA](?i:ccount|cct)|[cC](?i:hecking)|[sS](?i:avings))(?![A-Za-z])[^\n\d]{0,24}?(?<![A-Za-z0-9-])"
    r"(?P<acct_v>\d{8,17})(?![\w-])",
    _one("US_BANK_NUMBER", 0.6, "bank_account", _ACCOUNT, group="acct_v"),
    first="[AaCcSs]",
)


def _handle_bitcoin(text: str, m: re.Match[str]) -> list[Finding]:
    if not validators.bitcoin(m.group()):
        return []
    return [Finding("CRYPTO", m.start(), m.end(), 0.9, "bitcoin", explanation="bitcoin: base 0.90; checksum ok")]


BITCOIN = Recognizer(
    "bitcoin",
    frozenset({"CRYPTO"}),
    r"(?<![\w])(?:[bB][cC]1[ac-hj-np-zAC-HJ-NP-Z02-9]{25,87}|[13][1-9A-HJ-NP-Za-km-z]{25,34})(?![\w])",
    _handle_bitcoin,
    first="[13bB]",
)

_DEA = words(["dea", "dea number", "dea#", "prescriber", "registration", "license", "licence", "md", "npi"])


def _handle_dea(text: str, m: re.Match[str]) -> list[Finding]:
    if not validators.dea(m.group()):
        return []
    return [scored(text, "MEDICAL_LICENSE", m.start(), m.end(), 0.5, "dea_number", _DEA, note="dea checksum ok")]


DEA = Recognizer(
    "dea_number",
    frozenset({"MEDICAL_LICENSE"}),
    r"(?<![\w])[ABCDEFGHJKLMPRSTUX][A-Z9]\d{7}(?![\w])",
    _handle_dea,
    first="[ABCDEFGHJKLMPRSTUX]",
)


# --- bare domain names ------------------------------------------------------
_TLDS = ("com net org edu gov mil int io co ai app dev info biz me us uk de fr es it nl be ch at se no dk fi "
         "pl cz pt ie ca au nz jp cn in br mx ru za kr tw sg hk eu online site tech cloud xyz").split()
_DOMAIN_DAMP = words(["file", "filename", "module", "import", "package", "class", "method", "function"])

DOMAIN = Recognizer(
    "domain",
    frozenset({"URL"}),
    r"(?<![\w.@/-])(?=[A-Za-z0-9-]{1,63}+\.[A-Za-z0-9])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?i:" + "|".join(_TLDS) + r")(?![\w@-]|\.\w)",
    _one("URL", 0.5, "domain", None, _DOMAIN_DAMP),
    first="[A-Za-z0-9]",
)


BUILT_IN: list[Recognizer] = [
    EMAIL,
    URL,
    DOMAIN,
    MAC,
    IPV6,
    IPV4,
    IBAN,
    PASSPORT,
    DRIVER_LICENSE,
    MEDICAL_RECORD,
    BANK_ACCOUNT,
    BITCOIN,
    DEA,
    address.ZIP_KEYED,
    address.CITY_KEYED,
    address.PO_BOX,
    address.MILITARY,
    CARD,
    SSN,
    NINE_DIGITS,
    *dates.RECOGNIZERS,
    AGE,
    phone.RECOGNIZER,
    intl_address.RECOGNIZER,
    address.STREET,
    address.STATE_ZIP,
    address.UK_POSTCODE,
    address.ZIP_NEAR,
]
