"""Alembic environment: migrate the database named by the config's sqlalchemy.url.

Engines come from loraforge.db.base.make_engine so SQLite pragmas and the psycopg driver match
what the service uses. On PostgreSQL a transaction-scoped advisory lock serialises concurrent
starts (API and workers booting at once).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from loraforge.db.base import make_engine
from loraforge.db.tables import metadata

MIGRATION_LOCK_ID = 72_210_001


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                if connection.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations_online()
