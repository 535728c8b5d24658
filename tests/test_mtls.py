"""mTLS (issue 12, part 1, optional): a client certificate signed by `tls.client_ca_file` maps to a
caller by its subject CN; keys still work over TLS; a certificate from another CA is refused."""

from __future__ import annotations

import datetime
import ssl

import httpx
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support import free_port

from gateway.app.auth import CallerKeys
from gateway.app.server import build_app, tls_context
from gateway.audit import AuditLog
from gateway.config import load_config
from gateway.keys import LocalKeyProvider


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(folder, stem: str, cn: str, issuer=None, ca: bool = False, server: bool = False):
    """Write stem.pem / stem.key; returns (cert, key). Self-signed when `issuer` is None."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    signer_cert, signer_key = issuer if issuer else (None, key)
    builder = (x509.CertificateBuilder().subject_name(_name(cn))
               .issuer_name(signer_cert.subject if signer_cert else _name(cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress")
                                                                                    .ip_address("127.0.0.1"))]),
                                        critical=False)
    cert = builder.sign(signer_key, hashes.SHA256())
    (folder / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))
    return cert, key


@pytest.fixture
async def tls_gateway(tmp_path, upstream, write_config, engine):
    ca = issue(tmp_path, "ca", "vendorgate test CA", ca=True)
    issue(tmp_path, "server", "127.0.0.1", issuer=ca, server=True)
    issue(tmp_path, "client", "billing-svc.corp.internal", issuer=ca)
    issue(tmp_path, "stranger", "billing-svc.corp.internal")  # same CN, not from our CA
    cfg = write_config(upstream.url, top_extra="auth: {keys_file: callers.yaml}\n"
                       "tls: {cert_file: server.pem, key_file: server.key, client_ca_file: ca.pem}")
    key = CallerKeys.load(tmp_path / "callers.yaml").add("billing-svc", None, cert_cn="billing-svc.corp.internal")
    settings = load_config(cfg)
    runner = web.AppRunner(build_app(settings, engine), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls_context(settings)).start()
    yield f"https://127.0.0.1:{port}", tmp_path, key, settings, runner
    await runner.cleanup()


def client_ssl(folder, stem: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(folder / "ca.pem"))
    if stem:
        context.load_cert_chain(folder / f"{stem}.pem", folder / f"{stem}.key")
    return context


async def test_a_client_certificate_from_our_ca_is_the_caller_and_keys_still_work(tls_gateway, upstream):
    url, folder, key, settings, runner = tls_gateway
    async with httpx.AsyncClient(verify=client_ssl(folder, "client"), timeout=60) as client:
        by_cert = await client.post(f"{url}/acme/v1/x", json={"a": 1})
    async with httpx.AsyncClient(verify=client_ssl(folder, None), timeout=60) as client:
        no_cert = await client.post(f"{url}/acme/v1/x", json={"a": 1})
        by_key = await client.post(f"{url}/acme/v1/x", json={"a": 1}, headers={"Authorization": f"Bearer {key}"})
    assert (by_cert.status_code, no_cert.status_code, by_key.status_code) == (200, 401, 200)
    with pytest.raises(httpx.TransportError):  # the TLS handshake refuses a certificate from another CA
        async with httpx.AsyncClient(verify=client_ssl(folder, "stranger"), timeout=60) as client:
            await client.post(f"{url}/acme/v1/x", json={"a": 1})
    assert len(upstream.received) == 2
    await runner.cleanup()
    rows = AuditLog.in_data_dir(settings.data_dir, LocalKeyProvider.existing(settings.data_dir)).records()
    assert [(r["caller"], r["status"]) for r in rows] == [("billing-svc", 200), ("anonymous", 401),
                                                          ("billing-svc", 200)]
