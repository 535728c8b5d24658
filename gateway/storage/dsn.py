"""Connection strings, shown without their secrets."""


def redact_dsn(dsn: str) -> str:
    """`postgresql://user:secret@host/db` -> `postgresql://user@host/db`: for messages and logs."""
    scheme, _, rest = dsn.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    return f"{scheme}://{userinfo.split(':')[0]}@{hostpart}" if at else dsn
