"""Connections to the stores every persistent part shares: SQLite files, PostgreSQL, Redis."""
