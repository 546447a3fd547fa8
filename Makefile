# Every target does its own set-up: a fresh machine needs only python3 (>= 3.11) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo up test test-unit lint typecheck check bench broker-report lock clean browser

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade uv
	$(BIN)/uv pip sync -q --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/saga demo

up: $(STAMP)
	$(BIN)/saga up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy saga events analytics adapters projections api infra bench db

# The console's browser test drives Debian's chromium (never a downloaded browser). As root,
# install it when missing; otherwise leave it to the machine (the test then fails, naming it).
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || \
		(apt-get update -qq && apt-get install -y -qq chromium)

test: $(STAMP) browser
	$(BIN)/pytest

test-unit: $(STAMP)
	$(BIN)/pytest tests/unit

check: lint typecheck test

bench: $(STAMP)
	$(BIN)/saga bench

# Runs the broker conformance suite on Tansu and Apache Kafka; writes docs/broker-conformance.md.
broker-report: $(STAMP)
	$(BIN)/python -m tests.integration.broker.report

# Re-resolve pinned versions after editing pyproject.toml dependencies.
lock:
	test -x $(BIN)/uv || ($(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install -q uv)
	$(BIN)/uv pip compile -q pyproject.toml --extra dev -o requirements.lock

clean:
	rm -rf $(VENV) .stack .pytest_cache .mypy_cache .ruff_cache
