"""Connection strings, shown without their secrets."""

import re

_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user@host/db`: for messages and logs."""
    scheme, _, rest = dsn.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    return f"{scheme}://{userinfo.split(':')[0]}@{hostpart}" if at else _KEYWORD_PASSWORD.sub(r"\1***", dsn)


def scrub(message: str, dsn: str) -> str:
    """A driver's error message without the DSN's password: some drivers quote a DSN they cannot parse."""
    message = message.replace(dsn, redact_dsn(dsn))
    _, _, rest = dsn.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    password = userinfo.partition(":")[2] if at else ""
    return _KEYWORD_PASSWORD.sub(r"\1***", message.replace(password, "***") if password else message)
