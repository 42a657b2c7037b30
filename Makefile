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

# The tests run on TEST_WORKERS processes (pytest-xdist), 2 by default: the machines this targets have 2 cores,
# and `-n auto` counts physical cores (1 on a 2-vCPU VM whose vCPUs are hyperthreads) or every CPU of the host
# inside a CPU-limited container. --dist loadfile gives each test file to one worker, whole and in order: a
# module-scoped fixture (real runs, a LightningCLI parser) is built once, and a file's tests never compete
# with each other. `make test TEST_WORKERS=0` runs the tests one after another in one process (so does a plain
# `.venv/bin/python -m pytest`); PYTEST_ARGS adds pytest options, e.g. PYTEST_ARGS="--durations=25".
TEST_WORKERS ?= 2
PYTEST_ARGS ?=
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test: venv  ## run every test, the slow (training, sweeping) ones included, on 2 processes
	$(PYTEST)

test-fast: venv  ## run the tests not marked slow
	$(PYTEST) -m "not slow"

DEMO_RUNS ?= runs/demo
DEMO_DONE := $(DEMO_RUNS)/demo.done
# sweeps/demo/*.yaml is the demo suite; the study of `make analysis` is in sweeps/demo/study/ (outside this glob)
DEMO_SWEEPS := $(wildcard sweeps/demo/*.yaml)
demo: venv  ## run the demo ablation sweeps (offline, resumable) and write results/demo/
	$(BIN)/nlstudy sweep $(DEMO_SWEEPS) --jobs 2 --runs-root $(DEMO_RUNS); status=$$?; \
	$(BIN)/nlstudy report --runs $(DEMO_RUNS) --out results/demo && { test $$status -ne 0 || touch $(DEMO_DONE); exit $$status; }

# `make analysis` needs a finished demo (notebook 01 reads its runs); it runs `make demo` only where the demo's runs
# root has no demo.done (a finished `make demo` writes it), so a finished demo is not checked again
$(DEMO_DONE):
	$(MAKE) demo

# The study (sweeps/demo/study/; each file's header gives its design): the per-arm learning-rate sweeps first, then
# the rates chosen on validation written into copies of the study files under $(ANALYSIS_RUNS)/study/ (never into
# the committed ones; the same runs give the same files), then the study at those rates, its report, and the
# notebooks headless. Every step resumes: finished runs are not run again.
ANALYSIS_RUNS ?= runs/analysis
STUDY := sweeps/demo/study
RATE_SWEEPS := $(STUDY)/reach_lr.yaml $(STUDY)/far_lr.yaml
STUDY_SWEEPS := reach.yaml far_mixers.yaml data_steps.yaml reach_112.yaml
analysis: $(DEMO_DONE) venv-analysis  ## the study (rates per arm, then the study sweeps), then every notebook headless into results/analysis/
	$(BIN)/nlstudy sweep $(RATE_SWEEPS) --jobs 2 --runs-root $(ANALYSIS_RUNS)
	$(BIN)/python -m nlstudy.analysis.tuning --runs $(ANALYSIS_RUNS) --study $(STUDY) --out $(ANALYSIS_RUNS)/study
	$(BIN)/nlstudy sweep $(addprefix $(ANALYSIS_RUNS)/study/,$(STUDY_SWEEPS)) --jobs 2 --runs-root $(ANALYSIS_RUNS); \
	status=$$?; $(BIN)/nlstudy report --runs $(ANALYSIS_RUNS) --out results/analysis/tables; \
	$(BIN)/python -m nlstudy.analysis.notebooks --demo-runs $(DEMO_RUNS) --runs $(ANALYSIS_RUNS) \
		--out results/analysis && exit $$status

bench: venv  ## time the non-local block's compute paths against the explicit formulation
	$(BIN)/python benchmarks/nl_block.py

clean:  ## remove run output (keeps .venv)
	rm -rf runs wandb lightning_logs .pytest_cache
