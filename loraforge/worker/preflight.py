"""A job's memory preflight: its predicted peak per stage against the device's budget, before loading.

The job's child (worker/child/main.py) calls `check(spec, model_ref, settings, device)` once the spec is
resolved and before it prepares the data or loads any model. The figures are training.memory_plan's,
the arithmetic `loraforge plan` prints, for this job: the architecture of the weights it will load
(a local folder's configs, a hub id's cached snapshot, else the published configs; the tiny demo
models are counted as the tiny models they are), its resolution, batch size, rank and text length,
and the options the trainer will use: the device's dtype (bf16 on a GPU, fp32 on the CPU),
LORAFORGE_BASE_WEIGHTS, gradient checkpointing as training.precision decides it, the VAE and text
encoders on the device while caching with the transformer in host memory (on the device already
when quantized), and the VAE kept while sample sets are rendered. The budget is
inference.memory's: LORAFORGE_GPU_MEMORY_GB, else the GPU's total memory; on the CPU the setting
only (tests make it small; without it there is nothing to compare with and nothing is reported).

A stage whose counted bytes (parameters, buffers, the LoRA's optimizer state: exact) exceed the
budget cannot run: `check` raises TrainingError naming the stage, the bytes needed and available
and what to change, and the job ends FAILED at once (not retried: no attempt would fit either).
A stage whose estimated peak (counted, plus the CUDA context and the activation estimates) exceeds
the budget while its counted bytes fit may still run, since activations are estimates: the job goes
on and the returned note says so. The note becomes an event in the job's details, e.g. for a FLUX
job on a 141 GB card "memory plan on cuda:0: peak 53.1 GB in training of a 141.0 GB budget (the
device's total memory); per stage: ...".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from loraforge.config import Settings
from loraforge.errors import TrainingError
from loraforge.inference.memory import device_budget_bytes, gb, resolve_device
from loraforge.training import memory_plan as mp
from loraforge.training.oom import STAGE_WORDS
from loraforge.training.presets import TrainSpec

logger = logging.getLogger(__name__)

STAGE_LABELS = {"load": "caching latents and captions", "train": "training", "deploy": "deploy check"}
COUNTED_WORDS = {
    "load": "the weights of the VAE and text encoders, on the device while the dataset is encoded, beside the "
            "transformer when it is quantized or the device is the CPU",
    "train": "the transformer's weights and the LoRA with its gradients and AdamW state",
    "deploy": "the whole pipeline, unquantized, with the new LoRA",
}
STAGES = ("load", "train", "deploy")  # in the order a job runs them
LOWEST_RESOLUTION = 256  # the smallest resolution the advice suggests; below it a LoRA learns little


@dataclass(frozen=True)
class JobMemory:
    """One job's figures: its stages, the options they assume, and each stage's device and budget."""

    arch: mp.Architecture
    shape: mp.JobShape
    options: mp.Options
    samples: bool
    device: str
    deploy_device: str
    budgets: dict[str, int | None]  # device -> bytes; None: the CPU without LORAFORGE_GPU_MEMORY_GB

    def stages(self, options: mp.Options | None = None, shape: mp.JobShape | None = None) -> list[mp.Stage]:
        """The job's stages (load, train, deploy); other options or shape for advice."""
        opt, job = options or self.options, shape or self.shape
        unquantized = replace(opt, weights="bf16")  # the deploy check loads the pipeline as served
        return [mp.caching_stage(self.arch, job, opt), mp.training_stage(self.arch, job, opt, self.samples),
                mp.deploy_stage(self.arch, self._deploy_options(unquantized), job.rank)]

    def budget(self, stage: str) -> int | None:
        return self.budgets[self.deploy_device if stage == "deploy" else self.device]

    def device_of(self, stage: str) -> str:
        return self.deploy_device if stage == "deploy" else self.device

    def _deploy_options(self, opt: mp.Options) -> mp.Options:
        cuda = self.deploy_device.startswith("cuda")
        return replace(opt, unit=mp.BF16 if cuda else mp.FP32, context=mp.OVERHEAD_BYTES if cuda else 0.0)


def budget_bytes(settings: Settings, device: str) -> int | None:
    """The device's budget (inference.memory); on the CPU only when LORAFORGE_GPU_MEMORY_GB is set."""
    if device.startswith("cuda") or settings.gpu_memory_gb is not None:
        return device_budget_bytes(settings, device)
    return None


def job_memory(spec: TrainSpec, model_ref: str, settings: Settings, device: str) -> JobMemory:
    """The figures of `spec` trained from `model_ref` on `device` ("cpu", "cuda" or "cuda:N")."""
    from loraforge.training.precision import use_gradient_checkpointing

    device = resolve_device(device)
    deploy_device = resolve_device(settings.inference_device or device)
    cuda = device.startswith("cuda")
    arch = mp.measure(spec.family, tuple(spec.target_modules), mp.architecture_folder(model_ref))
    options = mp.Options(spec.base_weights if cuda else "bf16", use_gradient_checkpointing(spec, device),
                         unit=mp.BF16 if cuda else mp.FP32, context=mp.OVERHEAD_BYTES if cuda else 0.0)
    shape = mp.JobShape(spec.resolution, spec.batch_size, spec.rank, spec.max_sequence_length)
    budgets = {d: budget_bytes(settings, d) for d in {device, deploy_device}}
    return JobMemory(arch, shape, options, spec.sample_every != 0, device, deploy_device, budgets)


def check(spec: TrainSpec, model_ref: str, settings: Settings, device: str) -> str | None:
    """The note for the job's details, or None when there is no budget to compare with.

    Raises TrainingError when a stage's counted bytes exceed its device's budget.
    """
    try:
        memory = job_memory(spec, model_ref, settings, device)
    except Exception as exc:  # noqa: BLE001 - the plan is advice: configs it cannot read must not fail a job
        logger.warning("memory plan skipped: the architecture of %s could not be counted (%s)", model_ref, exc)
        return None
    stages = memory.stages()
    for stage in stages:
        logger.info("memory plan: %s on %s: %d bytes counted, peak %d bytes", stage.name,
                    memory.device_of(stage.name), stage.counted, stage.peak)
    if all(memory.budget(stage.name) is None for stage in stages):
        return None
    for stage in stages:
        if _over(memory, stage, "counted"):
            raise TrainingError(_refusal(memory, stage, settings))
    return _note(memory, stages, settings)


def _source(settings: Settings) -> str:
    if settings.gpu_memory_gb is not None:
        return f"LORAFORGE_GPU_MEMORY_GB={settings.gpu_memory_gb:g}"
    return "the device's total memory"


def _refusal(memory: JobMemory, stage: mp.Stage, settings: Settings) -> str:
    device, budget = memory.device_of(stage.name), memory.budget(stage.name)
    assert budget is not None  # only a stage over its budget is refused
    return (f"not enough memory on {device} for {STAGE_WORDS[stage.name].task}: it needs at least "
            f"{gb(stage.counted)} ({COUNTED_WORDS[stage.name]}) and {gb(budget)} is available "
            f"({_source(settings)}); {_advice(memory, stage, budget, settings, counted=True)}")


def _note(memory: JobMemory, stages: list[mp.Stage], settings: Settings) -> str:
    over = [s for s in stages if _over(memory, s, "peak")]
    worst = over[0] if over else max((s for s in stages if memory.budget(s.name) is not None), key=lambda s: s.peak)
    budget = memory.budget(worst.name)
    assert budget is not None  # `check` returns early when no stage has a budget
    opt = memory.options
    options = ", ".join([opt.weights if opt.unit == mp.BF16 else "fp32",
                         "gradient checkpointing" if opt.checkpointing else "no gradient checkpointing"])
    figures = ", ".join(f"{STAGE_LABELS[s.name]} {gb(s.peak)}" for s in stages)
    head = (f"memory plan on {memory.device_of(worst.name)}: peak {gb(worst.peak)} in {STAGE_LABELS[worst.name]} "
            f"of a {gb(budget)} budget ({_source(settings)}); per stage: {figures} ({options})")
    if not over:
        return head
    return (f"{head}. The weights fit but the estimated activations may not: if it runs out of memory, "
            f"{_advice(memory, worst, budget, settings, counted=False)}")


def _advice(memory: JobMemory, stage: mp.Stage, budget: int, settings: Settings, *, counted: bool) -> str:
    """What would make `stage` fit: a lower resolution or batch, quantized base weights, more memory.

    `counted`: the counted bytes are over (resolution and batch change only the activations).
    """
    figure = "counted" if counted else "peak"
    options: list[str] = []
    remark = ""
    if stage.name != "deploy" and not counted:
        resolution = _fitting_resolution(memory, STAGES.index(stage.name), budget)
        if resolution is not None:
            options.append(f"lower advance_parameters.resolution to {resolution} (activations grow with its square)")
        if memory.shape.batch > 1:
            options.append("lower advance_parameters.batch_size")
    if stage.name != "deploy" and memory.device.startswith("cuda"):
        weights, stages = _quantized(memory, figure)
        over = [s for s in stages if _over(memory, s, figure)]
        if weights and not over:
            options.append(f"ask the operator to set LORAFORGE_BASE_WEIGHTS={weights} on the worker (the job then "
                           f"peaks at about {gb(max(s.peak for s in stages if memory.device_of(s.name) == memory.device))})")
        elif weights and [s.name for s in over] == ["deploy"]:
            remark = (f" (LORAFORGE_BASE_WEIGHTS={weights} would fit training, but the deploy check loads the "
                      f"pipeline unquantized: {gb(over[0].counted)} at least)")
    cuda = memory.device_of(stage.name).startswith("cuda")
    if stage.name == "deploy" and cuda:
        options.append("ask the operator to run deploy checks on a larger GPU (LORAFORGE_INFERENCE_DEVICE)")
    options.append("submit with a machine_type that has more GPU memory" if cuda
                   else "raise LORAFORGE_GPU_MEMORY_GB on the worker if the host has the memory")
    return "; or ".join(options) + remark


def _over(memory: JobMemory, stage: mp.Stage, figure: str) -> bool:
    budget = memory.budget(stage.name)
    return budget is not None and getattr(stage, figure) > budget


def _quantized(memory: JobMemory, figure: str) -> tuple[str | None, list[mp.Stage]]:
    """The first LORAFORGE_BASE_WEIGHTS besides the job's with which only the deploy check, or
    nothing, is over budget, and the stages with it; (None, []) when none helps."""
    for weights in ("fp8", "nf4"):
        if weights == memory.options.weights:
            continue
        stages = memory.stages(replace(memory.options, weights=weights))
        if all(s.name == "deploy" for s in stages if _over(memory, s, figure)):
            return weights, stages
    return None, []


def _fitting_resolution(memory: JobMemory, index: int, budget: int) -> int | None:
    """The largest resolution (a multiple of 64, at least LOWEST_RESOLUTION) at which the stage's
    estimated peak fits, when it is below the job's."""
    top = (memory.shape.resolution - 1) // 64 * 64  # the multiple of 64 just below (1000 -> 960)
    for resolution in range(top, LOWEST_RESOLUTION - 1, -64):
        if memory.stages(shape=replace(memory.shape, resolution=resolution))[index].peak <= budget:
            return resolution
    return None
