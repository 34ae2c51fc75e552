"""The training engine in process: exact resume, cancellation, the trained strength in both files, ComfyUI export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from loraforge.datasets.prepare import PreparedDataset, prepare_dataset
from loraforge.errors import JobCancelled, TrainingError
from loraforge.training.engine import Progress, train
from loraforge.training.presets import resolve_spec
from tests.support.cli import write_images


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    root = tmp_path_factory.mktemp("engine-data")
    return prepare_dataset(write_images(root / "src", count=4), root / "work", trigger_word="sks", resolution=64)


def test_resumed_run_equals_an_uninterrupted_run_with_the_same_seed(
    tiny_models: Path, dataset: PreparedDataset, tmp_path: Path
) -> None:
    spec = resolve_spec("FLUX", {"steps": 5, "learning_rate": 1e-3}, resolution=64, rank=4, checkpoint_every=2,
                        batch_size=2)
    model = str(tiny_models / "flux-dev")
    whole = train(spec, dataset, tmp_path / "whole", model_ref=model, device="cpu")

    seen: list[int] = []
    checkpoints: list[int] = []
    with pytest.raises(JobCancelled):
        train(spec, dataset, tmp_path / "split", model_ref=model, device="cpu",
              progress=lambda p: seen.append(p.step),
              should_stop=lambda: len(seen) >= 3,  # stop at the boundary after step 3
              on_checkpoint=lambda path, step: checkpoints.append(step))
    assert seen == [1, 2, 3] and checkpoints == [2]
    assert not (tmp_path / "split" / "lora.safetensors").exists()

    steps_after_resume: list[Progress] = []
    resumed = train(spec, dataset, tmp_path / "split", model_ref=model, device="cpu", resume=True,
                    progress=steps_after_resume.append)
    assert [p.step for p in steps_after_resume] == [3, 4, 5]  # continued from the step-2 checkpoint
    a, b = load_file(str(whole.lora_path)), load_file(str(resumed.lora_path))
    assert a.keys() == b.keys() and len(a) > 0
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert resumed.final_loss == pytest.approx(whole.final_loss, rel=0, abs=0)


def test_resume_with_other_hyper_parameters_is_refused_naming_them(
    tiny_models: Path, dataset: PreparedDataset, tmp_path: Path
) -> None:
    model = str(tiny_models / "flux-dev")
    first = resolve_spec("FLUX", {"steps": 2}, resolution=64, rank=4, checkpoint_every=1)
    train(first, dataset, tmp_path, model_ref=model, device="cpu")
    other = resolve_spec("FLUX", {"steps": 3}, resolution=64, rank=8, checkpoint_every=1)
    with pytest.raises(TrainingError, match="rank"):
        train(other, dataset, tmp_path, model_ref=model, device="cpu", resume=True)


def test_both_files_apply_the_trained_strength_when_alpha_differs_from_rank(
    tiny_models: Path, dataset: PreparedDataset, tmp_path: Path
) -> None:
    from diffusers import QwenImagePipeline
    from safetensors import safe_open

    spec = resolve_spec("QWEN", {"steps": 1, "learning_rate": 1e-2}, resolution=64, rank=4, alpha=8.0)
    result = train(spec, dataset, tmp_path, model_ref=str(tiny_models / "qwen-image"), device="cpu")
    comfy = load_file(str(result.comfy_path))
    diffusers_sd = load_file(str(result.lora_path))
    pipe = QwenImagePipeline.from_pretrained(str(tiny_models / "qwen-image"))
    pipe.load_lora_weights(str(result.lora_path), adapter_name="a")
    checked, largest = 0, 0.0
    for name, module in pipe.transformer.named_modules():
        if not hasattr(module, "get_delta_weight") or "a" not in getattr(module, "lora_A", {}):
            continue
        base = "lora_unet_" + name.replace(".", "_")
        down, up = comfy[f"{base}.lora_down.weight"], comfy[f"{base}.lora_up.weight"]
        assert comfy[f"{base}.alpha"].item() == 8.0
        intended = up @ down * (8.0 / 4)  # peft's trained delta: B @ A * alpha / r
        torch.testing.assert_close(module.get_delta_weight("a"), intended)  # diffusers / peft
        # ComfyUI: a file without `.alpha` tensors is applied with alpha = rank, i.e. B @ A.
        assert f"transformer.{name}.alpha" not in diffusers_sd
        a, b = diffusers_sd[f"transformer.{name}.lora_A.weight"], diffusers_sd[f"transformer.{name}.lora_B.weight"]
        torch.testing.assert_close(b @ a, intended)
        checked, largest = checked + 1, max(largest, float(intended.abs().max()))
    assert checked >= 8 and largest > 0
    with safe_open(str(result.lora_path), "pt") as f:
        assert f.metadata()["loraforge.alpha"] == "8.0" and f.metadata()["loraforge.rank"] == "4"


def test_comfyui_copy_fuses_flux_qkv_into_the_same_weight_deltas(
    tiny_models: Path, dataset: PreparedDataset, tmp_path: Path
) -> None:
    spec = resolve_spec("FLUX", {"steps": 2, "learning_rate": 1e-2}, resolution=64, rank=4, alpha=2.0)
    result = train(spec, dataset, tmp_path, model_ref=str(tiny_models / "flux-dev"), device="cpu")
    diffusers_sd = load_file(str(result.lora_path))
    comfy = load_file(str(result.comfy_path))
    assert all(k.startswith("lora_unet_") for k in comfy)
    assert {k.rsplit(".", 2)[0] if k.endswith("weight") else k.rsplit(".", 1)[0] for k in comfy} >= {
        "lora_unet_double_blocks_0_img_attn_qkv", "lora_unet_double_blocks_0_txt_attn_qkv",
        "lora_unet_double_blocks_0_img_attn_proj", "lora_unet_double_blocks_0_img_mlp_0",
        "lora_unet_single_blocks_0_linear1",
    }

    def delta(prefix: str, module: str) -> torch.Tensor:
        a = diffusers_sd[f"transformer.{prefix}.{module}.lora_A.weight"]
        b = diffusers_sd[f"transformer.{prefix}.{module}.lora_B.weight"]
        return b @ a  # the diffusers file carries alpha / rank in lora_B (lora_alpha = rank)

    def comfy_delta(name: str) -> torch.Tensor:
        down, up = comfy[f"{name}.lora_down.weight"], comfy[f"{name}.lora_up.weight"]
        return up @ down * (comfy[f"{name}.alpha"].item() / down.shape[0])

    qkv = torch.cat([delta("transformer_blocks.0", f"attn.to_{x}") for x in "qkv"])
    torch.testing.assert_close(comfy_delta("lora_unet_double_blocks_0_img_attn_qkv"), qkv)
    linear1 = comfy_delta("lora_unet_single_blocks_0_linear1")
    single = torch.cat([delta("single_transformer_blocks.0", f"attn.to_{x}") for x in "qkv"])
    torch.testing.assert_close(linear1[: single.shape[0]], single)
    assert linear1.shape[0] == 7 * single.shape[0] // 3 and linear1[single.shape[0]:].abs().max() == 0
    torch.testing.assert_close(comfy_delta("lora_unet_double_blocks_0_img_attn_proj"),
                               delta("transformer_blocks.0", "attn.to_out.0"))
