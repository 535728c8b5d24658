"""The insider: what a caller puts in request headers is allow-listed and scanned, never forwarded verbatim."""

from __future__ import annotations

import base64
import json

import httpx

GHP = "ghp_" + "r40VZx1vDxSEJPRpadQoxEr94srjjIjhRRgD"
EMAIL = "john.smith@example.com"


def _b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


JWT = f"{_b64({'alg': 'HS256', 'typ': 'JWT'})}.{_b64({'sub': '1234567890', 'email': EMAIL})}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
LEAKY = {
    "X-Debug-Token": GHP,
    "Cookie": f"session={JWT}; user={EMAIL}",
    "User-Agent": f"billing-batch/2.1 (contact {EMAIL})",
    "Referer": f"https://crm.internal/customers?email={EMAIL}",
    "X-User-Email": EMAIL,
}


async def post(url: str, headers: dict, body: str = "hello") -> httpx.Response:
    async with httpx.AsyncClient(timeout=60) as client:
        return await client.post(url, content=body, headers={"Content-Type": "text/plain", **headers})


def received_text(upstream) -> str:
    got = upstream.received[0]
    return json.dumps(got.headers) + got.query + got.body.decode("utf-8", "replace")


async def test_request_headers_outside_the_allow_list_never_reach_the_vendor(gateway, upstream):
    r = await post(gateway.url + "/acme/v1/x", LEAKY)
    assert r.status_code == 200, r.text
    got = upstream.received[0].headers
    assert "X-Debug-Token" not in got and "Cookie" not in got and "Referer" not in got and "X-User-Email" not in got
    text = received_text(upstream)
    assert GHP not in text and EMAIL not in text and JWT not in text
    assert got["User-Agent"].startswith("billing-batch/2.1 (contact ")  # allowed, and its email protected


async def test_allow_listed_request_header_values_go_through_detection(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, vendor_extra=(
        "forward_headers: [content-type, user-agent, x-debug-token, cookie, referer, x-user-email]\n"
        "caller_credentials: forward\n")))  # Cookie counts as a caller credential; forwarded here to be scanned
    r = await post(gw.url + "/acme/v1/x", LEAKY)
    assert r.status_code == 200, r.text
    got = upstream.received[0].headers
    assert set(LEAKY) <= set(got)  # forwarded, protected
    text = received_text(upstream)
    assert GHP not in text and EMAIL not in text and JWT not in text
    assert got["X-Debug-Token"] == "<SECRET>"
    assert got["X-User-Email"].endswith("e.com") and "*" in got["X-User-Email"]  # mask, keep 4


async def test_a_block_finding_in_a_request_header_refuses_the_request(upstream, write_config, start_gateway):
    policy = "name: t\ndetect: all\nactions:\n  SECRET: block\n"
    gw = await start_gateway(write_config(upstream.url, policy=policy, vendor_extra="forward_headers: [x-debug-token]\n"))
    r = await post(gw.url + "/acme/v1/x", {"X-Debug-Token": GHP})
    assert r.status_code == 403 and r.json()["entity_types"] == ["SECRET"]
    assert GHP not in r.text
    assert upstream.received == []


async def test_caller_credentials_to_a_vendor_without_a_configured_credential_are_stripped(gateway, upstream):
    r = await post(gateway.url + "/acme/v1/x", {"Authorization": "Bearer sk-caller-own-0123456789abcdef",
                                               "X-Api-Key": "caller-api-key-0123456789"})
    assert r.status_code == 200
    got = upstream.received[0].headers
    assert "Authorization" not in got and "X-Api-Key" not in got
    assert "sk-caller-own" not in received_text(upstream) and "caller-api-key" not in received_text(upstream)


async def test_caller_credentials_can_be_refused_instead(upstream, write_config, start_gateway):
    gw = await start_gateway(write_config(upstream.url, vendor_extra="caller_credentials: block\n"))
    r = await post(gw.url + "/acme/v1/x", {"Authorization": "Bearer sk-caller-own-0123456789abcdef"})
    assert r.status_code == 403
    assert "sk-caller-own" not in r.text
    assert upstream.received == []


def multipart(head: str, content: str = "hello") -> tuple[bytes, str]:
    boundary = "vgboundary42"
    body = (f"--{boundary}\r\n{head}\r\n\r\n{content}\r\n--{boundary}--\r\n").encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def test_multipart_part_headers_and_rfc2231_names_are_scanned(gateway, upstream):
    heads = [
        "Content-Disposition: form-data; name*=UTF-8''john.smith%40example.com",
        "Content-Disposition: form-data; name=\"note\"; filename*=UTF-8''john.smith%40example.com.txt\r\n"
        "Content-Type: text/plain",
        "Content-Disposition: form-data; name=\"note\"\r\nX-Note: contact john.smith@example.com",
        "Content-Disposition: form-data; name=\"note\"; x-owner=\"john.smith@example.com\"",
    ]
    for head in heads:
        body, ctype = multipart(head)
        async with httpx.AsyncClient(timeout=60) as client:
            r = await client.post(gateway.url + "/acme/upload", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 200, (head, r.text)
    assert len(upstream.received) == len(heads)
    for got in upstream.received:
        assert "john.smith" not in got.body.decode() and "john.smith%40" not in got.body.decode(), got.body
        assert b"hello" in got.body
