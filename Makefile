# Every command runs inside the locked environment; `uv` is installed first if it is missing.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
UV := $(or $(shell command -v uv 2>/dev/null),$(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
ARGS ?=

.PHONY: help setup train test test-slow environment.yml
.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 26

$(HOME)/.local/bin/uv:
	python3 -m pip install --user --quiet uv

setup: | $(UV)  ## create or update .venv from uv.lock
	$(UV) sync --frozen

train: setup  ## meta-train and meta-test the default run (sine waves, MAML + ConML); ARGS="key=value ..."
	$(RUN) python -m conml.train $(ARGS)

test: setup  ## the default test suite
	$(RUN) pytest -q $(ARGS)

test-slow: setup  ## the slow tests as well
	$(RUN) pytest -q -m "slow or not slow" $(ARGS)

environment.yml: setup  ## regenerate environment.yml (conda) from uv.lock
	$(RUN) python scripts/export_environment.py > environment.yml
