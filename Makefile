# stepgraph: `make dev` serves the local stack, `make test` runs the whole suite (both create .venv first).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# SAM CLI pins its own boto3, so it lives in a venv of its own.
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed
SAM_CLI_SPEC ?= aws-sam-cli>=1.140,<2
export SAM_CLI_TELEMETRY := 0

TEMPLATE := template.yaml

# AWS's ASL language service (npm amazon-states-language-service, pinned by package.json and its lockfile) checks
# every definition the test suite compiles (tests/unit/statemachine/test_aws_language_service.py).
NODE_STAMP := node_modules/.installed

# The Lambda platform the functions are built for (template.yaml: python3.13 on arm64). Lambda's Python 3.13
# runs on Amazon Linux 2023 (glibc 2.34), so manylinux 2014 and 2_28 wheels both load there.
LAMBDA_PYTHON := 3.13
LAMBDA_PLATFORMS ?= --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64
# The only botocore service data shipped: the services the functions call (tests/unit/test_build_services.py
# keeps the two in step), and sts and xray (botocore's role credential providers, the X-Ray SDK's sampling
# rules). botocore lists every service directory it has (about 450) when a cold start makes its first client,
# a large part of the first request's time; no other service's data is ever read.
LAMBDA_BOTOCORE_SERVICES := apigateway apigatewaymanagementapi bedrock-runtime dynamodb lambda scheduler stepfunctions sts xray
# The artifacts ship bytecode, or every cold start compiles every module (/var/task is read-only, nothing is
# cached). Only the runtime's own minor version reads it, so it is compiled by a Python 3.13: pyenv's, else
# one on PATH (set LAMBDA_PYTHON_BIN to choose). Hash-based and unchecked: a zip keeps mtimes to 2 s only,
# which would make timestamp-checked bytecode look stale.
LAMBDA_PYTHON_BIN ?= $(or $(lastword $(wildcard $(shell pyenv root 2>/dev/null)/versions/$(LAMBDA_PYTHON).*/bin/python$(LAMBDA_PYTHON))),$(shell command -v python$(LAMBDA_PYTHON) 2>/dev/null))

.PHONY: dev test unit functional lint validate typecheck bench clean venv sam-venv node build browser lambda-python \
	build-ApiFunction build-ExecutorFunction build-EventsFunction build-StreamFunction build-LiveFunction build-ScheduleFunction

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet '$(SAM_CLI_SPEC)'
	touch $(SAM_STAMP)

sam-venv: $(SAM_STAMP)

# The console's browser tests drive Debian's Chromium (Playwright only drives it; it never downloads a browser).
# Installed when missing, so this is a no-op once they are there; CI runs as root on a fresh machine.
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then exit 0; fi; \
	echo "installing Debian's chromium and chromium-driver (the console's browser tests)"; \
	$(SUDO) apt-get update -q && \
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends chromium chromium-driver

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

node: $(NODE_STAMP)

dev: $(STAMP)
	$(PY) -m local.server

test: $(STAMP) $(NODE_STAMP) validate browser
	$(PY) -m pytest -q

unit: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest -q tests/unit

functional: $(STAMP) browser
	$(PY) -m pytest -q tests/functional

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The template: cfn-lint with the serverless rules (cfn-lint-serverless), then SAM's own validation.
validate: $(STAMP) $(SAM_STAMP)
	$(VENV)/bin/cfn-lint --template $(TEMPLATE) --append-rules cfn_lint_serverless.rules
	$(SAM) validate --lint --template $(TEMPLATE)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m bench

# `sam build` (samconfig.toml: build_in_source) runs these with ARTIFACTS_DIR set, one per function. Every
# function ships both packages and the runtime dependencies of pyproject.toml, as wheels for the Lambda
# platform (never an sdist built for this machine).
build: $(SAM_STAMP)
	$(SAM) build --template $(TEMPLATE)

build-ApiFunction build-ExecutorFunction build-EventsFunction build-StreamFunction build-LiveFunction build-ScheduleFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (sam build sets it)"; exit 2; }
	mkdir -p "$(ARTIFACTS_DIR)"
	cp -R functions statemachine "$(ARTIFACTS_DIR)/"
	find "$(ARTIFACTS_DIR)" -name '__pycache__' -type d -prune -exec rm -rf {} +
	$(PYTHON) -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
		> "$(ARTIFACTS_DIR)/.requirements.txt"
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --root-user-action=ignore --no-compile --upgrade \
		--target "$(ARTIFACTS_DIR)" $(LAMBDA_PLATFORMS) --implementation cp --python-version $(LAMBDA_PYTHON) \
		--only-binary=:all: -r "$(ARTIFACTS_DIR)/.requirements.txt"
	rm -f "$(ARTIFACTS_DIR)/.requirements.txt"
	find "$(ARTIFACTS_DIR)/botocore/data" -mindepth 1 -maxdepth 1 -type d \
		$(foreach service,$(LAMBDA_BOTOCORE_SERVICES),-not -name $(service)) -exec rm -rf {} +
	@"$(LAMBDA_PYTHON_BIN)" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$(LAMBDA_PYTHON)'.split('.'))))" \
		2>/dev/null || { echo "no Python $(LAMBDA_PYTHON) to compile the bytecode ('$(LAMBDA_PYTHON_BIN)'): pyenv install $(LAMBDA_PYTHON), or set LAMBDA_PYTHON_BIN"; exit 2; }
	"$(LAMBDA_PYTHON_BIN)" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$(ARTIFACTS_DIR)"

# The Python that compiles the artifacts' bytecode (bench/imports.py times the handlers with it).
lambda-python:
	@echo "$(LAMBDA_PYTHON_BIN)"

clean:
	rm -rf $(VENV) $(SAM_VENV) node_modules .aws-sam .pytest_cache .mypy_cache .ruff_cache
