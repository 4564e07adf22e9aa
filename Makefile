# make run  : create .venv if needed, then run a real sweep (local Ray, SQLite MLflow store here)
# make test : create .venv if needed, then run the whole test suite
# make bench: speed comparisons (benchmarks/), printed as ratios
# The environment: .venv, filled by scripts/make_venv.sh with uv (pinned in constraints.txt);
# `make INSTALLER=pip ...` uses pip alone (slower), as the script does when uv fails.
PYTHON ?= python3
INSTALLER ?= uv
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SWEEP  ?= configs/card.yaml

.PHONY: run test bench venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/make_venv.sh
	PYTHON=$(PYTHON) INSTALLER=$(INSTALLER) bash scripts/make_venv.sh $(VENV)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sweeps run $(SWEEP)

test: $(STAMP)
	bash scripts/ensure_postgres.sh
	bash scripts/ensure_chromium.sh
	# One BLAS thread, as every Ray worker gets: the tests' tiny matrices only wait on a second
	# thread, ~10x slower on a busy 2-core machine.
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_sweep.py
	$(BIN)/python benchmarks/bench_keep_weights.py

clean:
	rm -rf mlflow.db mlruns mlartifacts sweep-results .pytest_cache
