"""`loraforge keys create --name N | list | revoke NAME`: the API keys of the server's database.

`create` prints the key alone on stdout (so `KEY=$(loraforge keys create ...)` works) and only its
sha256 is stored. Every subcommand says on stderr which database it used, because a key made in
another database (another folder's ./data, say) is one the server has never seen. `create`
refuses to start a new empty database unless `--init` is given, and refuses a name that an
active key already has, so `revoke NAME` is unambiguous. `list` shows names, prefixes, creation
and last use, never a key. A revoked key is refused by every API process at once (see
loraforge.api.key_cache).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from loraforge.config import load_settings
from loraforge.db import accounts
from loraforge.db.base import make_engine, make_sessionmaker
from loraforge.db.migrate import database_revision, describe_url, head_revision, upgrade
from loraforge.errors import ConfigError, ValidationError
from loraforge.timestamps import cli_time

T = TypeVar("T")


def _in_database(work: Callable[[Session], T], *, init: bool | None = None) -> T:
    """Run `work` on the configured database, migrated; a missing database only with init.

    init None: the command has no --init (list, revoke), so the error does not offer it.
    """
    url = load_settings().resolved_database_url
    shown = describe_url(url)
    try:
        revision = database_revision(url)
    except OperationalError as exc:
        raise ConfigError(f"cannot reach the database ({shown}): {exc.orig}") from None
    if revision is None and not init:
        raise ConfigError(
            f"no loraforge database at {shown}; run this where the server runs, set "
            "LORAFORGE_DATABASE_URL (or LORAFORGE_DATA_DIR) to the server's"
            + (", or pass --init to create it" if init is not None else "")
        )
    print(f"database: {shown}", file=sys.stderr)
    if revision != head_revision():  # a new or older database; alembic costs a second otherwise
        upgrade(url)
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            return work(session)
    finally:
        engine.dispose()


def create_key(args: argparse.Namespace) -> int:
    name = args.name.strip()
    if not name or len(name) > 200:
        raise ValidationError("--name: give a name of 1 to 200 characters, e.g. --name alice")

    def create(session: Session) -> str:
        if accounts.active_key_named(session, name):
            raise ValidationError(
                f"--name: an active key is already named {name!r}; choose another name or "
                f"`loraforge keys revoke {name}` first"
            )
        return accounts.create_user_with_key(session, name)[1]

    print(_in_database(create, init=args.init))
    return 0


def _when(value: datetime | None) -> str:
    return cli_time(value) if value is not None else "never"


def list_keys(args: argparse.Namespace) -> int:
    keys = _in_database(lambda s: accounts.list_keys(s, include_revoked=args.all))
    rows = [("NAME", "PREFIX", "CREATED", "LAST USED", "REVOKED")]
    rows += [(k.name, k.prefix + "...", _when(k.created_ts), _when(k.last_used_ts),
              _when(k.revoked_ts) if k.revoked_ts else "-") for k in keys]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def revoke_key(args: argparse.Namespace) -> int:
    prefixes = _in_database(lambda s: accounts.revoke_key(s, args.name.strip()))
    print(f"revoked {', '.join(p + '...' for p in prefixes)} ({args.name.strip()})", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("keys", help="manage API keys")
    keys_sub = parser.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a user with a new API key; prints the key")
    create.add_argument("--name", required=True, help="who the key is for (unique among active keys)")
    create.add_argument("--init", action="store_true",
                        help="create the database if there is none yet (default: refuse)")
    create.set_defaults(func=create_key)
    listing = keys_sub.add_parser("list", help="list keys: name, prefix, created, last used (never the key)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    listing.set_defaults(func=list_keys)
    revoke = keys_sub.add_parser("revoke", help="revoke a key at once: by name, prefix or the key itself")
    revoke.add_argument("name", help="the key's name (see `keys list`), its prefix or the key")
    revoke.set_defaults(func=revoke_key)
