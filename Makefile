# litvision: `make train` and `make test` are all the set-up there is.
# The first target that needs Python creates .venv (pip install -e ".[dev]").
# Use an interpreter you already have instead with PYTHON=/path/to/python.

EXP   ?= digits_cnn
ARGS  ?=
CKPT  ?=
INPUT ?=
VENV  ?= .venv
PYTEST_ARGS ?=

ifeq ($(strip $(PYTHON)),)
PY    := $(VENV)/bin/python
SETUP := $(VENV)/.installed
else
PY    := $(PYTHON)
SETUP :=
endif

.DEFAULT_GOAL := help
.PHONY: help install train eval predict list test test-fast lint format bench clean

help:  ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install -e ".[dev]"
	@touch $@

install: $(SETUP)  ## create .venv and install litvision with its dev tools

train: $(SETUP)  ## train an experiment: make train EXP=digits_cnn ARGS="trainer.max_epochs=5"
	$(PY) -m litvision.train experiment=$(EXP) $(ARGS)

eval: $(SETUP)  ## test a checkpoint: make eval EXP=digits_cnn CKPT=runs/.../best.ckpt
	$(PY) -m litvision.eval experiment=$(EXP) ckpt_path=$(CKPT) $(ARGS)

predict: $(SETUP)  ## detect objects in a folder: make predict EXP=yolov1_shapes CKPT=runs/.../last.ckpt INPUT=photos/
	$(PY) -m litvision.predict experiment=$(EXP) ckpt_path=$(CKPT) input=$(INPUT) $(ARGS)

list: $(SETUP)  ## list every experiment with its description
	@$(PY) -m litvision list

test: $(SETUP)  ## run the whole test suite (slow tests included)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(SETUP)  ## skip the tests that train to a target metric
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(SETUP)  ## ruff
	$(PY) -m ruff check src tests bench
	$(PY) -m ruff format --check src tests bench

format: $(SETUP)  ## ruff format + autofix
	$(PY) -m ruff format src tests bench
	$(PY) -m ruff check --fix src tests bench

bench: $(SETUP)  ## benchmarks; ratios against a baseline measured in the same run -> bench/results/
	$(PY) -m bench $(ARGS)

clean:  ## remove caches (keeps runs/ and .venv)
	rm -rf .pytest_cache .ruff_cache build src/*.egg-info
	find . -name __pycache__ -not -path './.venv/*' -prune -exec rm -rf {} +
