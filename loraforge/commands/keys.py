"""`loraforge keys create --name N`: create a user with a new API key and print the key alone.

The key is printed once on stdout (nothing else goes there, so `KEY=$(loraforge keys create ...)`
works) and only its sha256 is stored. The database is migrated first, so this works on a fresh
machine before the server ever ran.
"""

from __future__ import annotations

import argparse

from loraforge.config import load_settings
from loraforge.db.accounts import create_user_with_key
from loraforge.db.base import make_engine, make_sessionmaker
from loraforge.db.migrate import upgrade
from loraforge.errors import ValidationError


def create_key(args: argparse.Namespace) -> int:
    name = args.name.strip()
    if not name or len(name) > 200:
        raise ValidationError("--name: give a name of 1 to 200 characters, e.g. --name alice")
    settings = load_settings()
    url = settings.resolved_database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            _user, key = create_user_with_key(session, name)
    finally:
        engine.dispose()
    print(key)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser("keys", help="manage API keys")
    keys_sub = parser.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a user with a new API key; prints the key")
    create.add_argument("--name", required=True, help="who the key is for")
    create.set_defaults(func=create_key)
