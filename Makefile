# litvision: `make train` and `make test` are all the set-up there is.
# The first target that needs Python creates .venv (pip install -e ".[dev]").
# Use an interpreter you already have instead with PYTHON=/path/to/python.

# EXP empty: the default experiment (digits_cnn), or the run's own one with resume=/CKPT=.
EXP   ?=
ARGS  ?=
CKPT  ?=
RUNS  ?=
RUN   ?=
FORMAT ?=
GROUP_BY ?=
SWEEP ?=
RESUME ?=
INPUT ?=
VENV  ?= .venv
PYTEST_ARGS ?=
# Test files run in parallel (pytest-xdist), a file's tests on one worker: its module fixtures are built once.
TEST_JOBS ?= 2
# make submit: SLURM request (GPUS per node; GPUS=0 TASKS=n for a CPU job). See README, Scaling out.
NODES ?= 1
GPUS  ?= 1
TASKS ?=
TIME  ?= 01:00:00
PARTITION ?=
ACCOUNT ?=
QOS ?=
CONSTRAINT ?=
SBATCH ?=

ifeq ($(strip $(PYTHON)),)
PY    := $(VENV)/bin/python
SETUP := $(VENV)/.installed
else
PY    := $(PYTHON)
SETUP :=
endif

.DEFAULT_GOAL := help
.PHONY: help install train eval predict tune export list test test-fast lint format bench mutate clean sweep wandb-sweep compare notebooks submit

help:  ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install -e ".[dev]"
	@touch $@

install: $(SETUP)  ## create .venv and install litvision with its dev tools

train: $(SETUP)  ## train an experiment: make train EXP=digits_cnn ARGS="trainer.max_epochs=5" (= litvision fit)
	$(PY) -m litvision fit $(if $(EXP),experiment=$(EXP)) $(ARGS)

eval: $(SETUP)  ## test a checkpoint: make eval CKPT=runs/.../best.ckpt [EXP=...] (= litvision test)
	$(PY) -m litvision test $(if $(EXP),experiment=$(EXP)) ckpt_path=$(CKPT) $(ARGS)

predict: $(SETUP)  ## classify/detect a folder: make predict CKPT=runs/.../last.ckpt INPUT=photos/ (= litvision predict)
	$(PY) -m litvision predict $(if $(EXP),experiment=$(EXP)) ckpt_path=$(CKPT) input=$(INPUT) $(ARGS)

tune: $(SETUP)  ## LR and batch-size finders: make tune EXP=digits_cnn (= litvision tune)
	$(PY) -m litvision tune $(if $(EXP),experiment=$(EXP)) $(ARGS)

export: $(SETUP)  ## export a run: make export RUN=runs/<exp>/<stamp> FORMAT=onnx (= litvision export)
	$(PY) -m litvision export $(RUN) --format $(or $(FORMAT),onnx) $(ARGS)

submit: $(SETUP)  ## SLURM via submitit: make submit EXP=X NODES=2 GPUS=8 PARTITION=gpu TIME=12:00:00
	$(PY) -m litvision submit --nodes=$(NODES) --gpus=$(GPUS) --tasks=$(TASKS) --time=$(TIME) \
		--partition=$(PARTITION) --account=$(ACCOUNT) --qos=$(QOS) --constraint=$(CONSTRAINT) \
		--sbatch="$(SBATCH)" -- experiment=$(or $(EXP),digits_cnn) $(ARGS)

list: $(SETUP)  ## list every experiment with its description
	@$(PY) -m litvision list

sweep: $(SETUP)  ## Hydra multirun: make sweep EXP=digits_cnn ARGS="model.optimizer.lr=1e-3,1e-2 seed=1,2,3" (again: resumes it; or RESUME=<sweep folder>)
	$(PY) -m litvision sweep $(if $(RESUME),resume=$(RESUME),experiment=$(or $(EXP),digits_cnn)) $(ARGS)

wandb-sweep: $(SETUP)  ## write/validate a W&B sweep for `wandb agent`: make wandb-sweep EXP=digits_cnn [SWEEP=file.yaml]
	$(PY) -m litvision.tracking.sweep --exp $(or $(EXP),digits_cnn) $(if $(SWEEP),--sweep $(SWEEP)) $(ARGS)

compare: $(SETUP)  ## table + learning curves of runs: make compare EXP=digits_cnn | RUNS=<sweep folder or 'glob'> [GROUP_BY=key,...]
	$(PY) -m litvision compare $(if $(RUNS),--runs '$(RUNS)',--exp $(or $(EXP),digits_cnn)) $(if $(GROUP_BY),--group-by '$(GROUP_BY)')

notebooks: $(SETUP)  ## execute the notebooks into runs/notebooks/ (the committed ones stay output-free)
	$(PY) -m litvision.tracking.notebooks --execute notebooks/*.ipynb

test: $(SETUP)  ## run the whole test suite (slow tests included; TEST_JOBS=2 files at once)
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile --durations=20 $(PYTEST_ARGS)

test-fast: $(SETUP)  ## skip the tests that train to a target metric
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile -m "not slow" $(PYTEST_ARGS)

lint: $(SETUP)  ## ruff (CI runs it before the tests)
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench

format: $(SETUP)  ## ruff format + autofix
	$(PY) -m ruff format src tests bench
	$(PY) -m ruff check --fix src tests bench

bench: $(SETUP)  ## benchmarks; ratios against a baseline measured in the same run -> bench/results/
	$(PY) -m bench $(ARGS)

mutate: $(SETUP)  ## mutation testing (mutmut) of the costly modules -> bench/results/mutation.json; not in CI
	$(PY) -m bench.mutate $(ARGS)

clean:  ## remove caches (keeps runs/ and .venv)
	rm -rf .pytest_cache .ruff_cache build src/*.egg-info .mutate
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
