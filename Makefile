# Contributor shortcuts; each target is one command you can also run by hand (see CONTRIBUTING.md).
PY := .venv/bin/python
# What `make bench` passes to bench/run.py, e.g. make bench BENCH_ARGS="--sizes 100000 --dims 384"
BENCH_ARGS ?= --sizes 100000,1000000 --dims 384

.PHONY: dev lint types test-fast test durations bench

dev:  ## the venv with vecmig editable and the test extras (the README's set-up)
	python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]'

lint:
	.venv/bin/ruff check .

# engine/ is imported as `vecmig` (pyproject's package-dir): mypy checks a tree of links named
# after the import path, so every module is known by the name the code imports it by.
MYPY_TREE := .mypy-tree

types:  ## mypy --strict over the whole package (config in pyproject.toml)
	@rm -rf $(MYPY_TREE) && mkdir -p $(MYPY_TREE)/vecmig
	@for f in engine/*.py $$(find engine -mindepth 1 -maxdepth 1 -type d ! -name __pycache__); do ln -s ../../$$f $(MYPY_TREE)/vecmig/; done
	@for d in providers state schemas; do ln -s ../../$$d $(MYPY_TREE)/vecmig/$$d; done
	cd $(MYPY_TREE) && ../.venv/bin/mypy --config-file ../pyproject.toml -p vecmig

test-fast:  ## the unit tier: in-process, no server, no subprocess (must stay under 2 minutes)
	$(PY) -m pytest -q -m "unit and not slow"

test:  ## the whole suite, exactly as the README and .ci/run run it
	$(PY) -m pytest

durations:  ## the whole suite once, then tests/durations.json (files handed to the workers longest first)
	$(PY) -m pytest -q -p no:cacheprovider --junitxml=.durations.xml
	$(PY) -m tests.support.durations .durations.xml && rm -f .durations.xml

bench:
	$(PY) bench/run.py $(BENCH_ARGS)
