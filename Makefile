# Two commands: `make run` and `make test`. Both set everything up from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install system-deps lint typecheck unit bench fuzz clean

# The main job: a node on the embedded broker with three demo peers; Ctrl-C says chau.
run: $(STAMP)
	$(BIN)/hereabouts up --peers 3

test: $(STAMP) system-deps lint typecheck unit

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "hereabouts needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

system-deps:
	@bash scripts/system-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP) system-deps
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/liveness.py
	$(BIN)/python bench/site_hub.py

# atheris on every decoder of signed input, 60 s each (FUZZ_ARGS="--seconds 600" for longer).
fuzz: $(VENV)/.fuzz-installed
	$(BIN)/python bench/fuzz.py $(FUZZ_ARGS)

$(VENV)/.fuzz-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,fuzz]'
	touch $@

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
