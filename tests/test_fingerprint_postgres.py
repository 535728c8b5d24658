"""One protected-document index in PostgreSQL (`fingerprints: {dsn, schema}` in the config),
shared by the CLI, `scan` and several gateway instances with their own data dirs."""

from __future__ import annotations

import asyncio
import json
import random
import shutil

from support import BLOCK_DOCS, PG_DSN, UNRELATED, T, disguise, document, passage, post_job, vendorgate

from gateway.detection.company import RECHECK_SECONDS

DISTINCTIVE = ["revenue", "forecast", "diligence", "turbine", "calibration", "formulation"]


def shared_config(write_config, upstream, schema: str):
    return write_config(upstream.url, BLOCK_DOCS, top_extra=f'fingerprints: {{dsn: "{PG_DSN}", schema: {schema}}}\n')


async def test_documents_added_by_the_cli_are_blocked_by_every_gateway_sharing_the_config(
        pg_schema, tmp_path, upstream, write_config, start_gateway):
    admin, schema = pg_schema
    cfg = shared_config(write_config, upstream, schema)
    doc = tmp_path / "roadmap-2025.md"
    doc.write_text(document(31))
    added = vendorgate("fingerprint", "add", "--config", str(cfg), "--label", "roadmap", str(doc))
    assert added.returncode == 0, added.stderr
    assert f"index in PostgreSQL {PG_DSN} schema {schema}" in added.stdout

    gw1 = await start_gateway(cfg)
    other_dir = tmp_path / "instance2"
    other_dir.mkdir()
    shutil.copy(gw1.data_dir / "keys.json", other_dir / "keys.json")  # instances share the master key
    gw2 = await start_gateway(cfg, data_dir=other_dir)
    assert gw2.data_dir != gw1.data_dir and not (other_dir / "fingerprints.sqlite").exists()

    rng = random.Random(5)
    for trial, gw in enumerate([gw1, gw2, gw1, gw2]):
        leaked = disguise(passage(doc.read_text(), rng, T))
        r = await post_job(gw, {"prompt": f"{UNRELATED[trial]}\n{leaked}"})
        assert r.status_code == 403, (trial, r.text)
        assert r.json()["entity_types"] == ["PROTECTED_DOCUMENT"]
    assert (await post_job(gw2, {"prompt": UNRELATED[2]})).status_code == 200
    assert len(upstream.received) == 1

    stranger = await start_gateway(cfg, data_dir=tmp_path / "instance3")  # its own, different master key
    leaked = disguise(passage(doc.read_text(), rng, T))
    r = await post_job(stranger, {"prompt": leaked})
    assert r.status_code == 503 and leaked not in r.text  # refused: it could not look anything up
    assert len(upstream.received) == 1

    listed = vendorgate("fingerprint", "list", "--config", str(cfg))
    assert "1 document(s) under 1 label(s)" in listed.stdout and "roadmap-2025.md" in listed.stdout
    removed = vendorgate("fingerprint", "remove", "roadmap", "--config", str(cfg))
    assert "removed 1 document(s)" in removed.stdout
    await asyncio.sleep(RECHECK_SECONDS)  # workers ask a shared index for its version at most this often
    leaked = disguise(passage(doc.read_text(), rng, T))
    for gw in (gw1, gw2):  # both instances' workers reload: the version counter moved
        assert (await post_job(gw, {"prompt": leaked})).status_code == 200


def test_the_postgres_tables_hold_no_document_text(pg_schema, tmp_path, upstream, write_config):
    admin, schema = pg_schema
    cfg = shared_config(write_config, upstream, schema)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"plan-{i}.md").write_text(document(40 + i))
    (src / "pricing.py").write_text("def apply_volume_discount(order_total, tier):\n    return order_total * 0.93\n" * 5)
    assert vendorgate("fingerprint", "add", "--config", str(cfg), "--label", "strategy", str(src)).returncode == 0

    tables = [r[0] for r in admin.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)).fetchall()]
    assert sorted(tables) == ["fingerprint_documents", "fingerprint_hashes", "fingerprint_meta"]
    dump = b""
    for table in tables:
        for row in admin.execute(f"SELECT * FROM {schema}.{table}").fetchall():
            dump += b"\n".join(v if isinstance(v, bytes) else str(v).encode() for v in row)
    assert len(dump) > 8 * 3 * 900 // 20  # the hashes are there
    low = dump.lower()
    for word in DISTINCTIVE + ["apply_volume_discount", "order_total"]:
        assert word.encode() not in low, word
    text = document(40).lower()
    for i in range(0, 3000, 101):
        assert text[i: i + 12].encode() not in low


def test_scan_with_the_config_consults_the_postgres_index(pg_schema, tmp_path, upstream, write_config):
    _, schema = pg_schema
    cfg = shared_config(write_config, upstream, schema)
    doc = tmp_path / "strategy.md"
    doc.write_text(document(22))
    assert vendorgate("fingerprint", "add", "--config", str(cfg), "--label", "strategy", str(doc)).returncode == 0
    leaked = disguise(passage(doc.read_text(), random.Random(3), T))
    lines = "\n".join(json.dumps({"text": t}) for t in (f"{UNRELATED[0]} {leaked}", UNRELATED[1])) + "\n"
    out = vendorgate("scan", "--workers", "1", "--policy", str(tmp_path / "policy.yaml"), "--config", str(cfg), stdin=lines)
    assert out.returncode == 0, out.stderr
    hit, clean = [json.loads(line) for line in out.stdout.splitlines()]
    assert hit["blocked"] == ["PROTECTED_DOCUMENT"] and hit["text"] is None
    assert clean == {"findings": [], "text": UNRELATED[1]}


def test_a_fingerprints_section_without_a_postgres_dsn_or_with_a_bad_schema_is_an_error(upstream, write_config):
    import pytest

    from gateway.config import ConfigError, load_config

    for section in ('{dsn: "mysql://db/x"}', f'{{dsn: "{PG_DSN}", schema: "Bad-Name"}}', f'{{dsn: "{PG_DSN}", table: x}}'):
        with pytest.raises(ConfigError):
            load_config(write_config(upstream.url, BLOCK_DOCS, top_extra=f"fingerprints: {section}\n"))
    cfg = load_config(write_config(upstream.url, BLOCK_DOCS, top_extra=f'fingerprints: {{dsn: "{PG_DSN}"}}\n'))
    assert cfg.config.fingerprints.db_schema == "public"
