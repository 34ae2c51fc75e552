"""The deployment checks of `loraforge doctor`, also run by `serve` and `worker` at start.

Each check returns a Check: its name, whether it passed, what was found and, when it failed, what
to do and whether the failure is fatal (the process cannot do its job: no database, storage or
broker for a worker, no weights for a process that trains, a full disk). `run_checks(settings, role)` runs the
checks that matter for `role`: "doctor" runs them all (and, on a data dir not made yet, makes
nothing: it says what `serve` will create), "serve" and "worker" skip the public-URL
probe (the server is not listening yet) and, for a process that does not train, the GPU and
weights checks. Nothing here contacts the model hub: weights are checked in the local cache only.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loraforge.config import Settings
from loraforge.errors import ConfigError
from loraforge.families.registry import WEIGHTS

GIB = 1024**3
MIN_FREE_GIB = 1.0  # below this nothing can be written: fatal
LOW_FREE_GIB = 50.0  # a real base model's cache, checkpoints and LoRAs: warn below this
# Published bf16 sizes of the whole pipelines (docs/operate/gpus.md), each family's own.
PIPELINE_GB = {name: family.published_gb for name, family in WEIGHTS.items()}


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    fatal: bool = False

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        text = f"{mark} {self.name}: {self.detail}"
        return f"{text}\n    -> {self.fix}" if self.fix and not self.ok else text


def check_gpu() -> Check:
    import torch

    cuda = torch.version.cuda
    if not torch.cuda.is_available():
        build = f"CUDA {cuda} build, but no GPU is visible" if cuda else "a CPU-only build of torch"
        return Check("GPU", False, f"torch {torch.__version__}: {build}; training runs on the CPU "
                     "(fine for the tiny demo models only)",
                     "install a CUDA build: pip install torch --index-url https://download.pytorch.org/whl/cu128 "
                     "(docs/operate/gpus.md); check nvidia-smi")
    props = torch.cuda.get_device_properties(0)
    return Check("GPU", True, f"{props.name}, {props.total_memory / GIB:.0f} GiB, torch {torch.__version__} "
                 f"(CUDA {cuda}), {torch.cuda.device_count()} device(s)")


def check_weights(settings: Settings, fatal: bool) -> list[Check]:
    from loraforge.weights import configured, missing_weights, real_model_id

    checks = []
    for name, ref in configured(settings).items():
        title = f"{name} weights"
        if not ref:
            checks.append(Check(title, True, f"tiny demo model (set LORAFORGE_MODEL_{name}={real_model_id(name)} "
                                "for real training)"))
            continue
        problem = missing_weights(ref)
        if problem is None:
            checks.append(Check(title, True, f"{ref} is complete on this disk"))
            continue
        checks.append(Check(
            title, False, problem,
            f"run `loraforge models pull {name}` (~{PIPELINE_GB[name]} GB; gated models need HF_TOKEN and "
            "the license accepted on the model's hub page)", fatal=fatal,
        ))
    return checks


def nearest_folder(path: Path) -> Path:
    """`path` if it exists, else its nearest existing parent (what a fresh data dir will be made in)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(settings: Settings) -> Check:
    data_dir = settings.data_dir.resolve()
    free = shutil.disk_usage(nearest_folder(data_dir)).free / GIB
    where = f"{free:.1f} GiB free in {data_dir}"
    if not data_dir.exists():  # checked, not made: doctor changes nothing
        where += f" (not made yet; on the disk of {nearest_folder(data_dir)})"
    if free < MIN_FREE_GIB:
        return Check("disk", False, where, "free space or point LORAFORGE_DATA_DIR at a larger disk", fatal=True)
    real = [name for name, family in WEIGHTS.items() if family.weights_ref(settings)]
    if real and free < LOW_FREE_GIB:
        return Check("disk", False, where, f"real weights ({', '.join(real)}) want {LOW_FREE_GIB:.0f} GiB or "
                     "more for the hub cache, work folders and checkpoints")
    return Check("disk", True, where)


def check_database(settings: Settings, migrates: bool = False) -> Check:
    from sqlalchemy.exc import SQLAlchemyError

    from loraforge.db.migrate import database_revision, describe_url, head_revision

    url = settings.resolved_database_url
    shown = describe_url(url)
    try:
        revision = database_revision(url)
    except SQLAlchemyError as exc:
        return Check("database", False, f"{shown} unreachable: {str(getattr(exc, 'orig', exc)).strip()[:200]}",
                     "start the database or fix LORAFORGE_DATABASE_URL", fatal=True)
    head = head_revision()
    if revision == head:
        return Check("database", True, f"{shown}, migrated (revision {head})")
    if migrates:  # serve and worker apply the migrations right after the checks
        return Check("database", True, f"{shown}, to be migrated to revision {head} now")
    if revision is None and not database_exists(url):
        return Check("database", False, f"no database yet: {shown} does not exist",
                     "`loraforge serve` creates and migrates it at start (or set LORAFORGE_DATABASE_URL / "
                     "LORAFORGE_DATA_DIR to the server's)")
    found = "no loraforge tables" if revision is None else f"at revision {revision}, this loraforge needs {head}"
    return Check("database", False, f"{shown}: {found}", "`loraforge serve` applies the migrations at start")


def database_exists(url: str) -> bool:
    """False only for a SQLite file that is not there (a server database is checked by connecting)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return parsed.get_backend_name() != "sqlite" or Path(parsed.database or "").is_file()


def check_storage(settings: Settings) -> Check:
    from loraforge.health import probe_storage
    from loraforge.storage import local_root, open_store

    try:
        root = local_root(settings)
        if root is not None and not root.exists():
            return _storage_to_make(settings, root)  # opening it would make the folder and a signing key
        store = open_store(settings)
    except Exception as exc:  # noqa: BLE001 - any failure to open the store is the finding
        return Check("storage", False, f"{settings.resolved_storage_url}: {exc}",
                     "fix LORAFORGE_STORAGE_URL / LORAFORGE_S3_* or the credentials", fatal=True)
    problem = probe_storage(store, write=True)
    if problem:
        return Check("storage", False, f"{settings.resolved_storage_url}: {problem}",
                     "fix permissions, credentials or LORAFORGE_STORAGE_URL", fatal=True)
    return Check("storage", True, f"{settings.resolved_storage_url} is writable")


def _storage_to_make(settings: Settings, root: Path) -> Check:
    """A local store not made yet: whether `loraforge serve` will be able to make it."""
    parent = nearest_folder(root)
    if not os.access(parent, os.W_OK | os.X_OK):
        return Check("storage", False, f"{settings.resolved_storage_url} does not exist and {parent} is not "
                     "writable", "fix permissions or LORAFORGE_STORAGE_URL / LORAFORGE_DATA_DIR", fatal=True)
    return Check("storage", True, f"{settings.resolved_storage_url} not made yet; `loraforge serve` makes it "
                 f"({parent} is writable)")


def check_broker(settings: Settings, *, fatal: bool = True) -> Check:
    """Whether the broker answers; `fatal` for a worker, which has nothing to do without one.

    An API process starts anyway: submits are kept in the database and published once the
    broker is back (jobs.publish and the requeue sweep), and /readyz reports it meanwhile.
    """
    from loraforge.health import probe_broker

    if not settings.uses_broker:
        return Check("broker", True, "none (the embedded worker trains inside `loraforge serve`)")
    problem = probe_broker(settings.broker_url)
    if problem:
        return Check("broker", False, problem, "start Redis/RabbitMQ or fix LORAFORGE_BROKER_URL", fatal=fatal)
    return Check("broker", True, f"{settings.broker_url.split('@')[-1]} answers")


def check_public_url(settings: Settings) -> Check:
    import httpx

    url = f"{settings.public_url}/healthz"
    try:
        answer = httpx.get(url, timeout=3, follow_redirects=False)
        if answer.status_code == 200:
            return Check("public URL", True, f"{url} answers from this machine")
        problem = f"{url} answered HTTP {answer.status_code}"
    except httpx.HTTPError as exc:
        problem = f"{url} unreachable ({type(exc).__name__})"
    return Check("public URL", False, problem,
                 "start `loraforge serve`; links handed out carry LORAFORGE_PUBLIC_URL, so it must be an "
                 "address clients (and this machine) can reach")


def start_checks(settings: Settings, role: str) -> None:
    """Run the checks of `role` at start; log them and raise ConfigError naming every fatal one."""
    import logging

    from loraforge.config import start_warnings

    logger = logging.getLogger("loraforge.doctor")
    for warning in start_warnings(settings):
        logger.warning("%s", warning)
    checks = run_checks(settings, role)
    for check in checks:
        logger.log(logging.INFO if check.ok else logging.WARNING, "%s", check.line())
    fatal = [c for c in checks if c.fatal and not c.ok]
    if fatal:
        raise ConfigError(f"loraforge {role} cannot start:\n" + "\n".join(c.line() for c in fatal))


def run_checks(settings: Settings, role: str = "doctor") -> list[Check]:
    """The checks for `role` ("doctor", "serve" or "worker"), in a fixed order."""
    trains = role == "worker" or (role == "serve" and settings.embedded_worker and not settings.uses_broker)
    steps: list[Callable[[], Check | list[Check]]] = []
    if role in ("doctor", "worker"):  # serve skips it: importing torch would delay the API's start
        steps.append(check_gpu)
    if role == "doctor" or trains:
        steps.append(lambda: check_weights(settings, fatal=trains))
    steps += [lambda: check_disk(settings), lambda: check_database(settings, migrates=role != "doctor"),
              lambda: check_storage(settings), lambda: check_broker(settings, fatal=role != "serve")]
    if role == "doctor":
        steps.append(lambda: check_public_url(settings))
    checks: list[Check] = []
    for step in steps:
        found = step()
        checks.extend(found if isinstance(found, list) else [found])
    return checks
