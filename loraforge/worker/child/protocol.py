"""The protocol between the worker and a job's child: a frozen dataclass per message (child to worker)
and per command (worker to child), and the functions that write them to the wire and read them back.

Messages travel on a dedicated pipe as JSON lines, `{"kind": KIND, FIELD: VALUE, ...}` and a newline,
the fields in the order the dataclass declares them; a path travels as its text, and a path that may
be absent as "" when it is. Commands travel on the child's stdin as text lines, `VERB` or
`VERB ARGUMENT`, and a newline. `decode_message` and `decode_command` raise a ProtocolError:
NotAMessage for a line that is not a JSON object with a string "kind" (the worker logs it and reads
on), UnknownKind for a kind or verb this code does not know (a newer child's: logged and ignored),
Malformed for a known one whose field is missing or of the wrong type (the job fails with an
internal error). A field a message may leave out has the default the worker assumes then; a field
sent as null counts as left out, and extra fields are ignored, so an older worker reads a newer child.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar


class ProtocolError(ValueError):
    """A line on the pipe or on stdin that this code cannot read as a message or command."""


class NotAMessage(ProtocolError):
    """A line on the pipe that is not JSON, or a JSON value without a string "kind"."""


class UnknownKind(ProtocolError):
    """A message kind or command verb this code does not know; `kind` holds it."""

    def __init__(self, kind: str) -> None:
        super().__init__(f"unknown kind {kind!r}")
        self.kind = kind


class Malformed(ProtocolError):
    """A known message or command with a field missing or of the wrong type."""


# -- messages, child to worker ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Ready:
    """A spare child's imports are done; `version` is the code it imported (child.main.code_version)."""

    KIND: ClassVar[str] = "ready"
    version: str = "unknown"


@dataclass(frozen=True, kw_only=True)
class Note:
    """A fact for the job's details (the memory plan, the demo model's resolution cap); `message` is text."""

    KIND: ClassVar[str] = "note"
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """Preparation wrote its report (also when it refused the dataset) at `report_path`."""

    KIND: ClassVar[str] = "dataset"
    report_path: Path


@dataclass(frozen=True, kw_only=True)
class Stage:
    """The child starts stage `name` ("train": the dataset is prepared)."""

    KIND: ClassVar[str] = "stage"
    name: str = ""


@dataclass(frozen=True, kw_only=True)
class Progress:
    """Training reached `step` of `total`. `loss` is the mean since the last report, `lr` the
    learning rate at `step`, `step_seconds` the mean seconds per step (sampling excluded),
    `eta_seconds` the seconds left at the pace so far; each None when unknown."""

    KIND: ClassVar[str] = "progress"
    step: int
    total: int
    loss: float | None = None
    eta_seconds: float | None = None
    lr: float | None = None
    step_seconds: float | None = None


@dataclass(frozen=True, kw_only=True)
class _StepPath:
    """What training wrote at `step`, at `path` (a checkpoint and an intermediate LoRA share it)."""

    step: int
    path: Path


@dataclass(frozen=True, kw_only=True)
class Checkpoint(_StepPath):
    """The checkpoint of `step` is saved in the folder `path`; the child waits for `Ack(step)`."""

    KIND: ClassVar[str] = "checkpoint"


@dataclass(frozen=True, kw_only=True)
class Sample:
    """Sample image number `index` of the set rendered at `step`, for `prompt`, is the file `path`."""

    KIND: ClassVar[str] = "sample"
    step: int
    index: int
    prompt: str = ""
    path: Path


@dataclass(frozen=True, kw_only=True)
class Intermediate(_StepPath):
    """The LoRA as it stood at `step` is the file `path`."""

    KIND: ClassVar[str] = "intermediate"


@dataclass(frozen=True, kw_only=True)
class Trained:
    """Training is done: the LoRA is `lora_path`, its ComfyUI copy `comfy_path` (None: none made).
    `steps` trained, `final_loss`, the training loop's `loop_seconds`, of which `sample_seconds`
    were spent rendering samples (`sample_share` of them, 0 to 1)."""

    KIND: ClassVar[str] = "trained"
    lora_path: Path
    comfy_path: Path | None = None
    steps: int | None = None
    final_loss: float | None = None
    loop_seconds: float | None = None
    sample_seconds: float = 0.0
    sample_share: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Deployed:
    """The deploy check passed on the stored LoRA."""

    KIND: ClassVar[str] = "deployed"


# The error kinds the user can act on: the job ends FAILED with the message. "internal" is retried.
USER_ERROR_KINDS = ("user", "oom")


@dataclass(frozen=True, kw_only=True)
class Error:
    """The child failed in `stage` (prepare, load, train, deploy); `message` says why in the user's
    terms. `error_kind` is "user" (bad data or settings), "oom" (out of memory) or "internal"."""

    KIND: ClassVar[str] = "error"
    error_kind: str = "internal"
    stage: str = "?"
    message: str = ""

    @property
    def user_can_act(self) -> bool:
        return self.error_kind in USER_ERROR_KINDS


Message = Ready | Note | Dataset | Stage | Progress | Checkpoint | Sample | Intermediate | Trained | Deployed | Error
MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.KIND: cls for cls in (Ready, Note, Dataset, Stage, Progress, Checkpoint, Sample, Intermediate, Trained,
                              Deployed, Error)
}


# -- commands, worker to child ---------------------------------------------------------------------


@dataclass(frozen=True)
class Stop:
    """Stop at the next step boundary (exit code 3)."""

    VERB: ClassVar[str] = "stop"


@dataclass(frozen=True)
class Ack:
    """The worker stored the checkpoint of `step`: training may go on."""

    VERB: ClassVar[str] = "ack"
    step: int


@dataclass(frozen=True)
class Deploy:
    """The stored LoRA is the file `path`: run the deploy check on it."""

    VERB: ClassVar[str] = "deploy"
    path: Path


@dataclass(frozen=True)
class Task:
    """A spare's job: its task is the JSON file `path`."""

    VERB: ClassVar[str] = "task"
    path: Path


Command = Stop | Ack | Deploy | Task
COMMAND_TYPES: dict[str, type[Command]] = {cls.VERB: cls for cls in (Stop, Ack, Deploy, Task)}


# -- the wire ----------------------------------------------------------------------------------------

# How a value is read back, by the field's annotation.
_FROM_WIRE: dict[str, Any] = {
    "int": int, "int | None": int, "float": float, "float | None": float, "str": str,
    "Path": Path, "Path | None": lambda text: Path(text) if text else None,
}


def _to_wire(annotation: Any, value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if value is None and annotation == "Path | None":
        return ""  # a path left out travels as "", as the ComfyUI copy always has
    return value


def encode_message(message: Message) -> str:
    """The line for `message`, newline included."""
    body = {f.name: _to_wire(f.type, getattr(message, f.name)) for f in fields(message)}
    return json.dumps({"kind": message.KIND, **body}, default=str) + "\n"


def decode_message(line: bytes | str) -> Message:
    """The message on `line`. Raises NotAMessage, UnknownKind or Malformed (see the module)."""
    try:
        raw = json.loads(line)
    except ValueError:
        raise NotAMessage("a line that is not JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
        raise NotAMessage("a message without a kind")
    cls = MESSAGE_TYPES.get(raw["kind"])
    if cls is None:
        raise UnknownKind(raw["kind"])
    values = {}
    for f in fields(cls):
        value = raw.get(f.name)
        if value is not None:
            values[f.name] = _read(cls.KIND, f.name, f.type, value)
        elif f.default is MISSING:
            raise Malformed(f"{cls.KIND} message without {f.name}")
    return cls(**values)


def encode_command(command: Command) -> bytes:
    """The line for `command`, newline included."""
    words = [command.VERB, *(str(getattr(command, f.name)) for f in fields(command))]
    return " ".join(words).encode() + b"\n"


def decode_command(line: bytes) -> Command:
    """The command on `line`. Raises UnknownKind for an unknown verb, Malformed for a missing or
    unreadable argument."""
    verb, _, argument = line.decode(errors="replace").strip().partition(" ")
    cls = COMMAND_TYPES.get(verb)
    if cls is None:
        raise UnknownKind(verb)
    command_fields = fields(cls)
    # Each command takes at most one argument, the one its fields name; the checker sees a union.
    make: Callable[..., Command] = cls
    if not command_fields:
        return make()
    if not argument:
        raise Malformed(f"{verb} command without {command_fields[0].name}")
    return make(_read(verb, command_fields[0].name, command_fields[0].type, argument))


def _read(kind: str, name: str, annotation: Any, value: Any) -> Any:
    try:
        return _FROM_WIRE[annotation](value)
    except (TypeError, ValueError) as exc:
        raise Malformed(f"{kind}: {name}={value!r} cannot be read as {annotation} ({exc})") from None
