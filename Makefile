# emailflow: every setup step lives here. A fresh machine needs only `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PYTHONPATH := $(CURDIR)/functions:$(CURDIR)

FUZZ_SECONDS ?= 60

.PHONY: venv lint typecheck unit test package package-test demo bench fuzz dashboard clean

$(STAMP): requirements/runtime.txt requirements/dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check functions tests benchmarks infra

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

test: lint typecheck
	$(BIN)/cfn-lint template.yaml
	$(BIN)/pytest -q -m "not package"

# What Lambda runs, as `sam build` would make it (no Docker): build/<LogicalId>/ and build/template.yaml for
# `sam deploy --template-file build/template.yaml` (infra/package.py, docs/deploy.md).
package: $(STAMP)
	$(BIN)/python -m infra.package

# Imports every handler from build/ in a fresh Python 3.13 (skipped, with the reason, when there is none). Apart
# from make test because building downloads the runtime wheels from the package registry: make test stays offline.
package-test: package
	$(BIN)/pytest -q -m package tests/package

demo: $(STAMP)
	$(BIN)/python -m emailflow.local.demo

# Every benchmark merges its figures into benchmarks/results.json (benchmarks/README.md); the cost model reads them.
# A few minutes on 2 cores.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_rewrite.py
	$(BIN)/python benchmarks/bench_coldstart.py
	$(BIN)/python benchmarks/bench_calls.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_profile.py
	$(BIN)/python benchmarks/bench_throughput.py
	$(BIN)/python benchmarks/cost_model.py

# Writes infra/dashboard.py's dashboard body into template.yaml (tests/integration/test_dashboard.py checks it).
dashboard: $(STAMP)
	$(BIN)/python infra/dashboard.py --write-template

fuzz: $(STAMP)
	$(BIN)/python tests/fuzz/fuzz_relay.py --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build
