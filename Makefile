# marrow_triage: two commands on a fresh machine with python3 (3.11+), gcc and make.
#   make demo          create .venv, install, triage an example report
#   make test          create .venv if missing, install dev extras, lint, type-check, run the suite
#   make test-pythons  the suite on every Python from 3.11 up on this machine (.venv-3.N)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_CORE := $(VENV)/.installed-core
STAMP_DEV := $(VENV)/.installed-dev
STAMP_DURABLE := $(VENV)/.installed-durable-rules

.PHONY: demo test test-pythons lint types pytest bench bench-timeline docs fuzz mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# durable-rules compiled so that it loads on Python 3.13 too (see the script).
$(STAMP_DURABLE): $(BIN)/python scripts/install-durable-rules
	scripts/install-durable-rules $(BIN)/python
	touch $@

$(STAMP_CORE): $(STAMP_DURABLE) pyproject.toml
	$(BIN)/pip install --quiet -e ".[service,fhir,examples]"
	touch $@

$(STAMP_DEV): $(STAMP_DURABLE) pyproject.toml
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

# PYTHONS_EXCEPT=3.11 leaves out a version already tested (CI: the default python's).
test-pythons:
	scripts/test-pythons $(if $(PYTHONS_EXCEPT),--except $(PYTHONS_EXCEPT))

bench: $(STAMP_DEV)
	$(BIN)/python benchmarks/run.py
	$(BIN)/python benchmarks/rules_diff.py
	$(BIN)/python benchmarks/ndjson_batch.py

# Every unsafe one-step edit of a rule (level one lower, threshold one step the unsafe way)
# must fail a behavioural test file; lists survivors and fails on any. The fast form, the
# same mutants against the worked examples in-process, is tests/test_mutation.py.
mutate: $(STAMP_DEV)
	$(BIN)/python tests/mutation.py

# The timeline on SQLite and a throwaway PostgreSQL cluster (needs Debian's postgresql
# package, as .ci/run installs it): loads 1,000,000 check-ins, so minutes, not seconds.
bench-timeline: $(STAMP_DEV)
	$(BIN)/python benchmarks/timeline.py

# Coverage-guided fuzzing (fuzz/README.md): the JSON entry point, then the structure-aware
# harnesses (reports field by field, rule packs rule by rule, timelines with hostile
# times). Short runs of each are in the suite (tests/test_fuzz_harnesses.py).
fuzz: $(STAMP_DEV)
	$(BIN)/python fuzz/fuzz_triage_json.py -atheris_runs=50000
	cd fuzz && ../$(BIN)/python fuzz_report_fields.py -atheris_runs=200000
	cd fuzz && ../$(BIN)/python fuzz_rule_packs.py -atheris_runs=5000
	cd fuzz && ../$(BIN)/python fuzz_timeline.py -atheris_runs=50000

docs: $(STAMP_CORE)
	$(BIN)/marrow-triage rules docs

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache .mypy_cache .ruff_cache .hypothesis
