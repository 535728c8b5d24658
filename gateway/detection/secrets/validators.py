"""Structural checks for formats a regex alone would over-match."""

from __future__ import annotations

import binascii
import json
import re

from gateway.detection.secrets.rule import Validator, Verdict, secret_span
from gateway.detection.secrets.values import (
    is_placeholder,
    looks_like_password,
    looks_random,
)

_URLSAFE = str.maketrans("-_", "+/")


def b64decode_loose(data: str) -> bytes | None:
    """Decode standard or URL-safe base64 with or without padding; None if invalid.

    `base64.b64decode(validate=True)` without its Python layers (this runs on
    every base64-looking run of a text).
    """
    stripped = data.rstrip("=")
    if len(stripped) % 4 == 1:
        return None
    padded = stripped + "=" * (-len(stripped) % 4)
    if "-" in padded or "_" in padded:
        padded = padded.translate(_URLSAFE)
    try:
        return binascii.a2b_base64(padded.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError):
        return None


def _value(match: re.Match[str]) -> str:
    start, end = secret_span(match)
    return match.string[start:end]


def jwt_header_has_alg(match: re.Match[str]) -> Verdict | None:
    """A JWT's first part decodes to a JSON object naming its algorithm."""
    header = _value(match).split(".", 1)[0]
    raw = b64decode_loose(header)
    if raw is None:
        return None
    try:
        decoded = json.loads(raw.decode("utf-8", "replace"))
    except ValueError:
        return None
    if isinstance(decoded, dict) and "alg" in decoded:
        return Verdict(0.9)
    return None


def basic_credentials(match: re.Match[str]) -> Verdict | None:
    """`Basic <b64>` must decode to printable `user:password`."""
    raw = b64decode_loose(_value(match))
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    user, sep, password = text.partition(":")
    if not sep or not password or not text.isprintable() or is_placeholder(password):
        return None
    return Verdict(0.9)


def random_value(match: re.Match[str]) -> Verdict | None:
    """Accept only machine-generated-looking values."""
    return Verdict(0.8) if looks_random(_value(match)) else None


def password_value(match: re.Match[str]) -> Verdict | None:
    """Accept a chosen password that is not a placeholder."""
    return Verdict(0.85) if looks_like_password(_value(match)) else None


_SCHEME_BEFORE = re.compile(r"(?<![\w+.\-])(?:jdbc:)?([A-Za-z][A-Za-z0-9+.\-]{0,20})$")


def _scheme(match: re.Match[str]) -> str | None:
    """The URL scheme right before a match that starts at `://`, lower-cased."""
    start = match.start()
    head = _SCHEME_BEFORE.search(match.string, max(0, start - 30), start)
    return head.group(1).lower() if head else None


def url_scheme(schemes: tuple[str, ...]) -> Validator:
    """Accept a match starting at `://` only after one of `schemes`."""

    def check(match: re.Match[str]) -> Verdict | None:
        return Verdict(0.9) if _scheme(match) in schemes else None

    return check


def url_password(schemes: tuple[str, ...] | None = None) -> Validator:
    """The password in `scheme://user:password@`: any non-placeholder literal."""

    def check(match: re.Match[str]) -> Verdict | None:
        scheme = _scheme(match)
        if scheme is None or (schemes is not None and scheme not in schemes):
            return None
        value = _value(match)
        if is_placeholder(value.replace("%40", "@")) or value.startswith(("$", "%(", "{")):
            return None
        return Verdict(0.9)

    return check


def literal_password(match: re.Match[str]) -> Verdict | None:
    """The value of a slot that only holds a password (netrc, `psexec -p`, a constructor's argument).

    Any literal counts but a placeholder or a reference filled in later: `$VAR`,
    `%VAR%` (batch), `{0}` / `${x}` (format strings), `#{x}` (Ruby), or an escaped quote.
    """
    value = _value(match)
    if not value or is_placeholder(value) or value.startswith(("$", "%", "{", "#{", "\\")):
        return None
    return Verdict(0.9)


# The other keys of an ODBC / ADO.NET / JDBC-style connection string.
_CONNECTION_KEYS = re.compile(
    r"(?i)(?:^|[;\"'\s])(?:user[ \t]?id|uid|user(?:name)?|server|data[ \t]source|database|initial[ \t]catalog"
    r"|host|port|provider|driver|dsn|trusted_connection|encrypt)[ \t]*=[^;\n]*;"
)


def connection_string_password(match: re.Match[str]) -> Verdict | None:
    """`Password=` inside a `key=value;` connection string: any literal, even `#gets0m3` or a word.

    The line must hold another connection-string key (`User ID=…;`, `Server=…;`);
    a lone `password=x` is left to the keyword rules, which judge its shape.
    """
    text = match.string
    line_start = text.rfind("\n", 0, match.start()) + 1
    line_end = text.find("\n", match.end())
    line = text[line_start:line_end if line_end != -1 else len(text)]
    if _CONNECTION_KEYS.search(line) is None:
        return None
    return literal_password(match)


# A PyPI token is "pypi-" and a base64 macaroon: a location, a 36-character
# identifier and a 32-byte signature take at least 85 bytes, 114 characters.
PYPI_MIN_LENGTH = len("pypi-") + 114


def pypi_token_complete(value: str) -> bool:
    """Long enough to hold the macaroon's signature: shorter is a truncated token."""
    return len(value) >= PYPI_MIN_LENGTH


def pypi_token(match: re.Match[str]) -> Verdict | None:
    return Verdict(0.95) if pypi_token_complete(_value(match)) else None


# Base64 of an 18- or 19-digit snowflake id (every Discord account since 2016):
# the first part's length in the layout Discord documents and other scanners match.
DISCORD_ID_LENGTHS = range(24, 27)


def discord_bot_token(match: re.Match[str]) -> Verdict | None:
    """A Discord bot token starts with the bot's numeric id in base64.

    A first part that decodes to the id is certain. One that does not, but has
    the length of today's ids, is still the token's layout (Discord's own
    documentation example is one; so is a real token with a character mistyped,
    which carries nearly all of the secret): reported with a lower score.
    """
    first = _value(match).split(".", 1)[0]
    raw = b64decode_loose(first)
    if raw is not None and raw.isdigit() and 15 <= len(raw) <= 21:
        return Verdict(0.9)
    if len(first) in DISCORD_ID_LENGTHS:
        return Verdict(0.7)
    return None


_SAS_VERSION = re.compile(r"[?&;]sv=\d{4}-\d\d-\d\d", re.IGNORECASE)


def azure_sas_signature(match: re.Match[str]) -> Verdict | None:
    """A `sig=` only counts as an Azure SAS signature next to its `sv=` version."""
    start = max(0, match.start() - 600)
    window = match.string[start : match.end() + 600]
    return Verdict(0.9) if _SAS_VERSION.search(window) else None
