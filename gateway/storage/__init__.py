"""Connections to the stores every persistent part shares: SQLite files, PostgreSQL, Redis.

One rule for every store (audit log, exposure ledger, token vault, fingerprint
index, budgets); the stores keep their schemas and queries:

- SQLite (`sqlite.SQLiteFile`): one connection per store per file, WAL,
  synchronous=NORMAL (FULL for the vault), a 30 s busy timeout. The connection
  is shared by the store's threads under one lock; write transactions are
  BEGIN IMMEDIATE, which serialises writers across processes.
- PostgreSQL (`postgres`): one driver family, psycopg 3. A sync
  `PostgresConnection` (one per store, one lock) for stores used from a
  writer thread, a detection worker or the CLI; an `AsyncPostgresPool` (up to
  4 connections per DSN) for the vault, called from the event loop. Autocommit,
  explicit transactions, tables created under an advisory lock, a lost
  connection reopened on next use.
- Redis (`redis.open_redis`): one asyncio client per store, 5 s timeouts.
- Blocking calls never run on the event loop: a store called from it owns
  one `thread.StoreThread`, so its calls keep their order.
- Errors and logs name a store by `where`, with `dsn.redact_dsn`; driver
  messages lose the password (`dsn.scrub`).

This package imports no other gateway package.
"""
