"""Two gateway instances, each with its own ledger object, write one PostgreSQL
ledger (the config's `audit.dsn`); the CLI pointed at either config finds both."""

from __future__ import annotations

import base64
import functools
import json
from datetime import UTC, datetime

from support import JANE_CARD, JANE_EMAIL, add_callers, send, two_vendor_config, user_env, vendorgate

from gateway.audit.ledger import Exposure, ExposureLedger, RequestMeta
from gateway.keys import LocalKeyProvider

MASTER_KEY = base64.b64encode(b"\x11" * 32).decode()


cli = functools.partial(vendorgate, env=user_env(VENDORGATE_MASTER_KEY=MASTER_KEY))  # instances and CLI share the key


def instance_config(folder, upstream_url: str, dsn: str):
    folder.mkdir()
    return two_vendor_config(folder, upstream_url, f'audit: {{dsn: "{dsn}"}}')


async def test_two_gateways_share_one_postgres_ledger_and_who_saw_finds_both(
        pg_dsn, tmp_path, upstream, start_gateway, monkeypatch):
    monkeypatch.setenv("VENDORGATE_MASTER_KEY", MASTER_KEY)  # instances share the master key, as documented
    cfg1 = instance_config(tmp_path / "gw1", upstream.url, pg_dsn)
    cfg2 = instance_config(tmp_path / "gw2", upstream.url, pg_dsn)
    key = add_callers(cfg1, ["billing-svc"]) | add_callers(cfg2, ["support-bot"])
    gw1, gw2 = await start_gateway(cfg1), await start_gateway(cfg2)
    assert gw1.data_dir != gw2.data_dir
    assert gw1.runner.app is not gw2.runner.app

    assert (await send(gw1, "alpha", f"mail {JANE_EMAIL} card {JANE_CARD}", key["billing-svc"])).status_code == 200
    assert (await send(gw2, "beta", f"mail {JANE_EMAIL}", key["support-bot"])).status_code == 200
    assert JANE_EMAIL in upstream.received[0].text and JANE_EMAIL not in upstream.received[1].text
    await gw1.runner.cleanup()  # shutdown waits for the ledger writer and signs a checkpoint
    await gw2.runner.cleanup()

    out = cli("audit", "who-saw", JANE_EMAIL.upper(), "--json", "--config", str(cfg2))
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)["exposures"]
    assert sorted((h["vendor"], h["caller"], h["form"]) for h in hits) == [
        ("alpha", "billing-svc", "clear"), ("beta", "support-bot", "tokenized")]

    out = cli("audit", "vendor", "alpha", "--json", "--config", str(cfg2))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["requests"] == 1 and summary["exposed"]["EMAIL_ADDRESS"]["clear"] == 1

    report = tmp_path / "report.json"
    out = cli("report", "--json", str(report), "--config", str(cfg1))
    assert out.returncode == 0, out.stderr
    assert "2 vendor(s), 2 request(s)" in out.stdout
    assert json.loads(report.read_text())["totals"]["distinct_clear_values"] == 2  # the email and the card

    out = cli("audit", "verify", "--config", str(cfg1))
    assert out.returncode == 0 and "2 record(s) verified" in out.stdout, out.stderr
    assert "exposure ledger: 3 row(s) of 2 record(s) match" in out.stdout
    for gw in (gw1, gw2):
        assert not (gw.data_dir / "ledger.sqlite").exists() and not (gw.data_dir / "audit.sqlite").exists()


def test_retention_prunes_old_rows_of_the_postgres_ledger(pg_dsn, tmp_path, upstream):
    cfg = instance_config(tmp_path / "gw", upstream.url, pg_dsn)
    keys = LocalKeyProvider(tmp_path / "keys.json", env={"VENDORGATE_MASTER_KEY": MASTER_KEY})
    ledger = ExposureLedger.in_data_dir(tmp_path, keys, pg_dsn)
    now = datetime.now(UTC).isoformat()
    for ts, caller in (("2020-01-01T00:00:00.000+00:00", "old-job"), (now, "new-job")):
        ledger.add_sync(RequestMeta(ts, "r-" + caller, "rec-" + caller, caller, "alpha"),
                        [Exposure("EMAIL_ADDRESS", "clear", JANE_EMAIL)])
    out = cli("audit", "prune", "--days", "400", "--config", str(cfg))
    assert out.returncode == 0 and "exposure ledger: 1 row(s) pruned" in out.stdout, out.stderr
    assert [h["caller"] for h in ledger.who_saw(JANE_EMAIL)] == ["new-job"]
    ledger.db.close()



async def test_subject_forget_on_postgres_shreds_the_shared_vault_and_signs_the_erasure(
        pg_dsn, tmp_path, upstream, start_gateway, monkeypatch):
    """Audit log, ledger and vault in PostgreSQL: the CLI finds the value's token, shreds it for every
    instance, and the erasure is bound into the verified log."""
    monkeypatch.setenv("VENDORGATE_MASTER_KEY", MASTER_KEY)
    cfg = instance_config(tmp_path / "gw", upstream.url, pg_dsn)
    cfg.write_text(cfg.read_text().replace("audit:", f'vault: {{dsn: "{pg_dsn}", table: vg_subject}}\naudit:', 1))
    key = add_callers(cfg, ["support-bot"])
    gw = await start_gateway(cfg)
    r = await send(gw, "beta", f"mail {JANE_EMAIL}", key["support-bot"])
    assert r.status_code == 200 and JANE_EMAIL in r.json()["echo"]  # restored before the forget
    token = upstream.received[0].text.split()[1]
    out = cli("subject", "forget", "--value", JANE_EMAIL, "--config", str(cfg))
    assert out.returncode == 0 and "shredded 1 vault entry (beta 1)" in out.stdout, out.stdout + out.stderr
    upstream.handler = lambda request, body: _reply(token)
    r = await send(gw, "beta", "what was it?", key["support-bot"])
    assert r.text == f"it was {token}"  # the running instance restores it no more
    await gw.runner.cleanup()
    out = cli("audit", "verify", "--config", str(cfg))
    assert out.returncode == 0 and "exposure ledger: 2 row(s) of 2 record(s) match" in out.stdout, out.stdout + out.stderr
    hits = json.loads(cli("audit", "who-saw", JANE_EMAIL, "--json", "--config", str(cfg)).stdout)
    assert hits["vendors"]["beta"]["forms"] == {"erased": 1, "tokenized": 1}
    assert not (gw.data_dir / "vault.sqlite3").exists()


async def _reply(token: str):
    from aiohttp import web

    return web.Response(text=f"it was {token}", content_type="text/plain")
