"""The database engine, session factory and declarative base shared by every model.

`make_engine(url)` knows the two backends loraforge supports: SQLite (the one-machine default,
put in WAL mode so the API and the embedded worker can read while one writes) and PostgreSQL via
psycopg 3 (a fleet). Timestamps go through `UTCDateTime` so both backends hand back aware UTC
datetimes, which SQLite alone would not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from loraforge.errors import ConfigError

# Connections kept open per process. The API runs at most this many sessions at once (see
# loraforge.api.routes.finetune), so the pool never churns: a new PostgreSQL connection costs a
# backend fork, far more than the query it would serve.
POOL_SIZE = 16


class Base(DeclarativeBase):
    """Declarative base of every loraforge table."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp stored as UTC on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite has no time zones: store the naive UTC value, re-attach UTC on the way out.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is UTC:  # PostgreSQL's, in our UTC sessions: as it is
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _pg_json_loads(dbapi_connection: Any, _record: Any) -> None:
    from psycopg.types.json import set_json_loads

    set_json_loads(orjson.loads, dbapi_connection)  # the list endpoint decodes 200 JSON values a call


def make_engine(url: str) -> Engine:
    """An Engine for a SQLite or PostgreSQL URL; anything else is a ConfigError."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"LORAFORGE_DATABASE_URL is not a database URL: {url!r}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            from pathlib import Path

            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 10},
            pool_size=POOL_SIZE,
            max_overflow=POOL_SIZE // 2,
            json_serializer=_json_text,
            json_deserializer=orjson.loads,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # the driver we ship
        # No pool_pre_ping: it would double the round trips of every request; a connection lost to
        # a database restart fails one request with a 503 (see api/errors.py) and is replaced.
        engine = create_engine(
            parsed,
            pool_size=POOL_SIZE,
            max_overflow=POOL_SIZE // 2,
            pool_recycle=1800,
            connect_args={"options": "-c timezone=UTC"},
            json_serializer=_json_text,
            json_deserializer=orjson.loads,
        )
        event.listen(engine, "connect", _pg_json_loads)
        return engine
    raise ConfigError(
        f"LORAFORGE_DATABASE_URL must be sqlite:///path or postgresql+psycopg://..., got {backend!r}"
    )


def make_sessionmaker(engine: Engine, readonly: bool = False) -> sessionmaker[Session]:
    """Sessions on `engine`; `readonly=True` gives autocommit sessions for single-query reads."""
    if readonly:
        # No BEGIN before and no ROLLBACK after the one SELECT: a third of the round trips.
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    # expire_on_commit=False: handlers render rows after commit without a second round trip.
    return sessionmaker(bind=engine, expire_on_commit=False)
