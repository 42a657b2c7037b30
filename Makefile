# nlstudy: `make demo` and `make test` each create .venv when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: help venv test test-fast demo bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -W ignore -c "import torch, torchvision, pandas, sweeps, wandb, pytorch_lightning"
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the project (quick when already done)

test: venv  ## run every test, the slow (training, sweeping) ones included
	$(BIN)/python -m pytest -q

test-fast: venv  ## run the tests not marked slow
	$(BIN)/python -m pytest -q -m "not slow"

DEMO_RUNS ?= runs/demo
demo: venv  ## run the demo ablation sweeps (offline, resumable) and write results/demo/
	$(BIN)/nlstudy sweep sweeps/demo/*.yaml --jobs 2 --runs-root $(DEMO_RUNS); status=$$?; \
	$(BIN)/nlstudy report --runs $(DEMO_RUNS) --out results/demo && exit $$status

bench: venv  ## time the non-local block's compute paths against the explicit formulation
	$(BIN)/python benchmarks/nl_block.py

clean:  ## remove run output (keeps .venv)
	rm -rf runs wandb lightning_logs .pytest_cache
