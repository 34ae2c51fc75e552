"""Load benchmark of the read endpoints: details and list with 10,000 jobs in PostgreSQL.

Seeds a fresh PostgreSQL database (10,000 jobs over 20 users; the benchmark user owns 500), starts
`loraforge serve` in its own process, and drives it from a second process: `wrk` when installed
(Debian package `wrk`), else an async httpx client in a subprocess. /healthz, which touches no
database, is measured in the same run as the framework's floor, and details/list are reported as
ratios of it, so the figures travel across machines. `--limits both` runs everything twice, with
the HTTP limits of loraforge.api.http_limits on and off (LORAFORGE_HTTP_LIMITS), and reports the
cost of the limits as the ratio on/off of each endpoint's requests/s and of the server's CPU time
per request (steadier on a busy machine: waiting for a core is not counted), and the CPU time of GET /healthz through the protocol and the app in one process, with and
without the limits. Run by hand:

    .venv/bin/python bench/api_load.py [--duration 10] [--connections 32] [--workers 1] [--limits on|off|both] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from loraforge.db.accounts import create_user_with_key
from loraforge.db.base import make_engine, make_sessionmaker
from loraforge.db.migrate import upgrade
from loraforge.db.models import FineTuneJob
from tests.fixtures.databases import create_postgres_database, drop_postgres_database
from tests.support.serving import loraforge_env, wait_healthy

TOTAL_JOBS = 10_000
USERS = 20
BENCH_KEY = "bench-key-" + uuid.uuid4().hex


def seed(url: str) -> list[str]:
    """Create the jobs; returns the ids owned by the benchmark key's user."""
    upgrade(url)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    now = datetime.now(UTC)
    mine: list[str] = []
    with sessionmaker() as session:
        users = [create_user_with_key(session, "bench", BENCH_KEY)[0].id]
        users += [create_user_with_key(session, f"user{i}")[0].id for i in range(USERS - 1)]
        rows = []
        for n in range(TOTAL_JOBS):
            job_id, owner = str(uuid.uuid4()), users[n % USERS]
            if owner == users[0]:
                mine.append(job_id)
            rows.append(
                {
                    "id": job_id,
                    "user_id": owner,
                    "name": f"job-{n}",
                    "data_source_path": f"https://example.com/{n}.zip",
                    "instance_prompt": "a photo of TOK",
                    "trigger_word": "TOK",
                    "base_model": "QWEN",
                    "theme": "QWEN",
                    "machine_type": "NVIDIA_H100",
                    "train_type": "LORA",
                    "segmind_public": False,
                    "advance_parameters": {"steps": 1000, "learning_rate": 0.0004},
                    "status": "AVAILABLE",
                    "slug": f"job-{n}-{job_id[:8]}",
                    "source_type": "PUBLIC_URL",
                    "model_information": {},
                    "created_ts": now - timedelta(seconds=n),
                    "updated_ts": now - timedelta(seconds=n),
                }
            )
        session.bulk_insert_mappings(FineTuneJob.__mapper__, rows)  # type: ignore[arg-type]
        session.commit()
    engine.dispose()
    return mine


def start_server(url: str, port: int, workers: int, data_dir: Path, limits: bool = True) -> subprocess.Popen[bytes]:
    env = loraforge_env(
        LORAFORGE_DATABASE_URL=url,
        LORAFORGE_DATA_DIR=str(data_dir),
        LORAFORGE_API_KEY=BENCH_KEY,
        LORAFORGE_LOG_LEVEL="WARNING",
        LORAFORGE_HTTP_LIMITS="true" if limits else "false",
        # an API node: the embedded worker's background import of torch would count as request CPU
        LORAFORGE_EMBEDDED_WORKER="false",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loraforge",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", process)
    except AssertionError as exc:
        process.kill()
        raise SystemExit(f"the server did not start: {exc}") from None
    return process


WRK_SCRIPT = """
ids = {%s}
counter = 0
request = function()
  counter = counter + 1
  local body = '{"request_id": "' .. ids[(counter %% #ids) + 1] .. '"}'
  return wrk.format("GET", "/finetune/request/details", {["x-api-key"] = "%s",
    ["Content-Type"] = "application/json"}, body)
end
"""


def _ms(text: str) -> float:
    match = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:  # wrk prints e.g. -nan when a percentile has no sample
        return float("nan")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(base: str, path: str, args: argparse.Namespace, script: Path | None) -> dict[str, float]:
    cmd = [
        "wrk",
        "-t1",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "--latency",
        "-H",
        f"x-api-key: {BENCH_KEY}",
    ]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, base + path], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50, p99 = (_ms(m.group(1)) if (m := re.search(rf"{q}%\s+(\S+)", out)) else float("nan") for q in (50, 99))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{path}: {errors.group(1)} error responses under load:\n{out}")
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "requests": total}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` and its children (uvicorn's workers), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # fields[1]: the parent pid
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


async def _httpx_load(
    base: str, kind: str, ids: list[str], seconds: float, connections: int, key: str
) -> dict[str, float]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=connections)
    headers = {"x-api-key": key}  # passed in: this runs in a fresh interpreter with its own BENCH_KEY
    async with httpx.AsyncClient(base_url=base, limits=limits, headers=headers, timeout=30) as client:
        stop = time.monotonic() + seconds

        async def worker(n: int) -> None:
            while time.monotonic() < stop:
                start = time.perf_counter()
                if kind == "details":
                    answer = await client.request(
                        "GET", "/finetune/request/details", json={"request_id": ids[n % len(ids)]}
                    )
                else:
                    answer = await client.get(kind)
                answer.raise_for_status()
                latencies.append((time.perf_counter() - start) * 1000)
                n += connections

        began = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(connections)))
        elapsed = time.monotonic() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
    }


def run_httpx(base: str, kind: str, ids: list[str], args: argparse.Namespace) -> dict[str, float]:
    """The async client runs in its own process so it never shares the server's interpreter."""
    code = (
        f"import asyncio, json, sys; sys.path.insert(0, {str(REPO)!r}); from bench.api_load import _httpx_load;"
        f"print(json.dumps(asyncio.run(_httpx_load({base!r}, {kind!r}, {ids!r}, {args.duration}, "
        f"{args.connections}, {BENCH_KEY!r}))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind}: the load client failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _measure(base: str, client: str, ids: list[str], args: argparse.Namespace,
             script: Path, server_pid: int) -> dict[str, dict[str, float]]:
    """Each endpoint's figures, with the server's CPU µs per request (steadier than req/s on a
    shared machine: it does not count the time the server waited for a core)."""
    results: dict[str, dict[str, float]] = {}
    for name, path in (("healthz", "/healthz"), ("details", "details"), ("list", "/finetune/request/list")):
        cpu = _cpu_seconds(server_pid)
        if client == "wrk":
            lua = script if name == "details" else None
            results[name] = run_wrk(base, "/" if lua else path, args, lua)
        else:
            results[name] = run_httpx(base, path, ids, args)
        served = results[name].get("requests") or results[name]["rps"] * args.duration
        results[name]["cpu_us"] = (_cpu_seconds(server_pid) - cpu) / served * 1e6
    return results


class _NullTransport(asyncio.Transport):
    """A transport that only counts complete responses (their bodies end with b'}')."""

    def __init__(self) -> None:
        super().__init__()
        self.done = 0

    def write(self, data: bytes) -> None:  # type: ignore[override]
        if data.endswith(b"}"):
            self.done += 1

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 2)}.get(name, default)

    def is_closing(self) -> bool:
        return False


async def _protocol_cpu_s(factory: object, app: object, requests: int) -> float:
    """CPU seconds for `requests` GET /healthz through uvicorn's protocol and the app, in-process."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    config = Config(app=app, log_level="warning", access_log=False)  # type: ignore[arg-type]
    config.load()
    protocol = factory(config=config, server_state=ServerState(), app_state={})  # type: ignore[operator]
    transport = _NullTransport()
    protocol.connection_made(transport)
    request = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: wrk\r\nAccept: */*\r\n"
               b"x-api-key: " + BENCH_KEY.encode() + b"\r\n\r\n")
    started = time.process_time()
    for n in range(requests):
        protocol.data_received(request)
        while transport.done <= n:
            await asyncio.sleep(0)
    return time.process_time() - started


def protocol_cost(data_dir: Path, requests: int = 4000, rounds: int = 15) -> tuple[float, float]:
    """(µs of CPU per /healthz without the limits, median ratio with / without).

    CPU time in one process, each run with the limits between two runs without them (the ratio
    is against their mean), the median over `rounds`: unlike requests/s over sockets it barely
    moves when other processes load the machine.
    """
    import functools
    import statistics

    import uvloop
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from loraforge.api.app import create_app
    from loraforge.api.http_limits import HttpLimits, LimitedHttpToolsProtocol
    from loraforge.config import load_settings

    settings = load_settings(data_dir=data_dir)
    app = create_app(settings)
    limited = functools.partial(LimitedHttpToolsProtocol, limits=HttpLimits.from_settings(settings))
    plain, ratios = [], []
    for _ in range(rounds):
        before = uvloop.run(_protocol_cpu_s(HttpToolsProtocol, app, requests))
        guarded = uvloop.run(_protocol_cpu_s(limited, app, requests))
        after = uvloop.run(_protocol_cpu_s(HttpToolsProtocol, app, requests))
        plain += [before, after]
        ratios.append(guarded / ((before + after) / 2))
    return statistics.median(plain) / requests * 1e6, statistics.median(ratios)


def _report(title: str, results: dict[str, dict[str, float]]) -> None:
    floor = results["healthz"]
    print(f"{title}\n{'endpoint':10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU µs/req':>11}   "
          "ratio to /healthz (req/s)")
    for name, r in results.items():
        print(f"{name:10} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['cpu_us']:11.0f}   "
              f"{r['rps'] / floor['rps']:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--client", choices=["auto", "wrk", "httpx"], default="auto")
    parser.add_argument("--limits", choices=["on", "off", "both"], default="on",
                        help="HTTP limits of loraforge serve; both: report their cost as a ratio")
    parser.add_argument("--rounds", type=int, default=1, help="repeat (alternating modes), keep the best")
    args = parser.parse_args()
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")

    url = create_postgres_database()
    port = int(os.environ.get("BENCH_PORT", "0")) or random.randint(20000, 40000)
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        try:
            started = time.monotonic()
            ids = seed(url)
            print(
                f"seeded {TOTAL_JOBS} jobs in {time.monotonic() - started:.1f}s; client={client}, "
                f"connections={args.connections}, duration={args.duration}s, workers={args.workers}"
            )
            script = Path(tmp) / "details.lua"
            script.write_text(WRK_SCRIPT % (", ".join(f'"{i}"' for i in ids), BENCH_KEY))
            modes = {"on": [True], "off": [False], "both": [True, False]}[args.limits]
            by_mode: dict[bool, dict[str, dict[str, float]]] = {}
            for round_ in range(args.rounds):  # alternated, best kept: a busy machine only slows runs down
                for limits in modes:
                    server = start_server(url, port, args.workers, Path(tmp), limits)
                    measured = _measure(base, client, ids, args, script, server.pid)
                    server.terminate()
                    server.wait(timeout=20)
                    server = None
                    _report(f"round {round_ + 1}, HTTP limits {'on' if limits else 'off'}", measured)
                    best = by_mode.setdefault(limits, measured)
                    for name, figures in measured.items():
                        best[name]["rps"] = max(best[name]["rps"], figures["rps"])
                        best[name]["cpu_us"] = min(best[name]["cpu_us"], figures["cpu_us"])
            if len(by_mode) == 2:
                per_request, ratio = protocol_cost(Path(tmp) / "protocol")
                print(f"in-process CPU per GET /healthz: {per_request:.0f} µs without the limits; "
                      f"with / without (median): {ratio:.3f}")
                print("cost of the limits, best req/s with them on / off: " + ", ".join(
                    f"{name} {by_mode[True][name]['rps'] / by_mode[False][name]['rps']:.3f}"
                    for name in by_mode[True]))
                print("cost of the limits, least server CPU per request with them on / off: " + ", ".join(
                    f"{name} {by_mode[True][name]['cpu_us'] / by_mode[False][name]['cpu_us']:.3f}"
                    for name in by_mode[True]))
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=20)
            drop_postgres_database(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
