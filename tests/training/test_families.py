"""Every registered model family is complete: the test to run after adding one (docs/adding-a-family.md).

`missing_pieces(family)` lists what a family lacks: its pipeline class, presets, training adapter,
architecture, tiny model builder, LoRA targets, export layouts, published sizes, hub id and
licence, and the settings and lists elsewhere that must name it. The per-family test fails
naming each missing piece; the last tests check the registry's names against the places that
keep their own copy (TrainSpec's base_model type, the console's list).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from importlib import import_module
from pathlib import Path

import pytest
import torch

from loraforge.config import Settings
from loraforge.families.model_family import ModelFamily
from loraforge.families.registry import BASE_MODELS, BY_KEY, FAMILIES, family_for
from loraforge.training.presets import TrainSpec, resolve_spec

REPO = Path(__file__).resolve().parents[2]
ADAPTER = ("encode_text", "encode_image", "Predictor", "block_lists", "sample_kwargs", "SAMPLE_NEGATIVE")
ARCHITECTURE = ("TRANSFORMER", "TEXT", "COMPONENTS", "transformer_class", "build_component")
TINY = ("build_pipeline", "write_extras")
LAYOUT = ("DIFFUSERS_PREFIX", "comfy_target", "fused_rows")


def _module_lacks(family: ModelFamily, module: str, names: tuple[str, ...]) -> list[str]:
    try:
        loaded = import_module(f"{family.package}.{module}")
    except ImportError as exc:
        return [f"{module}.py ({exc})"]
    return [f"{module}.{name}" for name in names if not hasattr(loaded, name)]


def missing_pieces(family: ModelFamily) -> list[str]:
    """What `family` lacks, as `<piece> (why)` strings; empty when it is complete."""
    missing: list[str] = []
    import diffusers

    if not hasattr(diffusers, family.pipeline_class):
        missing.append(f"pipeline class ({family.pipeline_class} is not in diffusers)")
    if not family.presets:
        missing.append("presets (none)")
    for name, preset in family.presets.items():
        if name != name.upper() or preset.get("family") != family.key:
            missing.append(f"preset {name} (upper-case name, family {family.key!r})")
        if tuple(preset.get("target_modules", ())) != family.lora_targets:
            missing.append(f"preset {name} (target_modules are not the family's lora_targets)")
    if family.weights_name not in family.presets:
        missing.append(f"weights name ({family.weights_name} is not one of its base models)")
    if f"model_{family.weights_name.lower()}" not in Settings.model_fields:
        missing.append(f"setting (config.Settings has no model_{family.weights_name.lower()})")
    missing += _module_lacks(family, "adapter", ADAPTER)
    missing += _module_lacks(family, "architecture", ARCHITECTURE)
    missing += _module_lacks(family, "tiny", TINY)
    missing += _module_lacks(family, "export", LAYOUT)
    if not family.lora_targets:
        missing.append("LoRA targets (none)")
    if not family.lora_tells:
        missing.append("LoRA tells (no tensor-name part tells its files apart)")
    if not family.published_gb > 0:
        missing.append("published size (published_gb)")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", family.hub_id):
        missing.append(f"hub id ({family.hub_id!r} is not owner/name)")
    if not family.licence.strip():
        missing.append("licence")
    if not (family.tiny_name and family.tokenizer_folder):
        missing.append("tiny model folder name / tokenizer folder")
    return missing


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_family_has_every_piece(family: ModelFamily) -> None:
    assert missing_pieces(family) == []


def test_an_incomplete_family_is_named_piece_by_piece() -> None:
    broken = dataclasses.replace(FAMILIES[0], package="loraforge.families", pipeline_class="NoSuchPipeline",
                                 hub_id="", licence=" ", published_gb=0.0)
    found = "; ".join(missing_pieces(broken))
    for piece in ("pipeline class", "adapter.py", "architecture.py", "tiny.py", "export.py", "hub id", "licence",
                  "published size"):
        assert piece in found


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_architecture_builds_on_meta_and_holds_the_lora_targets(family: ModelFamily) -> None:
    """The published config builds with no memory, and every LoRA target names some Linear of it."""
    arch = family.architecture()
    with torch.device("meta"):
        transformer = arch.transformer_class()(**arch.TRANSFORMER)
    names = [n for n, m in transformer.named_modules() if isinstance(m, torch.nn.Linear)]
    for target in family.lora_targets:  # peft's rule: the name equals or ends with ".target"
        assert any(n == target or n.endswith("." + target) for n in names), target
    assert arch.TEXT["dim"] == arch.TRANSFORMER["joint_attention_dim"]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.key)
def test_presets_resolve_and_layout_names_a_module(family: ModelFamily) -> None:
    for name in family.base_models:
        spec = resolve_spec(name)
        assert spec.family == family.key and family_for(name.lower()) is family
    assert family.layout().DIFFUSERS_PREFIX.endswith(".")
    assert family.layout().comfy_target("transformer_blocks.0.attn.to_q") is not None


def test_base_model_names_are_unique_and_everywhere() -> None:
    names = [name for f in FAMILIES for name in f.base_models]
    assert len(names) == len(set(names)) == len(BASE_MODELS)
    assert set(BY_KEY) == {f.key for f in FAMILIES}
    # TrainSpec keeps a typed Literal of the names: it must be the registry's.
    assert set(typing.get_args(TrainSpec.model_fields["base_model"].annotation)) == set(BASE_MODELS)


def test_the_console_lists_every_base_model() -> None:
    """The new-job page keeps its own order; its names must be the registry's."""
    source = (REPO / "loraforge" / "console" / "static" / "newjob.js").read_text(encoding="utf-8")
    match = re.search(r'id: "job-base-model" \}, \.\.\.\[([^\]]*)\]', source)
    assert match is not None, "newjob.js no longer lists the base models where this test looks"
    assert set(re.findall(r'"(\w+)"', match[1])) == set(BASE_MODELS)
