"""The schema on both databases: migrations match the models, keys are stored hashed, times are UTC."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from loraforge.db.accounts import create_user_with_key, hash_key, user_id_for_key
from loraforge.db.base import Base, make_engine, make_sessionmaker
from loraforge.db.migrate import upgrade
from loraforge.db.models import ApiKey, User

pytestmark = pytest.mark.backends("database")  # database behaviour is under test


def test_migrations_create_exactly_what_the_models_describe(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)  # a second start is a no-op
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            differences = compare_metadata(context, Base.metadata)
        assert differences == [], differences
        tables = set(inspect(engine).get_table_names())
        assert {"users", "api_keys", "uploads", "finetune_jobs", "alembic_version"} <= tables
    finally:
        engine.dispose()


def test_api_keys_are_stored_only_as_sha256(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            user, key = create_user_with_key(session, "hash-check")
            stored = session.scalars(select(ApiKey).where(ApiKey.user_id == user.id)).one()
            assert stored.key_hash == hash_key(key) and key not in stored.key_hash
            assert user_id_for_key(session, key) == user.id
            assert user_id_for_key(session, key + "x") is None
            # The same key applied again (LORAFORGE_API_KEY at each start) adds nobody.
            again, _ = create_user_with_key(session, "hash-check", key)
            assert again.id == user.id
            with engine.connect() as connection:
                dumped = connection.execute(text("SELECT * FROM api_keys")).fetchall()
            assert all(key not in str(row) for row in dumped)
    finally:
        engine.dispose()


def test_timestamps_come_back_as_utc_on_every_backend(database_url: str) -> None:
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with make_sessionmaker(engine)() as session:
            user, _ = create_user_with_key(session, "clock")
            session.expire_all()
            fresh = session.scalar(select(User).where(User.id == user.id))
            assert fresh is not None and fresh.created_ts.tzinfo is not None
            assert fresh.created_ts.utcoffset() == UTC.utcoffset(None)
    finally:
        engine.dispose()


def test_autogenerate_through_env_py_finds_no_difference(database_url: str) -> None:
    """A fresh interpreter sees only what env.py imports, so a table module it forgets shows up."""
    upgrade(database_url)
    script = "import sys; from loraforge.db.migrate import check; check(sys.argv[1]); print('no difference')"
    done = subprocess.run([sys.executable, "-c", script, database_url], check=False, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "no difference" in done.stdout
