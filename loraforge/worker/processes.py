"""The parent side of a job's child process: start it, read its messages, stop it, leave nothing behind.

`ChildProcess.start(task, work_dir)` runs `python -m loraforge.worker.child.main work_dir/task.json` in a
new session (so the child and anything it starts form one process group), or `SparePool.take`
hands the task to a child started ahead with its imports done, once its `ready` message shows it
runs this worker's code (the version handshake; see SparePool). Its stdout and stderr go to
`work_dir/child.log`, commands to its stdin (`stop`, `ack STEP`, `deploy PATH`) and JSON-line
messages back on a dedicated pipe (both typed in worker/child/protocol.py). `messages(timeout)`
yields each message as its dataclass, or None
when nothing came within `timeout` seconds so the caller can check its cancel flag, lease and
time limit. `stop()` asks politely (stdin `stop`), then SIGTERM to the group after a grace period,
then SIGKILL; `kill()` goes straight to SIGKILL. `work_dir/worker.json` names the worker and
`work_dir/child.pid` the child (pid and start time each), so `end_leftovers(work_root)` can find
the children of a parent that died (on a restart) and end them without touching another live
worker's child.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

from loraforge.worker.child import protocol

logger = logging.getLogger(__name__)

STOP_GRACE_S = 5.0  # after `stop` on stdin: the child stops at its next step boundary
TERM_GRACE_S = 3.0  # after SIGTERM to the group, before SIGKILL
# A spare still importing is waited for: a fresh child would spend as long on the same imports.
SPARE_READY_S = 120.0
PIDFILE = "child.pid"
WORKER_FILE = "worker.json"
LOG = "child.log"


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None if gone.

    Together with the pid it names one process: a pid reused later has another start time.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    return stat.rsplit(")", 1)[1].split()[19]


def describe_exit(returncode: int) -> str:
    """Plain words for a child's exit status (negative: killed by that signal)."""
    if returncode < 0:
        sig = -returncode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = {
            "SIGKILL": " (sent by the kernel's out-of-memory killer when the host runs out of memory, "
                       "or by an operator)",
            "SIGSEGV": " (a segmentation fault in native code: a driver, CUDA or library crash)",
            "SIGBUS": " (a bus error: often a truncated memory-mapped weights file)",
            "SIGABRT": " (aborted by native code, e.g. a failed CUDA assertion)",
        }.get(name, "")
        return f"killed by {name}{hint}"
    return f"exited with code {returncode}"


class ChildProcess:
    """One running child; use as a context manager so it is ended on every way out."""

    def __init__(self, proc: subprocess.Popen[bytes], pipe_fd: int, work_dir: Path) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.work_dir = work_dir
        self._pipe_fd = pipe_fd
        self._buffer = b""
        self._eof = False

    @classmethod
    def spawn(cls, work_dir: Path, args: list[str]) -> ChildProcess:
        """Start `python -m loraforge.worker.child.main --pipe-fd N ARGS` in its own session, logging to work_dir."""
        work_dir.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        with (work_dir / LOG).open("ab") as log:
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "loraforge.worker.child.main", "--pipe-fd", str(write_fd), *args],
                    stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,), start_new_session=True, close_fds=True,
                )
            except BaseException:
                os.close(read_fd)
                raise
            finally:
                os.close(write_fd)  # the child holds the only write end: its exit is our EOF
        os.set_blocking(read_fd, False)
        child = cls(proc, read_fd, work_dir)
        child._write_pidfile()
        return child

    @classmethod
    def start(cls, task: dict[str, Any], work_dir: Path) -> ChildProcess:
        """A fresh child for `task`: its imports are paid now (see SparePool for a warm one)."""
        work_dir.mkdir(parents=True, exist_ok=True)
        task_path = work_dir / "task.json"
        task_path.write_text(json.dumps(task))
        child = cls.spawn(work_dir, [str(task_path)])
        logger.info("started child %d for %s", child.pid, work_dir.name)
        return child

    def assign(self, task: dict[str, Any], work_dir: Path) -> bool:
        """Give a spare child (started with `--spare`) its task; False if it is no longer there."""
        if self.proc.poll() is not None:
            return False
        work_dir.mkdir(parents=True, exist_ok=True)
        task_path = work_dir / "task.json"
        task_path.write_text(json.dumps(task))
        spare_dir, self.work_dir = self.work_dir, work_dir
        self._write_pidfile()
        if not self.send(protocol.Task(task_path)):
            self.work_dir = spare_dir
            (work_dir / PIDFILE).unlink(missing_ok=True)
            return False
        shutil.rmtree(spare_dir, ignore_errors=True)
        logger.info("child %d (warm spare) took %s", self.pid, work_dir.name)
        return True

    def _write_pidfile(self) -> None:
        record = {"pid": self.pid, "start": start_time(self.pid)}
        tmp = self.work_dir / f"{PIDFILE}.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(self.work_dir / PIDFILE)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    # -- talking to it -------------------------------------------------------------------------

    def send(self, command: protocol.Command) -> bool:
        """Write one command to the child's stdin; False if it is no longer listening."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(protocol.encode_command(command))
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False

    def messages(self, timeout: float) -> Iterator[protocol.Message | None]:
        """Each message the child sends, or None after `timeout` s of silence; ends at the pipe's EOF.

        Raises protocol.Malformed for a known message with a field missing or of the wrong type
        (the job then fails with an internal error); other lines that are no message are logged and
        skipped.
        """
        selector = selectors.DefaultSelector()
        selector.register(self._pipe_fd, selectors.EVENT_READ)
        try:
            while True:
                line = self._next_line()
                if line is not None:
                    yield line
                    continue
                if self._eof:
                    return
                if not selector.select(timeout):
                    yield None
                    continue
                self._fill()
        finally:
            selector.close()

    def wait_ready(self, timeout: float) -> str | None:
        """Wait for a spare's `ready` message (its imports are done) and return the code version it
        carries ("unknown" from a child too old to send one); None if it did not come in time."""
        deadline = time.monotonic() + timeout
        for message in self.messages(min(timeout, 1.0)):
            if isinstance(message, protocol.Ready):
                return message.version
            if time.monotonic() > deadline:
                return None
        return None

    def _fill(self) -> None:
        try:
            chunk = os.read(self._pipe_fd, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self._eof = True
        self._buffer += chunk

    def _next_line(self) -> protocol.Message | None:
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            try:
                return protocol.decode_message(raw)
            except protocol.NotAMessage as exc:
                logger.warning("child %d sent %s: %r", self.pid, exc, raw[:200])
            except protocol.UnknownKind as exc:  # a newer child's: an older worker reads on
                logger.warning("child %d: no handler for child message %r; ignored", self.pid, exc.kind)
        return None

    # -- ending it -----------------------------------------------------------------------------

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int:
        """Ask the child to stop at its next step; SIGTERM the group after a grace, then SIGKILL."""
        self.send(protocol.Stop())
        code = self.wait(STOP_GRACE_S)
        if code is None:
            logger.info("child %d did not stop in %.0fs; sending SIGTERM", self.pid, STOP_GRACE_S)
            self._signal_group(signal.SIGTERM)
            code = self.wait(TERM_GRACE_S)
        if code is None:
            return self.kill()
        self._signal_group(signal.SIGKILL)  # anything it started dies with it
        self._close()
        return code

    def kill(self) -> int:
        """SIGKILL the whole group now and reap the child; safe to call more than once."""
        self._signal_group(signal.SIGKILL)
        code = self.proc.wait()
        self._close()
        return code

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pid, sig)  # the child leads its own session: its pgid is its pid
        except (ProcessLookupError, PermissionError):
            pass

    def _close(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if self._pipe_fd >= 0:
            os.close(self._pipe_fd)
            self._pipe_fd = -1
        (self.work_dir / PIDFILE).unlink(missing_ok=True)

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.work_dir, lines)


class SparePool:
    """One child started ahead of the next job, its heavy imports done, waiting for a task.

    A job then pays no interpreter start and no torch/diffusers/peft import (seconds on a busy
    host). `refill()` starts the spare; call it from the worker's own long-lived thread (the child
    is killed when the thread that started it ends: PR_SET_PDEATHSIG). `take(task, work_dir)`
    hands the task to the spare, or starts a fresh child when there is none. The spare touches no
    GPU: it has imported the libraries and nothing else.

    A spare imports the code on disk when it starts, which may be long before its job. So the pool
    keeps `version`, the code version of this worker (jobs.child.code_version, taken when the pool
    is made), and `take` waits for the spare's `ready` message and its version: the spare gets the
    job only if it runs the code this worker runs and that code is still what is on disk (what a
    fresh child would import). Otherwise (an upgrade or a `git pull` while the worker runs) the
    spare is ended with a warning and the job goes to a fresh child; while the code on disk differs
    from the worker's own, no spare is started (it would be refused) and the warning says to
    restart the worker.
    """

    def __init__(self, work_root: Path, code_root: Path | None = None) -> None:
        from loraforge.worker.child.main import PACKAGE_ROOT, code_version

        self.work_root = work_root
        self.code_root = code_root or PACKAGE_ROOT  # the package a child of this worker imports
        self.version = code_version(self.code_root)
        self._spare: ChildProcess | None = None
        self._lock = threading.Lock()
        self._warned: str | None = None  # the changed disk version already warned about

    def refill(self) -> None:
        """Start the spare unless one is waiting, or the code on disk is no longer this worker's."""
        if not self._disk_matches():
            return
        with self._lock:
            if self._spare is None or self._spare.proc.poll() is not None:
                spare_dir = claim_work_dir(self.work_root / f"spare-{os.getpid()}-{time.monotonic_ns()}")
                self._spare = ChildProcess.spawn(spare_dir, ["--spare"])

    def take(self, task: dict[str, Any], work_dir: Path) -> ChildProcess:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            accepted = False
            try:  # a spare not handed the job is always ended: it may hold gigabytes of imports
                accepted = self._accepts(spare) and spare.assign(task, work_dir)
            finally:
                if not accepted:
                    _discard(spare)
            if accepted:
                return spare
        return ChildProcess.start(task, work_dir)

    def close(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            _discard(spare)

    def _accepts(self, spare: ChildProcess) -> bool:
        """Whether `spare` got ready and runs this worker's code, which is still the code on disk."""
        version = spare.wait_ready(SPARE_READY_S)
        if version is None:
            logger.warning("spare child %d never reported ready (it ended, or took over %.0f s); a fresh child "
                           "takes the job", spare.pid, SPARE_READY_S)
            return False
        if version != self.version:
            logger.warning("spare child %d runs loraforge %s, not this worker's %s; a fresh child takes the job",
                           spare.pid, version, self.version)
            return False
        if not self._disk_matches():
            logger.warning("spare child %d imported the code before it changed on disk; a fresh child takes "
                           "the job", spare.pid)
            return False
        return True

    def _disk_matches(self) -> bool:
        """Whether the code on disk is still this worker's (warned once per change when not)."""
        from loraforge.worker.child.main import code_version

        on_disk = code_version(self.code_root)
        if on_disk == self.version:
            return True
        if on_disk != self._warned:
            self._warned = on_disk
            logger.warning("the loraforge code on disk (%s) is not the code this worker runs (%s): jobs run the "
                           "code on disk in fresh children and no spare child is kept; restart the worker",
                           on_disk, self.version)
        return False


def _discard(child: ChildProcess) -> None:
    child.kill()
    shutil.rmtree(child.work_dir, ignore_errors=True)


def log_tail(work_dir: Path, lines: int = 20) -> str:
    """The last `lines` lines of the child's log (at most 4 KB of them)."""
    try:
        with (work_dir / LOG).open("rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 64 * 1024))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])[-4096:]


def _alive_as_recorded(pid: object, start: object) -> bool:
    return isinstance(pid, int) and pid > 0 and start is not None and start_time(pid) == start


def _read_json(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def claim_work_dir(work_dir: Path) -> Path:
    """Create `work_dir` and record this process as its worker, so a restart can tell it is stale."""
    work_dir.mkdir(parents=True, exist_ok=True)
    tmp = work_dir / f"{WORKER_FILE}.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), "start": start_time(os.getpid())}))
    tmp.replace(work_dir / WORKER_FILE)
    return work_dir


def end_leftovers(work_root: Path) -> list[str]:
    """End the children of dead workers under `work_root` and remove their work dirs.

    Each work dir names its worker (`worker.json`) and its child (`child.pid`), each as pid plus
    start time. A dir whose worker is alive (this process, or a second worker on this host) is
    left alone; otherwise the child's process group is killed if that very child still runs,
    and the dir is removed. Returns the names of the dirs removed.
    """
    removed: list[str] = []
    if not work_root.is_dir():
        return removed
    for work_dir in sorted(p for p in work_root.iterdir() if p.is_dir()):
        worker = _read_json(work_dir / WORKER_FILE)
        if _alive_as_recorded(worker.get("pid"), worker.get("start")):
            continue  # a live worker's (this one's spare, or another worker's on this host)
        child = _read_json(work_dir / PIDFILE)
        if _alive_as_recorded(child.get("pid"), child.get("start")):
            logger.warning("ending leftover child %s of a dead worker (%s)", child["pid"], work_dir.name)
            try:
                os.killpg(int(child["pid"]), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            _wait_gone(int(child["pid"]), str(child["start"]))
        shutil.rmtree(work_dir, ignore_errors=True)
        removed.append(work_dir.name)
    return removed


def _wait_gone(pid: int, start: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while start_time(pid) == start and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # reaps it if it happens to be our own child
        except ChildProcessError:
            pass
        time.sleep(0.05)
