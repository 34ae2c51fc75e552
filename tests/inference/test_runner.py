"""The runner on the tiny models: seeds, LoRA strength, adapter cache, queueing, deploy checks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from loraforge.config import Settings
from loraforge.errors import InferenceError, ServiceBusyError
from loraforge.inference import handoff
from loraforge.inference.deploy import deploy
from loraforge.inference.request import GenerationRequest
from loraforge.inference.runner import InferenceRunner
from tests.support.loras import LoraWriter


def small(**fields: object) -> GenerationRequest:
    base = {"prompt": "a photo of a cat", "width": 64, "height": 64, "num_inference_steps": 2, "seed": 7}
    return GenerationRequest.model_validate(base | fields)


def pixels(image: object) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("base_model", ["FLUX", "QWEN"])
def test_same_seed_same_image_and_strength_zero_is_the_base_output(
    inference_settings: Settings, lora_writer: LoraWriter, base_model: str
) -> None:
    runner = InferenceRunner(inference_settings)
    lora = lora_writer("flux" if base_model == "FLUX" else "qwen", 1)
    base = runner.generate(small(), base_model=base_model)
    full = runner.generate(small(), base_model=base_model, lora_path=lora)
    again = runner.generate(small(), base_model=base_model, lora_path=lora)
    off = runner.generate(small(lora_strength=0.0), base_model=base_model, lora_path=lora)
    other_seed = runner.generate(small(seed=8), base_model=base_model, lora_path=lora)
    assert full.size == (64, 64)
    assert np.array_equal(pixels(full), pixels(again))
    assert np.abs(pixels(full) - pixels(base)).max() > 0
    assert np.abs(pixels(off) - pixels(base)).max() <= 1
    assert np.abs(pixels(other_seed) - pixels(full)).max() > 0


def test_two_loras_alternate_without_reloading_the_base(
    inference_settings: Settings, lora_writer: LoraWriter, tmp_path: Path
) -> None:
    runner = InferenceRunner(inference_settings)
    first, second = lora_writer("flux", 1), lora_writer("flux", 2)
    copy = tmp_path / "copy.safetensors"  # the same file elsewhere (deploy's copy vs the cache's)
    copy.write_bytes(first.read_bytes())
    images = [runner.generate(small(), base_model="FLUX", lora_path=p) for p in (first, second, copy, second)]
    assert (runner.base_loads, runner.lora_loads) == (1, 2)
    assert np.array_equal(pixels(images[0]), pixels(images[2]))
    assert np.array_equal(pixels(images[1]), pixels(images[3]))
    assert np.abs(pixels(images[0]) - pixels(images[1])).max() > 0


def test_the_least_recently_used_lora_is_evicted_when_the_cache_is_full(
    inference_settings: Settings, lora_writer: LoraWriter
) -> None:
    runner = InferenceRunner(inference_settings.model_copy(update={"inference_cache_size": 2}))
    a, b, c = (lora_writer("flux", seed) for seed in (1, 2, 3))
    for path in (a, b, a, c):  # c evicts b, the least recently used
        runner.load_lora(base_model="FLUX", lora_path=path)
    assert runner.loaded_loras("FLUX") == [a.resolve(), c.resolve()]
    assert (runner.lora_loads, runner.lora_evictions, runner.base_loads) == (3, 1, 1)


def test_concurrent_requests_queue_and_each_gets_its_own_lora(
    inference_settings: Settings, lora_writer: LoraWriter
) -> None:
    runner = InferenceRunner(inference_settings)
    loras = [lora_writer("flux", 1), lora_writer("flux", 2)]
    expected = [pixels(runner.generate(small(), base_model="FLUX", lora_path=p)) for p in loras]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = pixels(runner.generate(small(), base_model="FLUX", lora_path=loras[i % 2]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(results[i], expected[i % 2]) for i in range(6))


def test_deploy_accepts_a_working_lora_and_leaves_it_loaded(
    inference_settings: Settings, lora_writer: LoraWriter
) -> None:
    runner = InferenceRunner(inference_settings)
    lora = lora_writer("qwen", 1)
    deploy(runner, base_model="QWEN", lora_path=lora, slug="my-model")
    assert runner.loaded_loras("QWEN") == [lora.resolve()]


def test_deploying_a_lora_of_another_base_model_names_the_mismatch(
    inference_settings: Settings, lora_writer: LoraWriter
) -> None:
    runner = InferenceRunner(inference_settings)
    with pytest.raises(InferenceError, match="cannot deploy my-model: the LoRA does not match the base model QWEN"):
        deploy(runner, base_model="QWEN", lora_path=lora_writer("flux", 1), slug="my-model")
    assert runner.loaded_loras("QWEN") == []


def test_deploying_a_lora_with_extra_layers_is_refused(
    inference_settings: Settings, lora_writer: LoraWriter, tmp_path: Path
) -> None:
    tensors = load_file(lora_writer("flux", 1))
    extra = {k.replace("transformer_blocks.0.", "transformer_blocks.9."): v.clone() for k, v in tensors.items()}
    path = tmp_path / "extra.safetensors"
    save_file(tensors | extra, path)
    with pytest.raises(InferenceError, match=r"14 of 28 LoRA tensors have no matching layer, e.g. transformer.\S*blocks.9.attn"):
        deploy(InferenceRunner(inference_settings), base_model="FLUX", lora_path=path, slug="m")


def test_deploying_a_diverged_lora_reports_nan(
    inference_settings: Settings, lora_writer: LoraWriter, tmp_path: Path
) -> None:
    tensors = {k: v * float("nan") for k, v in load_file(lora_writer("flux", 1)).items()}
    path = tmp_path / "nan.safetensors"
    save_file(tensors, path)
    with pytest.raises(InferenceError, match="warm-up image with this LoRA is NaN"):
        deploy(InferenceRunner(inference_settings), base_model="FLUX", lora_path=path, slug="m")


def test_deploying_a_kohya_file_laid_out_for_another_model_is_a_clear_error(
    inference_settings: Settings, tmp_path: Path
) -> None:
    import torch

    path = tmp_path / "kohya.safetensors"  # sd-scripts naming, but the sizes of no FLUX layer
    save_file({
        "lora_unet_single_blocks_0_linear1.lora_down.weight": torch.ones(4, 32),
        "lora_unet_single_blocks_0_linear1.lora_up.weight": torch.ones(7, 4),
        "lora_unet_single_blocks_0_linear1.alpha": torch.tensor(4.0),
    }, path)
    with pytest.raises(InferenceError, match=r"does not match the base model FLUX: its tensors could not be conv"):
        deploy(InferenceRunner(inference_settings), base_model="FLUX", lora_path=path, slug="m")


@pytest.mark.parametrize("content", [b"not safetensors at all", None])
def test_deploying_an_unreadable_or_missing_file_says_so(
    inference_settings: Settings, tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "lora.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InferenceError, match="cannot deploy m: the LoRA file .*(not a readable|does not exist)"):
        deploy(InferenceRunner(inference_settings), base_model="FLUX", lora_path=path, slug="m")


def test_a_budget_for_one_pipeline_evicts_the_least_recently_used_base_and_reloads_it(
    inference_settings: Settings, lora_writer: LoraWriter
) -> None:
    runner = InferenceRunner(inference_settings.model_copy(update={"gpu_memory_gb": 0.002}))
    flux, qwen = lora_writer("flux", 1), lora_writer("qwen", 1)
    first = runner.generate(small(), base_model="FLUX", lora_path=flux)
    flux_bytes = runner.resident_bytes
    runner.generate(small(), base_model="QWEN", lora_path=qwen)
    assert [key.split(":")[0] for key in runner.loaded_models()] == ["qwen"]
    again = runner.generate(small(), base_model="FLUX", lora_path=flux)  # reloaded, LoRA and all
    assert (runner.base_loads, runner.base_evictions) == (3, 2)
    assert runner.resident_bytes == flux_bytes <= runner.budget == 2_000_000
    assert np.array_equal(pixels(first), pixels(again))
    assert runner.release() == flux_bytes and runner.resident_bytes == 0 and runner.loaded_models() == []


def test_a_pipeline_larger_than_the_whole_budget_is_refused_with_the_sizes(inference_settings: Settings) -> None:
    runner = InferenceRunner(inference_settings.model_copy(update={"gpu_memory_gb": 0.001}))
    with pytest.raises(InferenceError, match=r"the QWEN pipeline .* needs 0.0018 GB but the inference budget "
                                             r"on cpu is 0.001 GB .*LORAFORGE_GPU_MEMORY_GB"):
        runner.generate(small(), base_model="QWEN")


def test_a_job_gpu_work_releases_the_runner_and_holds_queued_generations_until_it_ends(
    inference_settings: Settings,
) -> None:
    runner = InferenceRunner(inference_settings)
    handoff.register(runner)
    runner.generate(small(), base_model="FLUX")
    assert runner.resident_bytes > 0
    with handoff.gpu_work(inference_settings):
        assert runner.resident_bytes == 0 and runner.loaded_models() == []
        with pytest.raises(ServiceBusyError, match="busy training"):
            runner.generate(small(), base_model="FLUX", deadline=time.monotonic() + 0.3)
        assert runner.loaded_models() == []  # the refused request loaded nothing
        runner.generate(small(), base_model="FLUX")  # no deadline (a deploy check): not held
    runner.generate(small(), base_model="FLUX", deadline=time.monotonic() + 5)
    assert runner.base_loads == 2
