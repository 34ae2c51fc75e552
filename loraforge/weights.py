"""Base model weights on disk: which are configured, whether they are complete, fetching them.

A base model's weights are a hub id (`black-forest-labs/FLUX.1-dev`, kept in the Hugging Face
cache, HF_HOME) or a local diffusers folder (LORAFORGE_MODEL_QWEN / LORAFORGE_MODEL_FLUX); unset
means the tiny demo model. `missing_weights(ref)` says what is absent without touching the network:
the pipeline's `model_index.json`, a component folder it names, or a shard its
`*.safetensors.index.json` lists. `pull(ref)` downloads a hub snapshot with
huggingface_hub's progress bars and turns the hub's refusals into what to do: a gated model
(FLUX.1-dev) needs its license accepted and HF_TOKEN.
"""

from __future__ import annotations

import json
from pathlib import Path

from loraforge.config import Settings
from loraforge.errors import ConfigError
from loraforge.families.registry import BY_KEY, WEIGHTS

TOKEN_HELP = (
    "set HF_TOKEN to a read token from https://huggingface.co/settings/tokens of an account that "
    "accepted the model's license on its hub page"
)


def configured(settings: Settings) -> dict[str, str | None]:
    """QWEN / FLUX (each family's weights name) -> the configured hub id or folder (None: the tiny demo model)."""
    return {name: family.weights_ref(settings) for name, family in WEIGHTS.items()}


def real_model_id(name: str) -> str:
    """The published hub id of a weights name (QWEN -> Qwen/Qwen-Image); KeyError if unknown."""
    return WEIGHTS[name].hub_id


def is_local(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or Path(ref).expanduser().exists()


def local_snapshot(ref: str) -> Path | None:
    """The folder holding `ref`: the folder itself, or the cached hub snapshot (no network)."""
    if is_local(ref):
        path = Path(ref).expanduser()
        return path if path.is_dir() else None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(ref, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        return None


def missing_weights(ref: str) -> str | None:
    """None when `ref` is a complete diffusers pipeline on this disk, else what is missing."""
    folder = local_snapshot(ref)
    if folder is None:
        return f"{ref} is not on this disk" if not is_local(ref) else f"folder {ref} does not exist"
    index = folder / "model_index.json"
    if not index.is_file():
        return f"{folder} has no model_index.json (not a diffusers pipeline folder)"
    components = json.loads(index.read_text())
    for name, spec in components.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue
        part = folder / name
        if not part.is_dir() or not any(part.iterdir()):
            return f"component {name}/ is missing from {folder}"
        for shard_index in part.glob("*.safetensors.index.json"):
            shards = set(json.loads(shard_index.read_text()).get("weight_map", {}).values())
            absent = sorted(s for s in shards if not (part / s).is_file())
            if absent:
                return f"{name}/{absent[0]} is missing ({len(absent)} of {len(shards)} shards)"
    return None


def pull(ref: str) -> Path:
    """Download the hub snapshot `ref` (progress bars on stderr) and check it is complete.

    Raises ConfigError saying what to do when the hub refuses (gated, no token, unknown id,
    offline) or the download is incomplete.
    """
    if is_local(ref):
        problem = missing_weights(ref)
        if problem:
            raise ConfigError(f"{problem}; a local folder is not downloaded, copy the pipeline there")
        return Path(ref).expanduser()
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        folder = Path(snapshot_download(ref))
    except HFValidationError:
        raise ConfigError(f"{ref!r} is neither an existing folder nor a hub id such as {BY_KEY['flux'].hub_id}") from None
    except GatedRepoError:
        raise ConfigError(
            f"{ref} is gated: accept its license at https://huggingface.co/{ref} while logged in, then {TOKEN_HELP}"
        ) from None
    except RepositoryNotFoundError:
        raise ConfigError(
            f"{ref} was not found on the hub, or it is private and no valid token was sent; check the id, "
            f"or {TOKEN_HELP}"
        ) from None
    except LocalEntryNotFoundError:
        raise ConfigError(
            f"{ref} is not in the local cache and the hub cannot be reached (HF_HUB_OFFLINE=1, or no "
            f"network): unset HF_HUB_OFFLINE, or run `loraforge models pull` where the hub is reachable "
            f"(gated models: {TOKEN_HELP}) and copy HF_HOME here"
        ) from None
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        hint = TOKEN_HELP if status in (401, 403) else "retry; the download resumes where it stopped"
        raise ConfigError(f"downloading {ref} failed (HTTP {status}): {hint}") from None
    problem = missing_weights(str(folder)) if (folder / "model_index.json").exists() else "no model_index.json"
    if problem:
        raise ConfigError(f"{ref} downloaded but incomplete: {problem}; run the pull again")
    return folder
