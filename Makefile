# The quick start: `make serve` then `make test`. `make install` builds .venv; the others call it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test lint bench-train bench-api clean

install: $(STAMP)

# torch==2.13.0 first: it is the CPU build on this disk; anything else would pull a CUDA build.
# On a GPU machine: make install TORCH_INDEX=https://download.pytorch.org/whl/cu128 (README: Running on a GPU).
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

lint: install
	$(BIN)/ruff check loraforge tests bench

clean:
	rm -rf $(VENV) data .pytest_cache
