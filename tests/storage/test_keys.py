"""The storage key layout, spelled out: keys already stored and handed out in URLs must never change."""

from __future__ import annotations

from loraforge.storage import keys

JOB = "0b6c1f0e-5f63-4c55-9d51-3f1f2f7f6a10"


def test_every_key_is_built_byte_for_byte_as_stored_today() -> None:
    assert keys.upload_key("u1", "f1", "my-photos", ".zip") == "uploads/u1/f1-my-photos.zip"
    assert keys.model_key(JOB, "cat-ab12") == f"models/{JOB}/cat-ab12.safetensors"
    assert keys.model_key(JOB, "cat-ab12", keys.COMFY_SUFFIX) == f"models/{JOB}/cat-ab12.comfyui.safetensors"
    assert keys.intermediate_key(JOB, "cat-ab12", 250) == f"models/{JOB}/cat-ab12-step-250.safetensors"
    assert keys.checkpoints_prefix(JOB) == f"checkpoints/{JOB}/"
    assert keys.checkpoint_prefix(JOB, 40) == f"checkpoints/{JOB}/step-40/"
    assert keys.sample_key(JOB, 40, 2) == f"samples/{JOB}/step-40/2.png"
    assert keys.report_key(JOB) == f"datasets/{JOB}/dataset_report.json"
    assert keys.job_prefixes(JOB) == (f"models/{JOB}/", f"checkpoints/{JOB}/", f"samples/{JOB}/", f"datasets/{JOB}/")


def test_every_built_key_lies_under_one_of_its_jobs_prefixes() -> None:
    built = [keys.model_key(JOB, "s"), keys.intermediate_key(JOB, "s", 1), keys.checkpoint_prefix(JOB, 1) + "x",
             keys.sample_key(JOB, 1, 0), keys.report_key(JOB)]
    assert all(any(key.startswith(p) for p in keys.job_prefixes(JOB)) for key in built)


def test_keys_are_parsed_where_they_are_built() -> None:
    assert keys.upload_owner("uploads/u1/f1-a.zip") == "u1"
    assert keys.upload_owner("uploads/u1") is None and keys.upload_owner(f"models/{JOB}/a") is None
    assert keys.is_upload("uploads/u1/f1-a.zip") and not keys.is_upload("uploadsx/u1/a.zip")
    assert keys.is_sample_image(keys.sample_key(JOB, 1, 0)) and not keys.is_sample_image(f"samples/{JOB}/a.json")
    assert keys.model_job_id(keys.intermediate_key(JOB, "s", 3)) == (JOB, "s-step-3.safetensors")
    assert keys.model_job_id("uploads/u1/f1-a.zip") is None and keys.model_job_id(None) is None
    assert keys.is_model_file_of("s", "s.comfyui.safetensors") and keys.is_model_file_of("s", "s-step-3.safetensors")
    assert not keys.is_model_file_of("s", "s.safetensors") and not keys.is_model_file_of("s", "t-step-3.safetensors")
