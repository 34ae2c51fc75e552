"""What the worker moves between the object store and its scratch folder: data, checkpoints, the LoRA.

The data of a job is either an upload of ours (its `s3_url` points into our store, so it is read
from storage and the owner's key never leaves the service) or a public URL (HEAD for the size,
then a streamed, capped GET through the SSRF guard). Checkpoints go to
`checkpoints/{finetune_id}/step-{n}/` as the trainer writes them, only the newest is kept, and a
restarted worker copies the newest back before resuming. The LoRA goes to
`models/{finetune_id}/{slug}.safetensors` (plus the ComfyUI copy beside it).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path, PurePosixPath

from loraforge.config import Settings
from loraforge.errors import DatasetError, StorageError
from loraforge.storage import keys
from loraforge.storage.base import ObjectStore, StoredObject

logger = logging.getLogger(__name__)

COMPLETE = "_checkpoint_complete"  # written last; keys may not start with a dot


def fetch_data(store: ObjectStore, settings: Settings, url: str, dest_dir: Path,
               expected_sha256: str | None = None) -> Path:
    """Bring the dataset of `url` to `dest_dir`; raise an actionable error if it cannot be had.

    `expected_sha256` is the upload's hash recorded at submit: an upload link stays valid after
    submit, so the file may have been replaced since; then the job fails rather than train on
    data nobody submitted (DatasetError "the dataset changed after submit").
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    key = store.key_from_url(url)
    if key is not None:
        suffix = PurePosixPath(key).suffix or ".zip"
        dest = dest_dir / f"dataset{suffix}"
        if not store.exists(key):
            raise DatasetError(
                f"data_source_path {url} has no file behind it: upload the ZIP with the pre-signed URL "
                "(PUT) before submitting, or submit again with a new upload"
            )
        store.get_file(key, dest)
        if expected_sha256 is not None:
            _check_unchanged(url, dest, expected_sha256)
        return dest
    from loraforge.datasets.download import download, probe

    suffix = PurePosixPath(url.split("?", 1)[0]).suffix.lower()
    dest = dest_dir / f"dataset{suffix if suffix in ('.zip',) else '.zip'}"
    probe(url, settings)
    return download(url, dest, settings)


def _check_unchanged(url: str, path: Path, expected_sha256: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected_sha256:
        raise DatasetError(
            f"the dataset changed after submit: {url} now holds a different file (sha256 "
            f"{digest.hexdigest()[:12]}..., submitted {expected_sha256[:12]}...); this job trains only on "
            "the file that was submitted. Upload the new ZIP with a new pre-signed URL and submit again"
        )


def upload_checkpoint(store: ObjectStore, job_id: str, path: Path, step: int) -> str:
    """Copy the checkpoint at `path` (a folder or a file) to storage; return its prefix."""
    prefix = keys.checkpoint_prefix(job_id, step)
    files = [p for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [path]
    files = [p for p in files if not any(part.startswith(".") for part in p.relative_to(path.parent).parts)]
    for file in files:
        rel = file.relative_to(path).as_posix() if path.is_dir() else file.name
        store.put_file(prefix + rel, file)
    # The marker goes last: a checkpoint without it was cut short and is never restored.
    store.put_bytes(prefix + COMPLETE, str(step).encode())
    return prefix


def prune_checkpoints(store: ObjectStore, job_id: str, keep_step: int | None) -> None:
    """Delete every stored checkpoint of the job except `keep_step` (all of them if None)."""
    keep = keys.checkpoint_prefix(job_id, keep_step) if keep_step is not None else None
    for key in store.list(keys.checkpoints_prefix(job_id)):
        if keep is None or not key.startswith(keep):
            store.delete(key)


def restore_checkpoint(store: ObjectStore, job_id: str, step: int, target: Path) -> bool:
    """Copy checkpoint `step` back to `target` (the folder the trainer wrote it to)."""
    prefix = keys.checkpoint_prefix(job_id, step)
    stored = store.list(prefix)
    if prefix + COMPLETE not in stored:
        logger.warning("job %s: checkpoint step %d in storage is incomplete; starting over", job_id, step)
        return False
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    for key in stored:
        rel = key[len(prefix):]
        if rel == COMPLETE:
            continue
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        store.get_file(key, dest)
    logger.info("job %s: restored checkpoint step %d from storage", job_id, step)
    return True


def upload_lora(store: ObjectStore, job_id: str, slug: str, lora_path: Path,
                comfy_path: Path | None, *, public: bool) -> tuple[StoredObject, str]:
    """Store the LoRA (and its ComfyUI copy); return it and the URL for `cloud_storage_url`.

    A public LoRA (FAST_FLUX) is marked public and its URL is the store's key-less link, whose
    path holds the random job id; otherwise the URL is the object's, which file/download signs.
    """
    if not lora_path.is_file():
        raise StorageError(f"training reported {lora_path} but the file is missing")
    key = keys.model_key(job_id, slug)
    stored = store.put_file(key, lora_path)
    if comfy_path is not None and comfy_path.is_file():
        store.put_file(keys.model_key(job_id, slug, keys.COMFY_SUFFIX), comfy_path)
    if not public:
        return stored, store.object_url(key)
    store.set_public(key, True)
    return stored, store.public_url(key)
