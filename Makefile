# The two commands the README opens with:
#   make quickstart   set everything up, then train -> analyze -> report on the bundled digits data
#   make test         set everything up, then run the test suite (what CI runs)
SHELL := /bin/bash
VENV = $(shell scripts/setup_env.sh dev)
VENV_BENCH = $(shell scripts/setup_env.sh dev,bench)

.PHONY: setup quickstart test lint bench

setup:
	@echo "venv: $(VENV)"

quickstart:
	@venv="$(VENV)" && test -n "$$venv" && "$$venv/bin/hessdyn" run experiment=quickstart

test:
	@venv="$(VENV)" && test -n "$$venv" && "$$venv/bin/python" -m pytest -q

lint:
	@venv="$(VENV)" && "$$venv/bin/ruff" check hessdyn tests scripts && "$$venv/bin/ruff" format --check hessdyn tests scripts

bench:
	@venv="$(VENV_BENCH)" && "$$venv/bin/python" scripts/bench_train.py && "$$venv/bin/python" scripts/bench_eigen.py
