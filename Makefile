# Every target installs what it needs into .venv first (python3 -m venv + pip).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test unit lint typecheck check faults engines clean

# Test processes (pytest-xdist). Each has its own Kafka broker (the session fixture of
# tests/conftest.py), and whole files go to one process (--dist loadfile), so a file's
# module fixtures and the tests that stop or kill their broker stay together. The suites mostly
# wait (on brokers, engines, timeouts), so 2 pay even on 2 cores. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile
# The unit tests wait on nothing: on 2 busy cores a second process cost more than it saved
# (41-45 s against 33-35 s), so they run in one unless asked (UNIT_WORKERS=2).
UNIT_WORKERS ?= 0

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## the main job on embedded defaults: local Kafka + simulator + worker
	$(BIN)/evalstream-local demo

test: $(STAMP)  ## the test suite (starts its own Kafka brokers)
	$(BIN)/python -m pytest -q -m "not faults and not engine" $(XDIST)

unit: $(STAMP)  ## the unit tests alone: no broker, no engine, under a minute
	$(BIN)/python -m pytest -q tests/unit -n $(UNIT_WORKERS) --dist loadfile

faults: $(STAMP)  ## fault-injection suite: kill -9, broker restarts, stalls; one process, alone (timed bounds)
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
