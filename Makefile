# outdial: every target creates .venv and installs the project into it when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
# pytest-xdist workers, one per core of the 2-core box (docs/DEVELOPING.md has the measurements:
# a third worker was slower under load and crowds the real-time call tests). `TEST_WORKERS=0`
# runs in one process; slow tests are sent out first (tests/conftest.py) so none is the tail.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

.PHONY: demo test test-fast test-slow lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m outdial.warmup
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/outdial demo

test: $(STAMP)
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

test-slow: $(STAMP)
	$(PYTEST) -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .outdial .cache .pytest_cache
