"""Migration 0009 drops the four columns nothing read, keeps every row, and downgrades cleanly."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, text

from loraforge.db.base import make_engine
from loraforge.db.migrate import alembic_config, upgrade

DROPPED = {"job_runs": {"attempts", "lora_sha256"}, "uploads": {"completed_ts", "public"}}


def _columns(url: str) -> dict[str, set[str]]:
    engine = make_engine(url)
    try:
        return {table: {c["name"] for c in inspect(engine).get_columns(table)} for table in DROPPED}
    finally:
        engine.dispose()


def _execute(url: str, *statements: str) -> list[tuple]:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            rows = [connection.execute(text(s)) for s in statements]
            return [tuple(r) for r in rows[-1]] if rows[-1].returns_rows else []
    finally:
        engine.dispose()


def test_0009_drops_the_unread_columns_and_keeps_the_rows(database_url: str) -> None:
    upgrade(database_url, "0008")
    _execute(
        database_url,
        "INSERT INTO users (id, name, created_ts) VALUES ('u1', 'u', CURRENT_TIMESTAMP)",
        "INSERT INTO uploads (id, user_id, key, name, extension, public, size, sha256, created_ts, completed_ts) "
        "VALUES ('f1', 'u1', 'uploads/u1/f1-a.zip', 'a.zip', '.zip', true, 7, 'ab', CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP)",
        "INSERT INTO finetune_jobs (id, user_id, name, data_source_path, instance_prompt, trigger_word, base_model,"
        " theme, machine_type, train_type, segmind_public, advance_parameters, status, slug, source_type,"
        " model_information, created_ts, updated_ts) VALUES ('j1', 'u1', 'n', 'p', 'a TOK', 'TOK', 'QWEN', 'QWEN', 'M', 'LORA', false,"
        " '{}', 'AVAILABLE', 's', 'UPLOAD', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        "INSERT INTO job_runs (job_id, attempts, cancel_requested, lora_sha256, step, publish_count) "
        "VALUES ('j1', 2, false, 'cd', 5, 0)",
    )
    upgrade(database_url)
    assert all(not (names & DROPPED[t]) for t, names in _columns(database_url).items())
    assert _execute(database_url, "SELECT key, size, sha256 FROM uploads") == [("uploads/u1/f1-a.zip", 7, "ab")]
    assert _execute(database_url, "SELECT job_id, step FROM job_runs") == [("j1", 5)]

    command.downgrade(alembic_config(database_url), "0008")
    assert all(DROPPED[t] <= names for t, names in _columns(database_url).items())
    assert _execute(database_url, "SELECT key, size, public, completed_ts FROM uploads") == [
        ("uploads/u1/f1-a.zip", 7, False, None)]
    assert _execute(database_url, "SELECT job_id, step, attempts, lora_sha256 FROM job_runs") == [("j1", 5, 0, None)]
    upgrade(database_url)  # and up again, as the next start of a server would
    assert all(not (names & DROPPED[t]) for t, names in _columns(database_url).items())
