# The quick start: `make serve` then `make test`. `make install` builds .venv; the others call it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test lint docs reference bench-train bench-api clean

install: $(STAMP)

# torch==2.13.0 first: it is the CPU build on this disk; anything else would pull a CUDA build.
# On a GPU machine: make install TORCH_INDEX=https://download.pytorch.org/whl/cu128 (docs/operate/gpus.md).
TORCH_INDEX ?=
$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX),)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

serve: install
	$(BIN)/loraforge serve

test: install
	$(BIN)/python -m pytest -q

# Read endpoints under load with 10,000 jobs in PostgreSQL (wrk if installed, else an async client).
bench-api: install
	$(BIN)/python bench/api_load.py

# ruff on the code and tests; mypy, strict, on the package (settings: [tool.mypy] in pyproject.toml).
lint: install
	$(BIN)/ruff check loraforge tests bench
	$(BIN)/mypy loraforge

# The docs site (mkdocs.yml, docs/) into site/; --strict: a broken link or a stale generated page fails.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Rewrites the generated docs pages (configuration, CLI, settings tables) from the code.
reference: install
	$(BIN)/python tools/docs_reference.py

clean:
	rm -rf $(VENV) data .pytest_cache site
