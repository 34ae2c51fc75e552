"""The ObjectStore contract, run unchanged against local disk and SeaweedFS S3."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from loraforge.errors import ConfigError, NotFoundError, PayloadTooLargeError, ValidationError
from loraforge.storage import ObjectStore, open_store
from tests.fixtures.backends import make_settings

pytestmark = pytest.mark.backends("storage")  # the stores themselves are under test


def test_put_bytes_returns_the_sha256_and_reads_back(store: ObjectStore) -> None:
    data = b"lora weights" * 1000
    stored = store.put_bytes("models/job-1/demo.safetensors", data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert store.get_bytes("models/job-1/demo.safetensors") == data
    assert store.sha256("models/job-1/demo.safetensors") == stored.sha256
    assert store.size("models/job-1/demo.safetensors") == len(data)


def test_put_file_and_get_file_round_trip(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "in.zip"
    source.write_bytes(b"PK" + bytes(range(256)) * 300)
    stored = store.put_file("uploads/u1/f1-data.zip", source, content_type="application/zip")
    dest = store.get_file("uploads/u1/f1-data.zip", tmp_path / "out" / "copy.zip")
    assert dest.read_bytes() == source.read_bytes()
    assert stored.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert [p.name for p in dest.parent.iterdir()] == ["copy.zip"]  # no temp file left behind


def test_put_stream_over_the_cap_stores_nothing(store: ObjectStore) -> None:
    with pytest.raises(PayloadTooLargeError, match="limit"):
        store.put_stream("uploads/u1/big.zip", io.BytesIO(b"x" * 5000), max_bytes=4096)
    assert not store.exists("uploads/u1/big.zip")
    assert store.list("") == []


def test_a_rewrite_replaces_the_object_whole(store: ObjectStore) -> None:
    store.put_bytes("checkpoints/j/step-1/state.bin", b"old" * 10)
    store.put_stream("checkpoints/j/step-1/state.bin", io.BytesIO(b"new!"), max_bytes=100)
    assert store.get_bytes("checkpoints/j/step-1/state.bin") == b"new!"


def test_list_delete_and_missing_objects(store: ObjectStore) -> None:
    for key in ["samples/j1/a.png", "samples/j1/b.png", "samples/j2/c.png"]:
        store.put_bytes(key, b"png")
    store.set_public("samples/j1/a.png", True)
    assert store.list("samples/j1/") == ["samples/j1/a.png", "samples/j1/b.png"]
    store.delete("samples/j1/a.png")
    store.delete("samples/j1/a.png")  # deleting twice is fine
    assert not store.exists("samples/j1/a.png")
    assert store.size("samples/j1/a.png") is None
    with pytest.raises(NotFoundError, match="samples/j1/a.png"):
        store.get_bytes("samples/j1/a.png")
    assert store.list("") == ["samples/j1/b.png", "samples/j2/c.png"]


@pytest.mark.parametrize("key", ["../etc/passwd", "/etc/passwd", "a/../../b", "a//b", "a/./b", ".meta/x",
                                 "a\\..\\b", "", "a/\x00b"])
def test_keys_that_could_escape_the_store_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValidationError):
        store.put_bytes(key, b"x")


def test_object_url_round_trips_through_key_from_url(store: ObjectStore) -> None:
    key = "uploads/u1/f 1-my data.zip"
    store.put_bytes(key, b"zip")
    assert store.key_from_url(store.object_url(key)) == key
    assert store.key_from_url(store.public_url(key)) == key
    assert store.key_from_url("https://elsewhere.example.com/files/uploads/u1/x.zip") is None


def test_objects_are_private_until_marked_public(store: ObjectStore) -> None:
    store.put_bytes("models/j/m.safetensors", b"w")
    assert not store.is_public("models/j/m.safetensors")
    store.set_public("models/j/m.safetensors", True)
    assert store.is_public("models/j/m.safetensors")
    store.set_public("models/j/m.safetensors", False)
    assert not store.is_public("models/j/m.safetensors")


def test_open_store_uses_the_local_disk_by_default(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "local", storage_url="")
    store = open_store(settings)
    store.put_bytes("a/b.txt", b"hi")
    assert (tmp_path / "data" / "storage" / "a" / "b.txt").read_bytes() == b"hi"


def test_a_relative_file_url_is_a_folder_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(make_settings(tmp_path, "local", storage_url="file://./objects"))
    store.put_bytes("a.txt", b"hi")
    assert (tmp_path / "objects" / "a.txt").read_bytes() == b"hi"


def test_half_a_pair_of_s3_credentials_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LORAFORGE_S3_SECRET_ACCESS_KEY"):
        make_settings(tmp_path, "local", s3_access_key_id="only-the-id")


def test_list_matches_key_prefixes_not_only_folders(store: ObjectStore) -> None:
    for key in ["checkpoints/j1/step-1/a", "checkpoints/j1/step-2/a", "checkpoints/j10/step-1/a", "top.txt"]:
        store.put_bytes(key, b".")
    assert store.list("checkpoints/j1/") == ["checkpoints/j1/step-1/a", "checkpoints/j1/step-2/a"]
    assert store.list("checkpoints/j1") == [
        "checkpoints/j1/step-1/a", "checkpoints/j1/step-2/a", "checkpoints/j10/step-1/a"]
    assert store.list("top") == ["top.txt"]
    assert store.list("nothing/here/") == []
