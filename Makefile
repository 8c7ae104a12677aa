# Every target installs what it needs into .venv first (python3 -m venv + pip).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck check faults engines clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## the main job on embedded defaults: local Kafka + simulator + worker
	$(BIN)/evalstream-local demo

test: $(STAMP)  ## the test suite (starts its own Kafka broker)
	$(BIN)/python -m pytest -q -m "not faults and not engine"

faults: $(STAMP)  ## fault-injection suite: kill -9, broker restarts, stalls
	$(BIN)/python -m pytest -q -m faults

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check consumer producer tests benchmarks deploy
	$(BIN)/python -m benchmarks.render --check  # tables match their raw files
	$(BIN)/python -m deploy.grafana.dashboard --check  # the dashboard JSON matches its code

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

engines: $(STAMP)  ## real engines (llama-server, Ollama) built or reused, then their tests
	bash deploy/engines/build.sh
	$(BIN)/python -m pytest -q -m engine -rP
