"""Apply the alembic migrations shipped inside the package (loraforge/db/migrations).

`upgrade(url)` runs at every start of the API and the worker, so a fresh machine gets its schema
and an upgraded one its new columns with no manual step. On PostgreSQL an advisory lock (taken in
migrations/env.py) makes concurrent starts of several processes safe.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser treats % as interpolation; URL-encoded passwords contain it.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at `url` to `revision` (default: the newest)."""
    logger.info("applying database migrations up to %s", revision)
    command.upgrade(alembic_config(url), revision)
