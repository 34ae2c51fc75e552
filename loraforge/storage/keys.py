"""The object-store key layout: every key the service writes is built here, and parsed here.

    uploads/{user}/{file_id}-{name}.zip                 a dataset upload (the pre-signed PUT)
    models/{finetune_id}/{slug}.safetensors             the LoRA, with {slug}.comfyui.safetensors
                                                        and {slug}-step-{n}.safetensors beside it
    checkpoints/{finetune_id}/step-{n}/...              a resumable checkpoint, as the trainer wrote it
    samples/{finetune_id}/step-{n}/{k}.png              sample image k of the set taken at step n
    datasets/{finetune_id}/dataset_report.json          what preparation kept and dropped, and why

Everything stored for a job lives under one of `job_prefixes(id)`, which is how delete finds it;
the upload is the user's and is deleted with its last job. Keys are stored in the database
(uploads.key, job_artifacts.key) and inside URLs handed out, so this layout may only grow.
"""

from __future__ import annotations

import re

UPLOADS, MODELS, CHECKPOINTS, SAMPLES, DATASETS = "uploads", "models", "checkpoints", "samples", "datasets"
LORA_SUFFIX = ".safetensors"
COMFY_SUFFIX = ".comfyui.safetensors"
REPORT_NAME = "dataset_report.json"


def upload_key(user_id: str, file_id: str, safe_name: str, extension: str) -> str:
    """`safe_name` is already reduced to [A-Za-z0-9._-]; `extension` has its dot (".zip")."""
    return f"{UPLOADS}/{user_id}/{file_id}-{safe_name}{extension}"


def model_key(job_id: str, slug: str, suffix: str = LORA_SUFFIX) -> str:
    return f"{MODELS}/{job_id}/{slug}{suffix}"


def intermediate_key(job_id: str, slug: str, step: int) -> str:
    return f"{MODELS}/{job_id}/{slug}-step-{step}{LORA_SUFFIX}"


def checkpoints_prefix(job_id: str) -> str:
    return f"{CHECKPOINTS}/{job_id}/"


def checkpoint_prefix(job_id: str, step: int) -> str:
    return f"{CHECKPOINTS}/{job_id}/step-{step}/"


def sample_key(job_id: str, step: int, index: int) -> str:
    return f"{SAMPLES}/{job_id}/step-{step}/{index}.png"


def report_key(job_id: str) -> str:
    return f"{DATASETS}/{job_id}/{REPORT_NAME}"


def job_prefixes(job_id: str) -> tuple[str, ...]:
    """The prefixes under which every object of one job lives (its upload aside)."""
    return tuple(f"{top}/{job_id}/" for top in (MODELS, CHECKPOINTS, SAMPLES, DATASETS))


def upload_owner(key: str) -> str | None:
    """The user id of a dataset upload's key, else None."""
    parts = key.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == UPLOADS else None


def is_upload(key: str) -> bool:
    return key.startswith(f"{UPLOADS}/")


def is_sample_image(key: str) -> bool:
    return key.startswith(f"{SAMPLES}/") and key.endswith(".png")


def model_job_id(key: str | None) -> tuple[str, str] | None:
    """(finetune_id, file name) of a key under models/, else None."""
    parts = key.split("/") if key else []
    if len(parts) >= 3 and parts[0] == MODELS:
        return parts[1], "/".join(parts[2:])
    return None


def is_model_file_of(slug: str, name: str) -> bool:
    """True when `name` (under models/{id}/) is one of the files beside the LoRA `slug`: its
    ComfyUI copy or an intermediate LoRA (the LoRA itself is matched by its URL)."""
    return re.fullmatch(rf"{re.escape(slug)}(\.comfyui|-step-\d+)\.safetensors", name) is not None
