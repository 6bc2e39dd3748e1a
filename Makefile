# Two commands: `make run` and `make test`. Both set everything up from nothing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install system-deps lint typecheck unit bench fuzz clean

# The main job: a node on the embedded broker with three demo peers; Ctrl-C says chau.
# More options for hereabouts up: make run ARGS="--http 127.0.0.1:9000 --broker-port 1884"
ARGS ?=
run: $(STAMP)
	@$(BIN)/hereabouts up --peers 3 $(ARGS)

test: $(STAMP) system-deps lint typecheck unit

install: $(STAMP)

# Set-up steps say what they do, turn a spinner on a terminal, and show pip's output only
# if it fails (scripts/step.sh).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "hereabouts needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@echo "hereabouts: setting up $(VENV) (once; a minute or two on a fresh machine)"
	@scripts/step.sh "creating $(VENV)" $(PYTHON) -m venv $(VENV)
	@scripts/step.sh "updating pip" $(BIN)/python -m pip install --quiet --upgrade pip
	@scripts/step.sh "installing hereabouts and its dependencies" \
	  $(BIN)/python -m pip install --quiet -e '.[test,sim]'
	@touch $(STAMP)

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
	$(BIN)/python bench/mesh.py

# atheris on every decoder of signed input, 60 s each (FUZZ_ARGS="--seconds 600" for longer).
fuzz: $(VENV)/.fuzz-installed
	$(BIN)/python bench/fuzz.py $(FUZZ_ARGS)

$(VENV)/.fuzz-installed: $(STAMP)
	@scripts/step.sh "installing atheris for fuzzing" \
	  $(BIN)/python -m pip install --quiet -e '.[test,fuzz]'
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
