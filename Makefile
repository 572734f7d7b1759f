# The two commands the README opens with:
#   make quickstart   set everything up, then train -> analyze -> report on the bundled digits data
#   make test         set everything up, then run the test suite (what CI runs after `make check`)
# Development: make check (lint, format check, types), make test-fast (the suite without slow tests),
# make format (apply ruff's fixes and formatting), make docs (regenerate docs/design.md's table reference).
SHELL := /bin/bash
# Built (or reused) once per make invocation, on first use.
VENV = $(eval VENV := $(shell scripts/setup_env.sh dev))$(VENV)
VENV_BENCH = $(shell scripts/setup_env.sh dev,bench)
SOURCES = hessdyn tests scripts

.PHONY: setup quickstart test test-fast lint typecheck check format docs bench

setup:
	@echo "venv: $(VENV)"

quickstart:
	@venv="$(VENV)" && test -n "$$venv" && "$$venv/bin/hessdyn" run experiment=quickstart

test:
	@venv="$(VENV)" && test -n "$$venv" && "$$venv/bin/python" -m pytest -q

test-fast:
	@venv="$(VENV)" && test -n "$$venv" && "$$venv/bin/python" -m pytest -q -m "not slow"

lint:
	@venv="$(VENV)" && test -n "$$venv" && "$$venv/bin/ruff" check $(SOURCES) && "$$venv/bin/ruff" format --check $(SOURCES)

typecheck:
	@venv="$(VENV)" && test -n "$$venv" && "$$venv/bin/mypy"

check: lint typecheck

format:
	@venv="$(VENV)" && test -n "$$venv" && "$$venv/bin/ruff" check --fix $(SOURCES) && "$$venv/bin/ruff" format $(SOURCES)

docs:
	@venv="$(VENV)" && test -n "$$venv" && "$$venv/bin/python" -m hessdyn.store.docs docs/design.md

bench:
	@venv="$(VENV_BENCH)" && "$$venv/bin/python" scripts/bench_train.py && "$$venv/bin/python" scripts/bench_eigen.py
