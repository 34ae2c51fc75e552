"""The one Settings object of loraforge, read from the environment (prefix `LORAFORGE_`).

Nothing else in the package reads `os.environ`: `create_app(settings)`, the worker and the CLI
each receive a Settings instance and pass it down. Unsafe or contradictory values are refused
here, at start, with a message naming the variable, so that a misconfigured service never half
starts.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loraforge.errors import ConfigError
from loraforge.hints import closest

MB = 1024 * 1024
_DEVICE = re.compile(r"cpu|cuda(:\d{1,2})?")
# Standard Webhooks' retry schedule (https://www.standardwebhooks.com/, "Retry schedule"):
# immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_WEBHOOK_SCHEDULE = "0,5,300,1800,7200,18000,36000,36000"


class Settings(BaseSettings):
    """Every knob of the service; docs/reference/configuration.md lists them all."""

    # Each field's docstring is its description: docs/reference/configuration.md is generated from them.
    model_config = SettingsConfigDict(env_prefix="LORAFORGE_", extra="ignore", use_attribute_docstrings=True)

    data_dir: Path = Path("./data")
    """SQLite file, local store, demo key, tiny models, work folders"""
    database_url: str = ""  # default: sqlite file in data_dir
    """the database; empty: a SQLite file in DATA_DIR. Or postgresql+psycopg://user:pass@host/db. Migrations
    run at every start"""
    storage_url: str = ""  # default: local disk in data_dir/storage; or s3://bucket/prefix
    """the object store; empty: local disk in DATA_DIR/storage. Or file:///path, or s3://bucket/prefix"""
    s3_endpoint_url: str | None = None
    """any S3-compatible endpoint (path-style); unset: AWS"""
    s3_region: str = "us-east-1"
    """the S3 region"""
    # optional: without them boto3's standard chain (AWS_ACCESS_KEY_ID, profiles, roles) is used
    s3_access_key_id: str | None = None
    """S3 credentials, with S3_SECRET_ACCESS_KEY; unset: boto3's standard chain (AWS_ACCESS_KEY_ID, profiles,
    roles)"""
    s3_secret_access_key: SecretStr | None = None
    """the secret of S3_ACCESS_KEY_ID"""
    broker_url: str = ""  # default: embedded in-process worker
    """empty: the embedded in-process worker; redis://... or amqp://... for a worker fleet (needs PostgreSQL)"""
    public_url: str = "http://127.0.0.1:8000"
    """base of the links the API hands out; unset: http://HOST:PORT"""
    host: str = "127.0.0.1"
    """where `loraforge serve` listens (--host)"""
    port: int = Field(8000, ge=1, le=65535)
    """where `loraforge serve` listens (--port); a port already in use stops it at once"""
    api_key: str | None = None
    """a key (8+ characters) created at start"""
    secret_key: str | None = None  # signs local pre-signed URLs; default: kept in data_dir
    """signs local pre-signed links (16+ characters); unset: one kept in DATA_DIR/secret.key"""
    model_qwen: str | None = None  # hub id or local path; default: tiny demo model
    """Qwen-Image weights: a hub id or a local diffusers folder; unset: the tiny demo model"""
    model_flux: str | None = None
    """FLUX.1-dev weights: a hub id or a local diffusers folder; unset: the tiny demo model"""
    allow_private_urls: bool = False
    """let dataset and webhook URLs reach private addresses (demos, tests)"""
    max_upload_bytes: int = Field(100 * MB, gt=0)
    """cap on a dataset ZIP (upload or URL)"""
    max_request_bytes: int = Field(1 * MB, gt=0)
    """cap on an API request body (413 above it)"""
    download_timeout_s: float = Field(60.0, gt=0)
    """total deadline of one dataset download or HEAD probe"""
    presign_expiry_s: int = Field(3600, gt=0, le=7 * 24 * 3600)
    """life of a pre-signed upload link"""
    lease_seconds: int = Field(300, ge=10)
    """a worker's claim on a job, renewed while it runs; stale jobs are looked for this often"""
    checkpoint_every: int = Field(250, ge=1)
    """training steps between checkpoints"""
    embedded_worker: bool = True  # without a broker: train in this process (false: an API-only node)
    """without a broker, train in the API process; false: an API-only node whose jobs wait for a process that
    trains"""
    job_timeout_s: int = Field(24 * 3600, ge=1)  # the longest job; broker timeouts exceed it
    """the longest a job may run; past it its process is killed and the job ends FAILED"""
    job_max_attempts: int = Field(3, ge=1, le=20)  # child processes per job before it ends FAILED
    """times a job's process is started before a crashing job ends FAILED"""
    progress_interval_s: float = Field(1.0, ge=0)  # progress rows are written at most this often
    """how often progress is written"""
    # Seconds before each delivery attempt of a webhook message (Standard Webhooks' schedule, jittered).
    webhook_retry_schedule: str = DEFAULT_WEBHOOK_SCHEDULE
    """seconds before each delivery attempt (jittered by 10 %); replaces the whole schedule"""
    webhook_timeout_s: float = Field(10.0, gt=0, le=120)  # one attempt, connect to last byte
    """one delivery attempt, connect to last byte"""
    webhook_senders: int = Field(8, ge=1, le=64)  # concurrent deliveries per process
    """deliveries in flight per process (a fixed pool)"""
    webhook_poll_s: float = Field(1.0, gt=0, le=60)  # how often a dispatcher looks for due messages
    """how often each dispatcher looks for due messages"""
    webhook_disable_after_s: int = Field(5 * 24 * 3600, ge=1)  # failing this long in a row disables it
    """a webhook failing this long in a row is disabled"""
    webhook_log_days: int = Field(30, ge=1)  # finished messages and attempts are kept this long
    """finished messages and attempts are kept this long"""
    requeue_after_s: int = Field(300, ge=1)  # a REQUESTED job no worker took is published again
    """a REQUESTED job no worker took in this long is published again (the wait doubles per try, up to 16x)"""
    inference_cache_size: int = Field(4, ge=1)  # LoRAs kept loaded per base pipeline
    """LoRAs kept loaded per base model"""
    inference_max_side: int = Field(2048, ge=64)  # width/height cap of /v1/{slug}
    """cap on a generation's width and height"""
    inference_max_steps: int = Field(100, ge=1)
    """cap on a generation's steps"""
    # width x height x steps of one generation: 1024^2 x 50 (Qwen-Image's default) fits; 2048^2 x 100 not
    inference_max_pixel_steps: int = Field(1024 * 1024 * 50, ge=64 * 64 * 2)
    """cap on width x height x steps of one generation (400 above it)"""
    inference_queue_size: int = Field(8, ge=1, le=10_000)  # generations waiting; more get 503
    """generations waiting per API process; more get 503 with Retry-After"""
    inference_wait_s: float = Field(300.0, gt=0)  # longest a queued generation waits for the device
    """longest a queued generation waits for the device (then 503)"""
    inference_device: str | None = None  # e.g. cuda:1; default: the device training uses
    """cpu, cuda or cuda:N: serve on another GPU than the one that trains; unset: the training device"""
    gpu_memory_gb: float | None = Field(None, gt=0)  # the runner's budget (10^9 bytes); default: all
    """the budget in GB (10^9 bytes) of the inference runner and of each job's memory preflight; unset: the
    device's total memory"""
    # HTTP limits of `loraforge serve` (loraforge.api.http_limits); http_limits=false is for benchmarks
    http_limits: bool = True
    """false turns off serve's HTTP limits (headers, deadlines, connections); for bench/api_load.py --limits
    both only"""
    max_header_bytes: int = Field(32 * 1024, ge=1024)
    """request line + headers; over it: 431"""
    max_headers: int = Field(100, ge=10)
    """header count; over it: 431"""
    header_timeout_s: float = Field(10.0, gt=0)
    """the whole request head must arrive within this; else 408"""
    body_timeout_s: float = Field(30.0, gt=0)
    """a body may stall this long at most, and after that must average 16 KiB/s; else 408"""
    keep_alive_s: float = Field(5.0, gt=0)
    """idle keep-alive connections are closed after this"""
    max_connections: int = Field(1000, ge=1)
    """open connections (and running requests) per process; excess: 503 with Retry-After"""
    # per-key quotas (loraforge.usecases.quotas) and upload slot expiry (loraforge.usecases.upload_expiry)
    quota_active_jobs: int = Field(10, ge=1)
    """per key: fine-tune requests not yet AVAILABLE / FAILED / CANCELLED (429 above it)"""
    quota_pending_uploads: int = Field(10, ge=1)
    """per key: upload slots reserved and not yet used by a submit"""
    quota_upload_bytes: int = Field(10 * 1024 * MB, ge=1)
    """per key: bytes of stored uploads (local store: enforced while the PUT streams; S3: counted once the
    upload sweep or a submit measures it)"""
    quota_generations: int = Field(4, ge=1)
    """per key: /v1/{slug} requests in flight per API process"""
    quota_probes: int = Field(2, ge=1)
    """per key: HEAD probes of foreign dataset URLs in flight per API process"""
    upload_expiry_s: int = Field(24 * 3600, ge=1)
    """an upload slot no submit used is deleted, row and file, after this (swept every quarter of it, at most
    every 10 minutes; the sweep also measures uploads PUT straight to S3 and deletes any over MAX_UPLOAD_BYTES,
    which S3 cannot refuse itself); at least PRESIGN_EXPIRY_S, so no link outlives its slot"""
    machine_type: str = "NVIDIA_H100"
    """the machine_type label accepted and reported; a worker takes jobs of its own"""
    base_weights: Literal["bf16", "fp8", "nf4"] = "bf16"  # how a worker loads the base transformer
    """how a worker loads the base transformer: bf16, or fp8 / nf4 for small GPUs"""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """level of loraforge's own loggers; libraries log warnings only"""
    log_format: Literal["text", "json"] = "text"
    """json: one JSON object a line (time, level, logger, message, and job_id while a job is worked on)"""

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", "base_weights", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("LORAFORGE_PUBLIC_URL must be an http(s) URL such as http://host:8000")
        return value.rstrip("/")

    @field_validator("storage_url")
    @classmethod
    def _storage_scheme(cls, value: str) -> str:
        if value and urlparse(value).scheme not in ("s3", "file"):
            raise ValueError("LORAFORGE_STORAGE_URL must be s3://bucket/prefix or file:///path")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        allowed = ("redis", "rediss", "amqp", "amqps", "pyamqp")
        if value and urlparse(value).scheme not in allowed:
            raise ValueError("LORAFORGE_BROKER_URL must be redis://... or amqp://... (or empty)")
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule_is_seconds(cls, value: str) -> str:
        parse_schedule(value)
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("LORAFORGE_SECRET_KEY must be at least 16 characters")
        return value

    @field_validator("api_key")
    @classmethod
    def _api_key_long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 8:
            raise ValueError("LORAFORGE_API_KEY must be at least 8 characters")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.upload_expiry_s < self.presign_expiry_s:
            # else a PUT through a still-valid link could land after its slot was swept: an orphan file
            raise ValueError(
                f"LORAFORGE_UPLOAD_EXPIRY_S ({self.upload_expiry_s}) must be at least "
                f"LORAFORGE_PRESIGN_EXPIRY_S ({self.presign_expiry_s}), the life of an upload link"
            )
        if self.storage_url.startswith("s3://") and not urlparse(self.storage_url).netloc:
            raise ValueError("LORAFORGE_STORAGE_URL s3://... needs a bucket name")
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key):
            raise ValueError(
                "set both LORAFORGE_S3_ACCESS_KEY_ID and LORAFORGE_S3_SECRET_ACCESS_KEY, or neither "
                "(then boto3's standard chain is used)"
            )
        if self.inference_device is not None and not _DEVICE.fullmatch(self.inference_device):
            raise ValueError("LORAFORGE_INFERENCE_DEVICE must be cpu, cuda or cuda:N (e.g. cuda:1)")
        if self.uses_broker and self.resolved_database_url.startswith("sqlite"):
            # The default (empty) database is a SQLite file too: workers on other hosts never see it.
            shown = self.database_url or f"the SQLite default in {self.data_dir}"
            raise ValueError(
                f"a worker fleet (LORAFORGE_BROKER_URL) needs a shared database, but "
                f"LORAFORGE_DATABASE_URL is {shown}: set LORAFORGE_DATABASE_URL to "
                "postgresql+psycopg://..., or unset LORAFORGE_BROKER_URL to use the embedded worker"
            )
        return self

    @model_validator(mode="after")
    def _derive_public_url(self) -> Settings:
        """Unset LORAFORGE_PUBLIC_URL means where `serve` listens: http://HOST:PORT (loopback for
        0.0.0.0). Stored without marking the field as set, so the start warning can tell."""
        if "public_url" not in self.model_fields_set:
            host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
            host = f"[{host}]" if ":" in host else host
            self.__dict__["public_url"] = f"http://{host}:{self.port}"
        return self

    @property
    def webhook_schedule(self) -> tuple[float, ...]:
        """Delays in seconds before attempt 1, 2, ... of a webhook message (see parse_schedule)."""
        return parse_schedule(self.webhook_retry_schedule)

    @property
    def uses_broker(self) -> bool:
        return bool(self.broker_url)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'loraforge.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or f"file://{(self.data_dir / 'storage').resolve()}"

    @property
    def tiny_models_dir(self) -> Path:
        return (self.data_dir / "tiny-models").resolve()

    def signing_secret(self) -> bytes:
        """The key for HMAC-signed local URLs: the setting, else one kept in data_dir."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_urlsafe(32))
            tmp.replace(path)
        return path.read_text().strip().encode()


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each LORAFORGE_* variable that is no setting, naming the closest real one.

    Pydantic ignores unknown variables (`extra="ignore"`), so a typo such as
    LORAFORGE_MODELS_FLUX would otherwise silently leave the default in place.
    """
    env = os.environ if environ is None else environ
    known = {f"LORAFORGE_{name.upper()}" for name in Settings.model_fields}
    warnings = []
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith("LORAFORGE_") or upper in known or upper.startswith(IGNORED_PREFIXES):
            continue
        # compare what follows the prefix: the shared LORAFORGE_ would make any two names look alike
        close = closest(upper.removeprefix("LORAFORGE_"), [k.removeprefix("LORAFORGE_") for k in known])
        hint = f"; did you mean LORAFORGE_{close}?" if close else "; see docs/reference/configuration.md"
        warnings.append(f"{name} is not a loraforge setting and is ignored{hint}")
    return warnings


# Variables of the test suite and benchmarks, not of the service.
IGNORED_PREFIXES = ("LORAFORGE_TEST_", "LORAFORGE_BENCH_", "LORAFORGE_SCREENSHOTS")


def public_url_warning(settings: Settings) -> str | None:
    """A warning when the server listens on every interface but links carry a loopback URL."""
    if settings.host not in ("0.0.0.0", "::", "") or "public_url" in settings.model_fields_set:
        return None
    return (
        f"LORAFORGE_HOST={settings.host} listens on every interface, but links handed out (pre-signed "
        f"URLs, downloads, inference_api_url) carry http://127.0.0.1:{settings.port}, which other "
        f"machines cannot reach: set LORAFORGE_PUBLIC_URL=http://THIS-HOST:{settings.port}"
    )


def start_warnings(settings: Settings) -> list[str]:
    """Everything suspicious but not fatal about the configuration, for serve and worker to log."""
    found = unknown_variables()
    public = public_url_warning(settings)
    if public:
        found.append(public)
    return found


def parse_schedule(text: str) -> tuple[float, ...]:
    """'0,5,300' -> (0.0, 5.0, 300.0): 1 to 20 non-negative seconds; ValueError otherwise."""
    try:
        delays = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"must be comma-separated seconds such as {DEFAULT_WEBHOOK_SCHEDULE}, got {text!r}") from None
    if not 1 <= len(delays) <= 20 or any(not 0 <= d <= 7 * 24 * 3600 for d in delays):
        raise ValueError("must list 1 to 20 delays, each between 0 and 604800 seconds")
    return delays


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment plus overrides; a bad value raises ConfigError."""
    from pydantic import ValidationError as PydanticValidationError

    try:
        return Settings(**overrides)
    except PydanticValidationError as exc:
        problems = "; ".join(_config_problem(err) for err in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None


def _config_problem(err: Any) -> str:
    """One pydantic error as `LORAFORGE_NAME: what is wrong`; a whole-settings check names its own variables."""
    message = str(err["msg"]).removeprefix("Value error, ")
    name = ".".join(str(p) for p in err["loc"]).upper()
    return f"LORAFORGE_{name}: {message}" if name else message
