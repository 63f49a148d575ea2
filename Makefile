# Contributor shortcuts; each target is one command you can also run by hand (see CONTRIBUTING.md).
PY := .venv/bin/python
# What `make bench` passes to bench/run.py, e.g. make bench BENCH_ARGS="--sizes 100000 --dims 384"
BENCH_ARGS ?= --sizes 100000,1000000 --dims 384

.PHONY: dev lint types test-fast test bench

dev:  ## the venv with vecmig editable and the test extras (the README's set-up)
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'

lint:
	.venv/bin/ruff check .

types:  ## mypy once pyproject.toml configures it
	@if grep -q '^\[tool.mypy\]' pyproject.toml && [ -x .venv/bin/mypy ]; then .venv/bin/mypy; \
	else echo "types: mypy is not configured yet (no [tool.mypy] in pyproject.toml, or mypy not installed in .venv)"; fi

test-fast:  ## the unit tier: in-process, no server, no subprocess (must stay under 2 minutes)
	$(PY) -m pytest -q -m "unit and not slow"

test:  ## the whole suite, exactly as the README and .ci/run run it
	$(PY) -m pytest

bench:
	$(PY) bench/run.py $(BENCH_ARGS)
