"""Settings refuse unsafe or contradictory values at start, naming the variable."""

import pytest

from loraforge.config import load_settings
from loraforge.errors import ConfigError


def test_defaults_use_sqlite_and_local_disk_under_data_dir(tmp_path):
    settings = load_settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/loraforge.db"
    assert settings.resolved_storage_url == f"file://{tmp_path.resolve()}/storage"
    assert not settings.uses_broker


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"public_url": "ftp://x"}, "PUBLIC_URL"),
        ({"storage_url": "gs://bucket"}, "STORAGE_URL"),
        ({"broker_url": "kafka://x"}, "BROKER_URL"),
        ({"secret_key": "short"}, "SECRET_KEY"),
        ({"port": 0}, "PORT"),
        ({"inference_device": "gpu7"}, "INFERENCE_DEVICE"),
        ({"gpu_memory_gb": 0}, "GPU_MEMORY_GB"),
        ({"inference_queue_size": 0}, "INFERENCE_QUEUE_SIZE"),
        ({"broker_url": "redis://127.0.0.1:6379/0", "database_url": "sqlite:///x.db"}, "shared database"),
        ({"upload_expiry_s": 60, "presign_expiry_s": 3600}, "UPLOAD_EXPIRY_S"),
        ({"max_header_bytes": 10}, "MAX_HEADER_BYTES"),
        ({"quota_active_jobs": 0}, "QUOTA_ACTIVE_JOBS"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        load_settings(**overrides)


def test_environment_variables_use_the_loraforge_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("LORAFORGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LORAFORGE_ALLOW_PRIVATE_URLS", "true")
    settings = load_settings()
    assert settings.data_dir == tmp_path
    assert settings.allow_private_urls is True


def test_signing_secret_is_created_once_and_kept(tmp_path):
    first = load_settings(data_dir=tmp_path).signing_secret()
    second = load_settings(data_dir=tmp_path).signing_secret()
    assert first == second and len(first) >= 32


def test_unknown_variables_name_the_closest_setting_and_skip_the_test_suites_own():
    from loraforge.config import unknown_variables

    warnings = unknown_variables({"LORAFORGE_MODELS_FLUX": "x", "LORAFORGE_FOO": "1", "LORAFORGE_PORT": "9",
                                  "LORAFORGE_TEST_POSTGRES": "postgresql://", "OTHER": "1"})
    assert warnings == [
        "LORAFORGE_FOO is not a loraforge setting and is ignored; see docs/reference/configuration.md",
        "LORAFORGE_MODELS_FLUX is not a loraforge setting and is ignored; did you mean LORAFORGE_MODEL_FLUX?",
    ]
