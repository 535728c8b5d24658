import sqlite3
import uuid

import pytest
import pytest_asyncio
from support import PG_DSN, postgres_unreachable

from gateway.actions.base import ActionContext, Issued
from gateway.actions.tokenize import Tokenize
from gateway.keys import LocalKeyProvider
from gateway.reversible.vault import PostgresVault, SQLiteVault, SurrogateCollision, open_vault


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def make_vault(request, tmp_path):
    """Factory for vault objects sharing one store (like several instances)."""
    made = []
    if request.param == "postgres":
        reason = await postgres_unreachable()
        if reason:
            pytest.skip(reason)
        table = f"vg_test_{uuid.uuid4().hex[:12]}"

        async def make(keys):
            made.append(await PostgresVault(PG_DSN, keys, table=table).open())
            return made[-1]
    else:
        path = tmp_path / "vault.sqlite3"

        async def make(keys):
            made.append(await SQLiteVault(path, keys).open())
            return made[-1]

    yield make
    for vault in made:
        await vault.close()
    if request.param == "postgres":
        import asyncpg

        conn = await asyncpg.connect(PG_DSN)
        await conn.execute(f"DROP TABLE IF EXISTS {table}, {table}_collisions, {table}_scopes")
        await conn.close()


@pytest.mark.asyncio
async def test_stored_surrogate_is_found_case_insensitively(make_vault, keys):
    vault = await make_vault(keys)
    await vault.store("openai", [Issued("PERSON_7QX2K4M9TB", "PERSON", "Alice Smith")])
    found = await vault.lookup("openai", ["person_7qx2k4m9tb", "PERSON_0000000000"])
    assert list(found) == ["person_7qx2k4m9tb"]
    assert (found["person_7qx2k4m9tb"].original, found["person_7qx2k4m9tb"].entity_type) == ("Alice Smith", "PERSON")


@pytest.mark.asyncio
async def test_lookup_only_returns_tokens_issued_to_the_asking_vendor(make_vault, keys):
    vault = await make_vault(keys)
    await vault.store("openai", [Issued("PERSON_7QX2K4M9TB", "PERSON", "Alice")])
    assert await vault.lookup("anthropic", ["PERSON_7QX2K4M9TB"]) == {}


@pytest.mark.asyncio
async def test_storing_the_same_surrogate_twice_is_fine(make_vault, keys):
    vault = await make_vault(keys)
    item = Issued("PERSON_7QX2K4M9TB", "PERSON", "Alice")
    await vault.store("openai", [item, item])
    await vault.store("openai", [item])
    assert (await vault.lookup("openai", [item.surrogate]))[item.surrogate].original == "Alice"


@pytest.mark.asyncio
async def test_collision_is_detected_and_the_retry_gets_a_longer_surrogate(make_vault, keys):
    vault = await make_vault(keys)
    await vault.store("openai", [Issued("PERSON_7QX2K4M9TB", "PERSON", "Alice")])
    with pytest.raises(SurrogateCollision) as caught:
        await vault.store("openai", [Issued("PERSON_7QX2K4M9TB", "PERSON", "Bob")])
    assert "Bob" not in str(caught.value)
    assert (await vault.lookup("openai", ["PERSON_7QX2K4M9TB"]))["PERSON_7QX2K4M9TB"].original == "Alice"

    ctx = ActionContext("openai", "PERSON", keys, collisions=vault.collisions("openai"))
    replaced = Tokenize().apply("Bob", ctx)
    retry = replaced.text
    assert len(retry) == len("PERSON_") + 14
    await vault.store("openai", list(replaced.issued))
    assert (await vault.lookup("openai", [retry]))[retry].original == "Bob"


@pytest.mark.asyncio
async def test_collisions_are_remembered_by_a_new_vault_object(make_vault, keys):
    first = await make_vault(keys)
    await first.store("openai", [Issued("PERSON_7QX2K4M9TB", "PERSON", "Alice")])
    with pytest.raises(SurrogateCollision):
        await first.store("openai", [Issued("PERSON_7QX2K4M9TB", "PERSON", "Bob")])
    second = await make_vault(keys)
    assert second.collisions("openai") == first.collisions("openai") != {}


@pytest.mark.asyncio
async def test_two_vault_objects_share_tokens(make_vault, keys):
    writer, reader = await make_vault(keys), await make_vault(keys)
    await writer.store("openai", [Issued("EMAIL_ADDRESS_Q2W3E4R5T6", "EMAIL_ADDRESS", "a@corp.example")])
    found = await reader.lookup("openai", ["EMAIL_ADDRESS_Q2W3E4R5T6"])
    assert found["EMAIL_ADDRESS_Q2W3E4R5T6"].original == "a@corp.example"


@pytest.mark.asyncio
async def test_rows_stay_readable_after_key_rotation(make_vault, keys):
    vault = await make_vault(keys)
    await vault.store("openai", [Issued("PERSON_AAAAAAAAAA", "PERSON", "Alice")])
    keys.rotate()
    await vault.store("openai", [Issued("PERSON_BBBBBBBBBB", "PERSON", "Bob")])
    found = await vault.lookup("openai", ["PERSON_AAAAAAAAAA", "PERSON_BBBBBBBBBB"])
    assert {k: v.original for k, v in found.items()} == {"PERSON_AAAAAAAAAA": "Alice", "PERSON_BBBBBBBBBB": "Bob"}
    assert await vault.count_unreadable(keys) == 0


@pytest.mark.asyncio
async def test_replaced_key_file_makes_rows_unreadable(make_vault, keys, tmp_path):
    vault = await make_vault(keys)
    await vault.store("openai", [Issued("PERSON_AAAAAAAAAA", "PERSON", "Alice"), Issued("PERSON_BBBBBBBBBB", "PERSON", "Bob")])
    keys.path.unlink()
    replaced = LocalKeyProvider(keys.path)
    assert await vault.count_unreadable(replaced) == 2
    fresh = await make_vault(replaced)
    assert await fresh.lookup("openai", ["PERSON_AAAAAAAAAA"]) == {}


@pytest.mark.asyncio
async def test_row_copied_to_another_vendor_does_not_decrypt(tmp_path, keys):
    path = tmp_path / "vault.sqlite3"
    vault = await SQLiteVault(path, keys).open()
    await vault.store("openai", [Issued("PERSON_AAAAAAAAAA", "PERSON", "Alice")])
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO tokens SELECT 'anthropic', surrogate, entity_type, key_id, sealed, created_at FROM tokens")
    assert await vault.lookup("anthropic", ["PERSON_AAAAAAAAAA"]) == {}
    assert await vault.count_unreadable(keys) == 1
    await vault.close()


@pytest.mark.asyncio
async def test_original_is_not_stored_in_clear(tmp_path, keys):
    path = tmp_path / "vault.sqlite3"
    vault = await open_vault(tmp_path, None, keys)
    await vault.store("openai", [Issued("PERSON_AAAAAAAAAA", "PERSON", "Alice Wonderland")])
    await vault.close()
    assert b"Wonderland" not in b"".join(p.read_bytes() for p in tmp_path.glob("vault.sqlite3*"))
    assert path.exists()


@pytest.mark.asyncio
async def test_shredded_entry_no_longer_opens_keeps_its_surrogate_and_is_not_unreadable(make_vault, keys):
    """`subject forget`: the original is gone for every vault object sharing the store; the surrogate
    stays taken (the same value again gets a new token); start-up does not count it as a lost key."""
    vault, other = await make_vault(keys), await make_vault(keys)
    alice, bob = Issued("PERSON_7QX2K4M9TB", "PERSON", "Alice Smith"), Issued("PERSON_B0B0B0B0B0", "PERSON", "Bob")
    await vault.store("openai", [alice, bob])
    found = await vault.entries_matching(lambda t, original: "alice" if original == "Alice Smith" else None)
    assert found == [("openai", "person_7qx2k4m9tb", "PERSON", "alice")]
    assert await vault.shred([("openai", "PERSON_7QX2K4M9TB", "PERSON"),
                              ("openai", "vg1k1_EMAIL_ADDRESS_ABCDEFGH", "EMAIL_ADDRESS")]) == 2
    assert await other.lookup("openai", [alice.surrogate, bob.surrogate]) == {
        bob.surrogate: Issued(bob.surrogate, "PERSON", "Bob")}
    assert await other.shredded("openai", [alice.surrogate, bob.surrogate, "vg1k1_email_address_abcdefgh"]) == {
        "person_7qx2k4m9tb", "vg1k1_email_address_abcdefgh"}
    assert await other.entries_matching(lambda t, original: original) == [("openai", "person_b0b0b0b0b0", "PERSON", "Bob")]
    assert await other.count_unreadable() == 0
    with pytest.raises(SurrogateCollision):  # a new original never takes over the old token
        await other.store("openai", [alice])


@pytest.mark.asyncio
async def test_shredding_leaves_no_copy_of_the_sealed_original_in_the_sqlite_files(tmp_path, keys):
    path = tmp_path / "vault.sqlite3"
    vault = await SQLiteVault(path, keys).open()
    await vault.store("openai", [Issued("PERSON_7QX2K4M9TB", "PERSON", "Alice Smith " * 20)])
    with sqlite3.connect(path) as db:
        [(sealed,)] = db.execute("SELECT sealed FROM tokens").fetchall()
    await vault.shred([("openai", "PERSON_7QX2K4M9TB", "PERSON")])
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("vault.sqlite3"))
    await vault.close()
    assert len(sealed) > 200 and sealed[20:60] not in on_disk  # secure_delete zeroed it; the WAL was truncated
