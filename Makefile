# Floorwalker: `make demo` runs a simulated store end to end, `make test` runs every check.
# Both set up everything they need on a fresh machine (system packages, venv, services).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup system-deps demo test fuzz faults mutate lint bench lock services-up services-down clean screenshots

setup: system-deps $(STAMP)

system-deps:
	@scripts/ensure-system-deps.sh

$(STAMP): pyproject.toml constraints.txt
	@scripts/make-venv.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

demo: setup
	$(BIN)/floorwalker demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

# Remake docs/screenshots/*.png from the real stack in Chromium (the browser test does it).
screenshots: setup
	FLOORWALKER_SCREENSHOTS_DIR=docs/screenshots $(BIN)/pytest -q tests/integration/test_browser.py -k screenshots

# Every parser of outside input, fuzzed well past the sample in `make test` (>100 000 cases).
fuzz: setup
	FLOORWALKER_FUZZ_EXAMPLES=40000 $(BIN)/pytest -q -p no:cacheprovider tests/fuzz \
		tests/integration/test_api.py::test_fuzzed_requests_get_a_4xx_never_a_500

# The fault scenarios at the issue's size (10 000 events each; `make test` runs 1 500).
faults: setup
	FLOORWALKER_FAULT_EVENTS=10000 $(BIN)/pytest -q -s tests/faults -p no:cacheprovider

# Mutation testing of the pure cores (routing, arbitration, eligibility, scoring, line
# counting, tracking, zone fusion, the outbox, the contract) against their unit tests:
# prints each module's kill rate and the survivors. Not part of `make test` (tens of minutes).
# MUTATE_MODULES="recommender.routing" picks modules, MUTATE_JOBS=4 runs workers in parallel.
mutate: setup
	BIN=$(BIN) scripts/mutate.sh

bench: setup
	$(BIN)/floorwalker bench e2e
	$(BIN)/floorwalker bench footfall
	$(BIN)/floorwalker bench footfall-accuracy
	$(BIN)/floorwalker bench handheld
	$(BIN)/floorwalker bench decide
	$(BIN)/floorwalker bench simulate
	$(BIN)/floorwalker bench ble
	$(BIN)/floorwalker bench presence-real
	$(BIN)/floorwalker bench outbox
	$(BIN)/floorwalker bench scale
	$(BIN)/floorwalker bench service

# Re-pin every dependency to what a fresh install resolves today.
lock:
	rm -rf /tmp/floorwalker-lock && $(PYTHON) -m venv /tmp/floorwalker-lock
	/tmp/floorwalker-lock/bin/pip install -q -e '.[dev]'
	/tmp/floorwalker-lock/bin/pip freeze --exclude-editable > constraints.txt

services-up: setup
	$(BIN)/floorwalker services up

services-down:
	$(BIN)/floorwalker services down

clean:
	-$(BIN)/floorwalker services down
	rm -rf $(VENV) .run .mypy_cache .ruff_cache .pytest_cache bench/out
