"""Presets and the validation of advance_parameters and overrides."""

from __future__ import annotations

import pytest

from loraforge.errors import ValidationError
from loraforge.training.presets import PRESETS, resolve_spec


def test_each_base_model_gets_its_documented_preset() -> None:
    qwen, flux, fast = resolve_spec("QWEN", {}), resolve_spec("FLUX", {}), resolve_spec("FAST_FLUX", {})
    assert qwen.family == "qwen" and flux.family == "flux" and fast.family == "flux"
    assert "to_q" in qwen.target_modules and "attn.to_q" in flux.target_modules
    assert fast.resolution < flux.resolution and fast.learning_rate > flux.learning_rate
    assert qwen.timestep_sampling == "logit_normal"
    assert qwen.finetune_type == "LORA"


def test_advance_parameters_override_the_preset_and_the_seed_keys_are_accepted() -> None:
    spec = resolve_spec("QWEN", {"steps": 10, "learning_rate": 4e-4, "auto_caption": True,
                                 "face_crop": "false", "finetune_type": "lora", "rank": 8,
                                 "prompt": "sample prompt", "theme": "x"})
    assert (spec.steps, spec.learning_rate, spec.auto_caption, spec.face_crop) == (10, 4e-4, True, False)
    assert spec.rank == 8 and spec.lora_scale == pytest.approx(PRESETS["QWEN"]["alpha"] / PRESETS["QWEN"]["rank"])


def test_overrides_win_over_advance_parameters_and_none_means_not_given() -> None:
    spec = resolve_spec("FLUX", {"steps": 100}, steps=7, resolution=64, rank=None, trigger_word="sks")
    assert spec.steps == 7 and spec.resolution == 64 and spec.rank == PRESETS["FLUX"]["rank"]
    assert spec.trigger_word == "sks"


@pytest.mark.parametrize(("params", "field"), [
    ({"steps": 0}, "advance_parameters.steps"),
    ({"steps": "many"}, "advance_parameters.steps"),
    ({"steps": True}, "advance_parameters.steps"),
    ({"learning_rate": -1}, "advance_parameters.learning_rate"),
    ({"learning_rate": 5}, "advance_parameters.learning_rate"),
    ({"finetune_type": "FULL"}, "advance_parameters.finetune_type"),
    ({"auto_caption": "perhaps"}, "advance_parameters.auto_caption"),
    ({"rank": 0}, "advance_parameters.rank"),
    ({"resolution": 100}, "advance_parameters.resolution"),
    ({"resolution": 72}, "advance_parameters.resolution: Input should be a multiple of 16"),
    ({"steps": 10**40}, "advance_parameters.steps: Input should be less than or equal to 10000"),
    ({"lora_rank": 0}, "advance_parameters.rank"),
    ({"rank": 4, "lora_rank": 8}, "rank is given twice"),
    ({"learnin_rate": 1e-4}, "advance_parameters: unknown key 'learnin_rate'; did you mean learning_rate?"),
    ({"lr": 1e-4}, "unknown key 'lr'; did you mean learning_rate?"),
    ({"batch_size": 0}, "advance_parameters.batch_size"),
])
def test_invalid_advance_parameters_raise_an_error_naming_the_field(params: dict, field: str) -> None:
    with pytest.raises(ValidationError, match=field.replace(".", r"\.")):
        resolve_spec("FLUX", params)


def test_unknown_base_model_and_unknown_override_are_named() -> None:
    with pytest.raises(ValidationError, match="base_model"):
        resolve_spec("SDXL", {})
    with pytest.raises(ValidationError, match="warmup"):
        resolve_spec("QWEN", {}, warmup=3)
    with pytest.raises(ValidationError, match="advance_parameters: must be a JSON object"):
        resolve_spec("QWEN", [1, 2])  # type: ignore[arg-type]


def test_aliases_are_mapped_and_honoured() -> None:
    spec = resolve_spec("FLUX", {"steps": 2, "lora_rank": 4, "train_batch_size": 2})
    assert (spec.rank, spec.batch_size, spec.steps) == (4, 2, 2)


def test_no_message_carries_pydantic_value_error_prefix() -> None:
    with pytest.raises(ValidationError) as caught:
        resolve_spec("FLUX", {"finetune_type": "FULL", "resolution": 72})
    assert "Value error" not in caught.value.message


def test_presets_page_table_is_the_schema() -> None:
    from pathlib import Path

    from loraforge.training.presets import advance_table

    page = (Path(__file__).parents[2] / "docs" / "reference" / "presets.md").read_text()
    assert advance_table() in page, (
        "docs/reference/presets.md's advance_parameters table is stale: paste the output of "
        "`python -c 'from loraforge.training.presets import advance_table; print(advance_table())'`"
    )
