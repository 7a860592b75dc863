# Top-level entry points. Fragments in mk/*.mk add the targets of each area
# (pipeline, serving, deployment) so the file stays readable.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
DATA_DIR ?=
REPORTS_DIR ?= reports
export PYTHONUNBUFFERED := 1

.PHONY: help install lint test test-fast benchmark-quality clean
.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-22s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the pinned dependencies (idempotent)

lint: install ## ruff (style, import order, complexity cap), mypy on the core library, sizes and import cycles
	$(VENV)/bin/ruff check recsys predictors pipelines components scripts tests
	$(VENV)/bin/mypy
	$(PY) scripts/check_shape.py recsys predictors

# The slow end-to-end tests (pytest -m slow: kfp.local training, the loop demo, the A/B simulation,
# the benchmark scripts, fault injection) run when CI is set (.ci/run runs with CI=true) or SLOW=1.
SLOW ?= $(CI)
PYTEST_MARKS := $(if $(SLOW),,-m "not slow")

test: install lint deploy-smoke ## Lint, the rendered deployment started as deployed (make deploy-smoke), then the tests (unit, integration with real Redis/servers/kfp.local; the slow e2e ones with CI=true or SLOW=1)
	$(PY) -m pytest $(PYTEST_MARKS)

test-fast: install ## The core library's hermetic tests only
	$(PY) -m pytest tests/unit -m "not integration and not slow"

# Protocols that also get the ablations that retrain (without the co-occurrence channel, history
# length 10/200): a training each, ~15 minutes more on ML-1M-half, so off by default (the default
# run stays within its 25-minute budget); RETRAIN_ABLATIONS=user-temporal adds them to the report.
RETRAIN_ABLATIONS ?= none

benchmark-quality: install ## Offline quality benchmark on DATA_DIR (three protocols, SASRec, ablations; RETRAIN_ABLATIONS=user-temporal adds those that retrain) -> reports/quality-*.json, reports/quality.md
	$(PY) -m recsys.evaluation.benchmark --data-dir "$(DATA_DIR)" --out $(REPORTS_DIR) --retrain-ablations "$(RETRAIN_ABLATIONS)"

clean: ## Remove caches and local run outputs (keeps .venv)
	rm -rf .pytest_cache build *.egg-info

-include mk/*.mk
