"""The child protocol: every message and command reads back as itself, the bytes are the format the
README describes, and a line that is no message or command says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loraforge.worker.child import protocol as p

MESSAGES = [
    p.Ready(version="0.1.0+0123456789ab"),
    p.Note(message="memory plan on cpu: peak 1.2 GB"),
    p.Dataset(report_path=Path("/w/dataset/dataset_report.json")),
    p.Stage(name="train"),
    p.Progress(step=3, total=10, loss=0.125, eta_seconds=4.5, lr=1e-4, step_seconds=0.25),
    p.Progress(step=1, total=2),
    p.Checkpoint(step=5, path=Path("/w/train/checkpoints/step-5")),
    p.Sample(step=5, index=1, prompt="a photo of TOK", path=Path("/w/train/samples/5-1.png")),
    p.Intermediate(step=5, path=Path("/w/train/lora-step-5.safetensors")),
    p.Trained(lora_path=Path("/w/train/lora.safetensors"), comfy_path=Path("/w/train/lora.comfyui.safetensors"),
              steps=10, final_loss=0.1, loop_seconds=12.5, sample_seconds=2.0, sample_share=0.16),
    p.Trained(lora_path=Path("/w/train/lora.safetensors"), steps=10, final_loss=None, loop_seconds=1.0),
    p.Deployed(),
    p.Error(error_kind="oom", stage="train", message="out of GPU memory while training: ..."),
]
COMMANDS = [p.Stop(), p.Ack(7), p.Deploy(Path("/w/deploy/my lora.safetensors")), p.Task(Path("/w/task.json"))]


def test_every_message_and_command_type_is_covered() -> None:
    assert {type(m) for m in MESSAGES} == set(p.MESSAGE_TYPES.values())
    assert {type(c) for c in COMMANDS} == set(p.COMMAND_TYPES.values())


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_a_message_reads_back_as_itself(message: p.Message) -> None:
    line = p.encode_message(message)
    assert line.endswith("\n") and line.count("\n") == 1
    assert p.decode_message(line.encode()) == message


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: type(c).__name__)
def test_a_command_reads_back_as_itself(command: p.Command) -> None:
    assert p.decode_command(p.encode_command(command)) == command


def test_the_bytes_are_the_wire_format() -> None:
    assert p.encode_message(p.Checkpoint(step=5, path=Path("/w/c"))) == '{"kind": "checkpoint", "step": 5, "path": "/w/c"}\n'
    trained = json.loads(p.encode_message(p.Trained(lora_path=Path("/w/l"))))
    assert list(trained) == ["kind", "lora_path", "comfy_path", "steps", "final_loss", "loop_seconds",
                             "sample_seconds", "sample_share"]
    assert trained["comfy_path"] == ""  # no ComfyUI copy
    assert p.encode_message(p.Deployed()) == '{"kind": "deployed"}\n'
    assert [p.encode_command(c) for c in COMMANDS] == [b"stop\n", b"ack 7\n", b"deploy /w/deploy/my lora.safetensors\n",
                                                       b"task /w/task.json\n"]


def test_left_out_fields_take_what_the_worker_assumes() -> None:
    assert p.decode_message(b'{"kind": "ready"}') == p.Ready(version="unknown")
    assert p.decode_message(b'{"kind": "error", "message": null, "extra": 1}') == p.Error(error_kind="internal", stage="?")
    assert not p.Error().user_can_act and p.Error(error_kind="user").user_can_act


@pytest.mark.parametrize(("line", "error"), [
    (b"not json", p.NotAMessage),
    (b"[1, 2]", p.NotAMessage),
    (b'{"step": 1}', p.NotAMessage),
    (b'{"kind": "telemetry"}', p.UnknownKind),
    (b'{"kind": "progress", "step": 1}', p.Malformed),
    (b'{"kind": "checkpoint", "step": "five", "path": "/w/c"}', p.Malformed),
])
def test_a_line_that_is_no_message_says_why(line: bytes, error: type[p.ProtocolError]) -> None:
    with pytest.raises(error):
        p.decode_message(line)


@pytest.mark.parametrize(("line", "error"), [(b"resume\n", p.UnknownKind), (b"ack\n", p.Malformed),
                                             (b"ack x\n", p.Malformed), (b"deploy\n", p.Malformed)])
def test_a_line_that_is_no_command_says_why(line: bytes, error: type[p.ProtocolError]) -> None:
    with pytest.raises(error):
        p.decode_command(line)


def test_every_message_type_has_a_handler_in_the_worker() -> None:
    from loraforge.worker.report_handlers import HANDLERS

    assert set(HANDLERS) == set(p.MESSAGE_TYPES.values())


def test_the_child_sorts_what_a_stage_raised_into_user_oom_or_internal() -> None:
    from loraforge.errors import TrainingError
    from loraforge.worker.child.errors import error_for

    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        internal = error_for(exc, "train", "cpu")
    assert internal == p.Error(error_kind="internal", stage="train", message="RuntimeError: boom")
    assert error_for(TrainingError("loss became nan"), "train", "cpu") == p.Error(
        error_kind="user", stage="train", message="loss became nan")
    oom = error_for(MemoryError(), "load", "cpu")
    assert oom.error_kind == "oom" and oom.message.startswith("out of host (CPU) memory while loading the model")
    assert oom.user_can_act and not internal.user_can_act
