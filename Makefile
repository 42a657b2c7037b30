# nlstudy: `make demo` and `make test` each create .venv when it is missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

.PHONY: help venv venv-analysis test test-fast demo analysis bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -W ignore -c "import torch, torchvision, pandas, sweeps, wandb, pytorch_lightning"
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the project (quick when already done)

ANALYSIS_STAMP := $(VENV)/.installed-analysis
$(ANALYSIS_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,analysis]'
	@touch $(ANALYSIS_STAMP)

venv-analysis: $(ANALYSIS_STAMP)  ## add Jupyter to .venv (make analysis does it)

test: venv  ## run every test, the slow (training, sweeping) ones included
	$(BIN)/python -m pytest -q

test-fast: venv  ## run the tests not marked slow
	$(BIN)/python -m pytest -q -m "not slow"

DEMO_RUNS ?= runs/demo
# sweeps/demo/*.yaml is the demo suite, except the analysis sweeps, which `make analysis` adds
ANALYSIS_SWEEPS := sweeps/demo/receptive_field.yaml sweeps/demo/data_efficiency.yaml sweeps/demo/attention.yaml
DEMO_SWEEPS := $(filter-out $(ANALYSIS_SWEEPS),$(wildcard sweeps/demo/*.yaml))
demo: venv  ## run the demo ablation sweeps (offline, resumable) and write results/demo/
	$(BIN)/nlstudy sweep $(DEMO_SWEEPS) --jobs 2 --runs-root $(DEMO_RUNS); status=$$?; \
	$(BIN)/nlstudy report --runs $(DEMO_RUNS) --out results/demo && exit $$status

ANALYSIS_RUNS ?= runs/analysis
analysis: demo venv-analysis  ## the demo, the analysis sweeps, then every notebook run headless into results/analysis/
	$(BIN)/nlstudy sweep $(ANALYSIS_SWEEPS) --jobs 2 --runs-root $(ANALYSIS_RUNS); status=$$?; \
	$(BIN)/python -m nlstudy.analysis.notebooks --demo-runs $(DEMO_RUNS) --runs $(ANALYSIS_RUNS) \
		--out results/analysis && exit $$status

bench: venv  ## time the non-local block's compute paths against the explicit formulation
	$(BIN)/python benchmarks/nl_block.py

clean:  ## remove run output (keeps .venv)
	rm -rf runs wandb lightning_logs .pytest_cache
