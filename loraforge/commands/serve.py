"""`loraforge serve [--host --port]`: migrate, make sure there is a key to use, print it, serve.

Without LORAFORGE_API_KEY the first start creates a demo key and keeps it in
DATA_DIR/serve-api-key (mode 0600) so `make serve` prints the same key after a restart; the
database still stores only its sha256. With `--workers N` uvicorn runs N processes, each building
the app from the same environment; on SQLite that is refused (each process would run its own
embedded worker on the one file). The HTTP limits (header size and count, header and body
deadlines, open connections; see loraforge.api.http_limits) apply in every process.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys

from loraforge.config import Settings, load_settings
from loraforge.db.accounts import create_user_with_key, user_id_for_key
from loraforge.db.base import make_engine, make_sessionmaker
from loraforge.db.migrate import describe_url, upgrade
from loraforge.doctor import start_checks
from loraforge.errors import ValidationError

logger = logging.getLogger(__name__)

DEMO_KEY_FILE = "serve-api-key"


def ensure_key(settings: Settings) -> str:
    """The key to print: LORAFORGE_API_KEY, else the remembered demo key, else a new one."""
    url = settings.resolved_database_url
    upgrade(url)
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            if settings.api_key:
                return create_user_with_key(session, "LORAFORGE_API_KEY", settings.api_key)[1]
            path = settings.data_dir / DEMO_KEY_FILE
            if path.exists():
                key = path.read_text().strip()
                if key and user_id_for_key(session, key):
                    return key
            _user, key = create_user_with_key(session, "demo")
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(key + "\n")
            tmp.chmod(0o600)
            tmp.replace(path)
            return key
    finally:
        engine.dispose()


def port_in_use(host: str, port: int) -> OSError | None:
    """The error binding (host, port) gives now, or None if it is free.

    Checked before the migrations, the key and the banner: uvicorn only binds after the app's
    startup, so a taken port used to print a key and a URL (another server's) and then exit.
    SO_REUSEADDR as uvicorn sets it, so a port in TIME_WAIT counts as free.
    """
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        return exc
    return None


def _bind_hint(error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return " (another server on that port?); choose another with --port or LORAFORGE_PORT"
    if error.errno == errno.EACCES:
        return "; ports below 1024 need privileges: choose another with --port or LORAFORGE_PORT"
    return "; choose an address of this machine with --host or LORAFORGE_HOST"


def check_workers(workers: int, settings: Settings) -> None:
    """Refuse a --workers count below 1, or above 1 where each process would train (ValidationError
    naming --workers).

    Without a broker every API process runs its own embedded worker, so N processes would be N
    trainers sharing one GPU (on any database); on SQLite they would also share a file that takes one
    writer at a time. Several API processes need either a broker with `loraforge worker` processes or
    LORAFORGE_EMBEDDED_WORKER=false (API-only processes).
    """
    if workers < 1:
        raise ValidationError(f"--workers: must be at least 1, got {workers}")
    if workers == 1:
        return
    database = settings.resolved_database_url
    if database.startswith("sqlite"):
        raise ValidationError(
            f"--workers {workers}: with SQLite (here {describe_url(database)}) every API process would run "
            f"its own embedded worker: {workers} trainers on one GPU and one database file. Serve one process "
            "(--workers 1), or use PostgreSQL (LORAFORGE_DATABASE_URL) with a broker (LORAFORGE_BROKER_URL) "
            "and `loraforge worker`"
        )
    if settings.embedded_worker and not settings.uses_broker:
        raise ValidationError(
            f"--workers {workers}: without a broker every API process runs its own embedded worker: "
            f"{workers} trainers on one GPU. Set LORAFORGE_BROKER_URL and run `loraforge worker`, or "
            "LORAFORGE_EMBEDDED_WORKER=false for API-only processes"
        )


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    overrides: dict[str, object] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    settings = load_settings(**overrides)
    check_workers(args.workers, settings)
    taken = port_in_use(settings.host, settings.port)
    if taken is not None:
        print(f"loraforge serve: cannot listen on {settings.host}:{settings.port}: {taken.strerror or taken}"
              f"{_bind_hint(taken)}", file=sys.stderr)
        return 1
    start_checks(settings, "serve")
    key = ensure_key(settings)
    print(
        f"\nloraforge API at {settings.public_url}  (docs: {settings.public_url}/docs)\n"
        f"API key: {key}\n"
        f"  try: curl -H 'x-api-key: {key}' {settings.public_url}/finetune/request/list\n",
        flush=True,
    )
    access_log = not args.no_access_log
    from loraforge.api.http_limits import uvicorn_options

    limits = uvicorn_options(settings)
    if args.workers > 1:
        # Each worker process rebuilds Settings from the environment; pass what the CLI decided.
        os.environ["LORAFORGE_HOST"] = settings.host
        os.environ["LORAFORGE_PORT"] = str(settings.port)
        os.environ["LORAFORGE_PUBLIC_URL"] = settings.public_url
        uvicorn.run(
            "loraforge.api.app:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=args.workers,
            access_log=access_log,
            log_config=None,  # uvicorn's records go through loraforge's handler (loraforge.logs)
            **limits,
        )
        return 0
    from loraforge.api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=access_log,
        log_config=None,
        **limits,
    )
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="run the HTTP API (and the embedded worker)")
    parser.add_argument("--host", help="interface to listen on (default LORAFORGE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default LORAFORGE_PORT or 8000)")
    parser.add_argument("--workers", type=int, default=1,
                        help="uvicorn worker processes (default 1; more than 1 needs PostgreSQL)")
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")
    parser.set_defaults(func=serve)
