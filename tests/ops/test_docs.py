"""The docs site's generated pages are what the code generates now, and the configuration reference
names every setting. `make docs` (mkdocs build --strict, in .ci/run) checks the links and the nav;
tests/ops/test_readme.py runs the live blocks."""

from __future__ import annotations

from pathlib import Path

from loraforge.config import Settings
from tools import docs_reference

REPO = Path(__file__).resolve().parents[2]


def test_generated_pages_are_up_to_date() -> None:
    stale = [str(path.relative_to(REPO)) for path in docs_reference.stale()]
    assert stale == [], f"out of date: {stale}; run `make reference` (tools/docs_reference.py)"


def test_every_setting_is_in_the_configuration_reference_with_a_description() -> None:
    page = docs_reference.CONFIG_PAGE.read_text()
    for name, field in Settings.model_fields.items():
        variable = f"LORAFORGE_{name.upper()}"
        assert f"| `{variable}` |" in page, f"{variable} is missing from docs/reference/configuration.md"
        assert field.description, f"{variable} has no description: give the field a docstring"
    assert "`LORAFORGE_EMBEDDED_WORKER`" in page


def test_the_cli_reference_holds_every_subcommand() -> None:
    page = docs_reference.CLI_PAGE.read_text()
    for command in ("serve", "worker", "keys create", "keys list", "keys revoke", "train", "models tiny",
                    "models pull", "generate", "doctor", "plan"):
        assert f"## loraforge {command}\n" in page, command


def test_a_settings_table_in_any_page_is_filled_from_the_fields() -> None:
    text = "before\n<!-- settings: port lease_seconds -->\nanything\n<!-- /settings -->\nafter\n"
    filled = docs_reference.with_settings_tables(text)
    assert filled.startswith("before\n<!-- settings: port lease_seconds -->\n| variable |")
    assert "| `LORAFORGE_PORT` | integer | `8000` | >= 1, <= 65535 |" in filled
    assert "| `LORAFORGE_LEASE_SECONDS` | integer | `300` | >= 10 |" in filled
    assert "anything" not in filled and filled.endswith("<!-- /settings -->\nafter\n")


def test_the_openapi_page_is_the_apps_document() -> None:
    import json

    document = json.loads(docs_reference.OPENAPI_PAGE.read_text())
    for path in ("/finetune/request/submit", "/finetune/request/details", "/finetune/request/list",
                 "/finetune/request/upload/pre-signed-url", "/finetune/request/access-update",
                 "/finetune/request/file/download", "/webhook/add", "/v1/{slug}"):
        assert path in document["paths"], path
