# Every command runs inside the locked environment; `uv` is installed first if it is missing.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
UV := $(or $(shell command -v uv 2>/dev/null),$(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen
ARGS ?=
SOURCE ?=

.PHONY: help setup train test format lint test-slow bench gpu-check memory-plan wandb-sync environment.yml data-metadataset data-miniimagenet data-tieredimagenet data-omniglot data-same-different
.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 26

$(HOME)/.local/bin/uv:
	python3 -m pip install --user --quiet uv

setup: | $(UV)  ## create or update .venv from uv.lock
	$(UV) sync --frozen --compile-bytecode
	@command -v uv >/dev/null || echo 'note: uv is installed at $(UV), which is not on PATH; for the `uv run ...` commands of the README run: export PATH="$(patsubst %/,%,$(dir $(UV))):$$PATH"' >&2

train: setup  ## meta-train and meta-test the default run (sine waves, MAML + ConML); ARGS="key=value ..."
	$(RUN) python -m conml.train $(ARGS)

test: setup  ## the default test suite
	$(RUN) pytest -q $(ARGS)

format: setup  ## format the code (ruff format) and apply safe lint fixes
	$(RUN) ruff format conml scripts tests
	$(RUN) ruff check --fix conml scripts tests

lint: setup  ## check formatting and lint (what CI runs before the tests)
	$(RUN) ruff format --check conml scripts tests
	$(RUN) ruff check conml scripts tests

test-slow: setup  ## the slow tests as well
	$(RUN) pytest -q -m "slow or not slow" $(ARGS)

bench: setup  ## benchmarks B1-B8 vs `higher`, torch.func and a per-task loop, with correctness gates (CPU: small sizes, ~5 min); GPU: ARGS="--device cuda --out outputs/bench/bench_cuda.json"
	$(RUN) python scripts/bench.py --out outputs/bench/bench.json $(ARGS)

# gpu-check runs in the locked environment where uv is installed. Elsewhere (PYTHON=python3, or no uv:
# a GPU node without a package registry) it runs with that Python and its own torch, plus the wheels
# of our other dependencies put in .whl/ (installed once into .whl/site).
SYSTEM_PYTHON := $(or $(PYTHON),$(if $(wildcard $(UV)),,python3))
WHEELS := $(wildcard .whl/*.whl)
GPU_CHECK_PYTHON = $(if $(SYSTEM_PYTHON),PYTHONPATH="$(CURDIR)$(if $(WHEELS),:$(CURDIR)/.whl/site)$${PYTHONPATH:+:$$PYTHONPATH}" $(SYSTEM_PYTHON),$(RUN) python)

gpu-check: $(if $(SYSTEM_PYTHON),$(if $(WHEELS),.whl/site/.installed),setup)  ## the project on one GPU in <8 min, no dataset needed: docs/gpu/<device>.md; CPU: ARGS="--device cpu --tiny"
	$(GPU_CHECK_PYTHON) scripts/gpu_check.py $(ARGS)

.whl/site/.installed: $(WHEELS)
	$(SYSTEM_PYTHON) -m pip install -q --no-index --no-deps --no-compile --upgrade --target .whl/site $(WHEELS)
	@touch $@

memory-plan: setup  ## docs/memory.md: peak memory of every table cell and preset at its paper meta-batch, measured on the CPU (~30 min); ARGS="--presets 'miniimagenet-*'"
	$(RUN) python scripts/memory_plan.py $(ARGS)

wandb-sync: setup  ## upload every offline W&B run under DIR=<run or multirun folder>, resumed runs included (after `wandb login`)
	@test -n "$(DIR)" || { echo "usage: make wandb-sync DIR=<run or multirun folder>  (README: Weights & Biases)" >&2; exit 2; }
	$(RUN) python -m conml.wandb_sync "$(DIR)"

environment.yml: setup  ## regenerate environment.yml (conda) from uv.lock
	$(RUN) python scripts/export_environment.py > environment.yml

data-metadataset: setup  ## index + cache converted Meta-Dataset records once: RECORDS=<records folder> [ARGS="--image-size 126 --workers 16"]
	@test -n "$(RECORDS)" || { echo "error: set RECORDS=<folder of converted Meta-Dataset records> (docs/datasets_metadataset.md)" >&2; exit 2; }
	$(RUN) python scripts/prepare_metadataset.py --records "$(RECORDS)" --out "$${CONML_DATA:-data}/metadataset" $(ARGS)

data-miniimagenet: setup  ## prepare miniImageNet from SOURCE=<download folder> (split CSVs + images/, or the pickles) into data/miniimagenet
	@test -n "$(SOURCE)" || { echo "usage: make data-miniimagenet SOURCE=<download folder>  (docs/datasets_imagenet.md)" >&2; exit 2; }
	$(RUN) python scripts/prepare_miniimagenet.py --source "$(SOURCE)" $(ARGS)

data-tieredimagenet: setup  ## prepare tieredImageNet from SOURCE=<download folder> (*_images_png.pkl + *_labels.pkl) into data/tieredimagenet
	@test -n "$(SOURCE)" || { echo "usage: make data-tieredimagenet SOURCE=<download folder>  (docs/datasets_imagenet.md)" >&2; exit 2; }
	$(RUN) python scripts/prepare_tieredimagenet.py --source "$(SOURCE)" $(ARGS)

data-omniglot: setup  ## download the official Omniglot files, check their MD5s and prepare data/omniglot; SOURCE=<folder with the official zips>: prepare from there, no download
	$(RUN) python scripts/prepare_omniglot.py $(if $(SOURCE),--source "$(SOURCE)") $(ARGS)

data-same-different: setup  ## write the same-different episodes to data/same_different (~25 GB; optional, episodes are also drawn on the fly); ARGS="--workers 8"
	$(RUN) python scripts/prepare_same_different.py $(ARGS)

# Paper tables: a Hydra multirun over a table's cells and seeds (one per grid), then the table beside the paper's
# numbers (docs/tables/<table>.md, .tex, .json, figures). SMOKE=1: tiny data and two steps (debug=smoke; output in the sweep folder).
TABLE = $(RUN) python scripts/table.py run $(1) $(if $(SMOKE),--smoke,--docs) $(ARGS)

.PHONY: table-2 table-2-train table-3 table-4 table-5 table-5-train table-omniglot table-omniglot-train table-samediff table-samediff-order table-samediff-loo table-metadataset

table-3: setup  ## ConML Table 3 (miniImageNet, six learners without / with ConML); needs the prepared dataset
	$(call TABLE,table3)
table-4: setup  ## ConML Table 4 (tieredImageNet, six learners without / with ConML); needs the prepared dataset
	$(call TABLE,table4)
# Tables whose runs take hours each on a CPU are trained one by one (the results page says how), each finished run
# exported (results.json and cached analyses, no checkpoint) to docs/results/<folder>/ and committed; their make target
# rebuilds the table from those without training. $(call COMMITTED_TABLE,<table>,<results folder>,<results page>)
define COMMITTED_TABLE
	@ls $(2)/*/results.json >/dev/null 2>&1 || { echo "error: $(2)/ holds no run of $(1), so there is nothing to rebuild docs/tables/$(1).* from (they are left as they are). Train the runs with the commands of $(3), export each finished run with \`uv run --frozen python scripts/table.py export $(1) <runs folder> $(2)\`, commit $(2)/, then run this target again." >&2; exit 2; }
	$(RUN) python scripts/table.py aggregate $(1) $(2) --docs --wandb-mode disabled $(ARGS)
endef
table-2: setup  ## ConML Table 2 (sine: MAML vs ConML with three psi, clustering scores, ablations, Fig. 2) from the runs committed in docs/results/table2_20k/, no training; SMOKE=1: the smoke multirun
ifneq ($(SMOKE),)
	$(call TABLE,table2)
else
	$(call COMMITTED_TABLE,table2,docs/results/table2_20k,docs/results/sine.md (section 'Table 2 at the protocol's 20,000 steps'))
endif
table-2-train: setup  ## train Table 2's runs (20,000 steps each, minutes on a CPU) and its lambda sweep in multiruns, and write docs/tables/table2*.*; ARGS="--seeds 0,1"; SMOKE=1: tiny runs
	$(call TABLE,table2)
	$(call TABLE,table2_lambda)
table-5: setup  ## ConML Table 5 (ICL vs ConML-ICL: relative minimum error, shot spare, Fig. 3 with Garg's baselines) from the runs committed in docs/results/table5_toy/, no training; SMOKE=1: the smoke multirun
ifneq ($(SMOKE),)
	$(call TABLE,table5)
else
	$(call COMMITTED_TABLE,table5,docs/results/table5_toy,docs/results/icl.md (section 'Table 5 at toy scale on a 2-core CPU'))
endif
table-5-train: setup  ## train Table 5's runs in one multirun (function classes x ConML off/on x seeds 0,1,2; hours per run on a CPU) and write docs/tables/table5.*; SMOKE=1: tiny runs
	$(call TABLE,table5)
table-omniglot: setup  ## the Omniglot table (six learners x 5/20-way x 1/5-shot, without / with ConML, published numbers beside) from the runs committed in docs/results/omniglot_cpu/, no training; SMOKE=1: the smoke multirun
ifneq ($(SMOKE),)
	$(call TABLE,omniglot)
else
	$(call COMMITTED_TABLE,omniglot,docs/results/omniglot_cpu,docs/results/omniglot.md)
endif
table-omniglot-train: setup  ## train every Omniglot cell at its protocol's length in one multirun (days on a CPU; a GPU's work) and write docs/tables/omniglot.*
	$(call TABLE,omniglot)
table-samediff: setup  ## Same-different Table A1 (Conv2/4/6, conventional vs FOMAML, seeds 42-51)
	$(call TABLE,samediff)
table-samediff-order: setup  ## Same-different Table B1 (Conv6, first- vs second-order MAML)
	$(call TABLE,samediff_order)
table-samediff-loo: setup  ## Same-different leave-one-out (Conv6 FOMAML, 10 held-out tasks x 10 seeds)
	$(call TABLE,samediff_loo)
table-metadataset: setup  ## Meta-Dataset (Simple CNAPs without / with ConML, trained on 8 sources or ILSVRC only, 10 test sources); needs the prepared dataset and a GPU
	$(call TABLE,metadataset)
