# marrow_triage: two commands on a fresh machine with python3 and make.
#   make demo   create .venv, install, triage an example report
#   make test   create .venv if missing, install dev extras, lint, type-check, run the suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_CORE := $(VENV)/.installed-core
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: demo test lint types pytest bench bench-timeline docs fuzz mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_CORE): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[cli,service,fhir]"
	touch $@

$(STAMP_DEV): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@ $(STAMP_CORE)

demo: $(STAMP_CORE)
	$(BIN)/marrow-triage check examples/fever-101F.json

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests benchmarks examples fuzz

types: $(STAMP_DEV)
	$(BIN)/mypy

pytest: $(STAMP_DEV)
	$(BIN)/pytest -n 2 -q

test: lint types pytest

bench: $(STAMP_DEV)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/rules_diff.py

# Every unsafe one-step edit of a rule (level one lower, threshold one step the unsafe way)
# must fail a behavioural test file; lists survivors and fails on any. The fast form, the
# same mutants against the worked examples in-process, is tests/test_mutation.py.
mutate: $(STAMP_DEV)
	$(BIN)/python tests/mutation.py

# The timeline on SQLite and a throwaway PostgreSQL cluster (needs Debian's postgresql
# package, as .ci/run installs it): loads 1,000,000 check-ins, so minutes, not seconds.
bench-timeline: $(STAMP_DEV)
	$(BIN)/python benchmarks/timeline.py

# Coverage-guided fuzzing of the JSON entry point (a 1,500-run version is in the suite).
fuzz: $(STAMP_DEV)
	$(BIN)/python fuzz/fuzz_triage_json.py -atheris_runs=50000

docs: $(STAMP_CORE)
	$(BIN)/marrow-triage rules docs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
