"""The storage layer's rule, on its own: SQLite transactions, PostgreSQL reconnects, no password in errors."""

from __future__ import annotations

import threading

import pytest
from support import PG_DSN as PG

from gateway.storage.dsn import redact_dsn, scrub
from gateway.storage.postgres import AsyncPostgresPool, PostgresConnection
from gateway.storage.sqlite import SQLiteFile
from gateway.storage.thread import StoreThread


def test_sqlite_file_is_wal_and_rolls_back_a_failed_transaction(tmp_path):
    db = SQLiteFile(tmp_path / "sub" / "x.sqlite", "CREATE TABLE t (v INTEGER);")
    assert db.rows("PRAGMA journal_mode") == [("wal",)]
    with pytest.raises(RuntimeError), db.transaction():
        db.run("INSERT INTO t VALUES (1)")
        raise RuntimeError
    with db.transaction():
        db.run_many("INSERT INTO t VALUES (?)", [(2,), (3,)])
    assert db.rows("SELECT v FROM t ORDER BY v") == [(2,), (3,)]
    db.close()


def test_sqlite_transaction_excludes_the_stores_other_threads(tmp_path):
    db = SQLiteFile(tmp_path / "x.sqlite", "CREATE TABLE t (v INTEGER);")
    seen = []
    with db.transaction():
        db.run("INSERT INTO t VALUES (1)")
        reader = threading.Thread(target=lambda: seen.append(db.rows("SELECT COUNT(*) FROM t")))
        reader.start()
        reader.join(0.2)
        assert seen == []  # waits for the transaction instead of reading inside it
        db.run("INSERT INTO t VALUES (2)")
    reader.join()
    assert seen == [[(2,)]]
    db.close()


@pytest.mark.asyncio
async def test_store_thread_keeps_call_order():
    thread, done = StoreThread("t"), []
    await thread.run(done.append, 1)
    await thread.run_shielded(done.append, 2)
    await thread.close()
    assert done == [1, 2]


def test_dsn_passwords_stay_out_of_messages():
    assert redact_dsn("postgresql://u:s3cret@h/db") == "postgresql://u@h/db"
    assert redact_dsn("host=h password=s3cret dbname=d") == "host=h password=*** dbname=d"
    assert "s3cret" not in scrub('missing "=" after "postgresq://u:s3cret@x/db"', "postgresq://u:s3cret@x/db")


def test_a_connection_error_does_not_carry_the_password():
    import psycopg

    with pytest.raises(psycopg.Error) as caught:
        PostgresConnection("postgresq://u:s3cret@127.0.0.1/db")
    assert "s3cret" not in str(caught.value)


def test_postgres_connection_reopens_after_the_server_drops_it(pg_schema):
    admin, _ = pg_schema
    db = PostgresConnection(PG)
    pid = db.rows("SELECT pg_backend_pid()")[0][0]
    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert db.call(lambda c: c.execute("SELECT 1").fetchone()) == (1,)
    assert db.rows("SELECT pg_backend_pid()")[0][0] != pid
    db.close()


@pytest.mark.asyncio
async def test_async_pool_reuses_connections_and_replaces_a_lost_one(pg_schema):
    import psycopg

    admin, _ = pg_schema
    pool = AsyncPostgresPool(PG, size=2)
    first = (await pool.rows("SELECT pg_backend_pid()"))[0][0]
    assert (await pool.rows("SELECT pg_backend_pid()"))[0][0] == first
    admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    with pytest.raises(psycopg.OperationalError):
        await pool.rows("SELECT 1")  # the one in flight fails
    assert (await pool.rows("SELECT pg_backend_pid()"))[0][0] != first
    await pool.close()
