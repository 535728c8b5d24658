"""Body evasions (issue 14, the insider): each is sent through a real gateway to a loopback vendor that
records what it received; the value must not arrive in any form the test can read back. Cases the
gateway does not catch are marked as documented limits (docs/hardening.md says why) and assert exactly
what does arrive, so a change in either direction is noticed."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from support import POLICY

GHP = "ghp_" + "r40VZx1vDxSEJPRpadQoxEr94srjjIjhRRgD"
AKIA = "AKIA" + "IOSFODNN7EXAMPLE"
EMAIL = "maria.gonzalez@example.com"
SSN = "536-22-8841"
CARD = "4111111111111111"
PEM_BODY = ("MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2ZkRdOTFW0qTzpVxbYvBQ1yL9Y6u\n"
            "q4ZhuWoVyY7B6sN0rLVgUj4Mx3yPfH6f1AJ5mD8gC2e4nQ0vKqE8BfTqkZgR2bK1\n"
            "zJ7wWkH5d3lQp9nXc6tYvR8sU2oN4aMiE1fG0hL7jP3kD5bC9xV6yT2uQ8rW4eZ1\n")


def _hex(text: str) -> str:
    return text.encode().hex()


def _b32(text: str) -> str:
    return base64.b32encode(text.encode()).decode()


def _u_escapes(text: str, chars: str = "@.") -> str:
    return "".join(f"\\u{ord(c):04x}" if c in chars else c for c in text)


# (id, content type, body, what must not arrive)
CAUGHT = [
    ("glued-percent-equals", "text/plain", f"debug token%3D{GHP} end", [GHP]),
    ("glued-letter-akia", "text/plain", f"key x{AKIA} end", [AKIA]),
    ("glued-identifier-ghp", "text/plain", f"set my_{GHP} now", [GHP]),
    ("hex-email", "text/plain", f"contact {_hex(EMAIL)} please", [_hex(EMAIL)]),
    ("base32-token", "text/plain", f"blob {_b32(GHP)} end", [_b32(GHP).rstrip('=')]),
    ("double-percent-email", "text/plain", "mail maria.gonzalez%2540example.com now", ["maria.gonzalez%2540example"]),
    ("html-entity-email", "text/html", "<p>mail maria.gonzalez&#64;example.com</p>", ["maria.gonzalez&#64;example"]),
    ("html-named-entity-email", "text/html", "<p>mail maria.gonzalez&commat;example&period;com</p>",
     ["maria.gonzalez&commat;example"]),
    ("u-escapes-text-plain", "text/plain", f"mail {_u_escapes(EMAIL)} now", [_u_escapes(EMAIL)]),
    ("lrm-rlm-in-ssn", "text/plain", "ssn 536\u200e-22\u200f-8841 on file", ["536\u200e-22\u200f-8841", "8841"]),
    ("cyrillic-email-prose", "text/plain", "write to m\u0430ria.gonz\u0430lez@\u0435xample.com today",
     ["m\u0430ria.gonz\u0430lez@\u0435xample.com", "gonz\u0430lez"]),
    ("cyrillic-email-json-value", "application/json",
     json.dumps({"note": "m\u0430ria.gonz\u0430lez@\u0435xample.com"}, ensure_ascii=False),
     ["gonz\u0430lez", "gonz\\u0430lez"]),
    ("cyrillic-letter-in-token", "text/plain", "debug gh\u0440_" + GHP[4:] + " end", [GHP[4:]]),
    ("cyrillic-letter-in-aws-key", "text/plain", "key AK\u0406A" + AKIA[4:] + " end", [AKIA[4:]]),
    ("spelled-out-email", "text/plain", "reach jane.doe at acme-corp dot com tomorrow", ["jane.doe at acme-corp"]),
    ("pem-without-begin", "text/plain", f"key:\n{PEM_BODY}-----END RSA PRIVATE KEY-----\n", [PEM_BODY[:40]]),
    ("pem-double-spaced-begin", "text/plain",
     f"-----BEGIN  RSA PRIVATE KEY-----\n{PEM_BODY}-----END  RSA PRIVATE KEY-----\n", [PEM_BODY[:40]]),
    ("ssn-with-dots", "text/plain", "ssn 536.22.8841 on file", ["536.22.8841"]),
    ("value-split-across-lines", "text/plain", "mail maria.gonzalez@\nexample.com now", ["maria.gonzalez@"]),
    ("card-split-across-lines", "text/plain", "card 4111 1111\n1111 1111 ok", ["4111 1111\n1111"]),
    ("ssn-split-across-lines", "text/plain", "ssn 536-22-\n8841 ok", ["536-22-\n8841"]),
    ("aws-key-split-across-lines", "text/plain", f"key {AKIA[:10]}\n{AKIA[10:]} ok", [AKIA[:10], AKIA[10:]]),
]

# Documented limits (docs/hardening.md): what still arrives, asserted so a fix or a regression shows.
LIMITS = [
    ("card-json-float", "application/json", '{"card": 4111111111111111.0}', ["4111111111111111"]),
    ("ssn-json-integer", "application/json", '{"ssn": 536228841}', ["536228841"]),
    ("json-password-field", "application/json", json.dumps({"user": "jd", "password": "Tr0ub4dor-and-3"}),
     ["Tr0ub4dor-and-3"]),
    ("value-split-across-json-fields", "application/json",
     json.dumps({"user": "maria.gonzalez", "at": "@", "domain": "example.com"}), ["maria.gonzalez"]),
]


async def _send(gw, ctype: str, body: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=120) as client:
        return await client.post(gw.url + "/acme/v1/x", content=body.encode(), headers={"Content-Type": ctype})


def _received(upstream) -> str:
    assert len(upstream.received) <= 1
    return upstream.received[0].body.decode("utf-8", "replace") if upstream.received else ""


@pytest.mark.parametrize("ctype, body, needles", [c[1:] for c in CAUGHT], ids=[c[0] for c in CAUGHT])
async def test_body_evasion_never_reaches_the_vendor(gateway, upstream, ctype, body, needles):
    r = await _send(gateway, ctype, body)
    assert r.status_code in (200, 403), r.text
    got = _received(upstream)
    for needle in needles:
        assert needle not in got, f"{needle!r} reached the vendor: {got!r}"


@pytest.mark.parametrize("ctype, body, needles", [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
async def test_documented_evasion_limit_still_gets_through(gateway, upstream, ctype, body, needles):
    r = await _send(gateway, ctype, body)
    assert r.status_code == 200, r.text
    got = _received(upstream)
    assert all(needle in got for needle in needles)


FIELD_RULES = POLICY + """
fields:
  - select: ["$..password", "$..ssn", "$..card"]
    action: redact
field_default: scan
"""


@pytest.mark.parametrize("ctype, body, needles", [c[1:] for c in LIMITS[:3]], ids=[c[0] for c in LIMITS[:3]])
async def test_a_field_rule_covers_what_detection_cannot_see_in_json(upstream, write_config, start_gateway,
                                                                     ctype, body, needles):
    """The documented answer for keyed secrets and numbers: a `fields:` rule on the key."""
    gw = await start_gateway(write_config(upstream.url, policy=FIELD_RULES))
    r = await _send(gw, ctype, body)
    assert r.status_code == 200, r.text
    got = _received(upstream)
    assert all(needle not in got for needle in needles), got
