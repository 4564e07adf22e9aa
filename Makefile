# make run  : create .venv if needed, then run a real sweep (local Ray, SQLite MLflow store here)
# make test : create .venv if needed, then run the whole test suite
# make bench: speed comparisons (benchmarks/), printed as ratios
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SWEEP  ?= configs/card.yaml

.PHONY: run test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sweeps run $(SWEEP)

test: $(STAMP)
	bash scripts/ensure_postgres.sh
	bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_keep_weights.py

clean:
	rm -rf mlflow.db mlruns mlartifacts sweep-results .pytest_cache
