# outdial: every target creates .venv and installs the project into it when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export NUMBA_CACHE_DIR ?= $(CURDIR)/.cache/numba
# pytest-xdist workers for the tests not marked slow, one per core of the 2-core box (a third
# was slower on the shared box: docs/DEVELOPING.md). `TEST_WORKERS=0` runs them in one process.
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

# Three lanes. The live-call tests marked `realtime` (turn-taking that a second live call on
# the CPUs would change: test_seven_live_calls failed beside another) run one at a time in a
# process of their own from the start. Beside them the quick tests run over the xdist workers,
# then the other slow tests over the same number of workers: the realtime tests that come
# first share the CPUs with quick tests only. (xdist_group would keep the realtime tests on one
# worker, but with pytest 9.2 it no longer groups anything: pytest-xdist issue 1386.) The
# realtime tests' output follows the others'.
test: $(STAMP)
	@mkdir -p .cache
	@# The lanes start together: numba's cache must be compiled once before, not by three
	@# processes at once (a cache written concurrently crashed a worker with a segfault).
	@$(PY) -m outdial.warmup
	@$(PY) -m pytest -q -m realtime --durations=10 > .cache/test-realtime.log 2>&1 & rt=$$!; \
	$(PYTEST) -m "not slow"; fast=$$?; \
	$(PYTEST) -m "slow and not realtime" --durations=10; slow=$$?; \
	wait $$rt; rt_rc=$$?; \
	echo "--- realtime tests, one at a time beside the others (.cache/test-realtime.log) ---"; \
	cat .cache/test-realtime.log; \
	test $$fast -eq 0 && test $$slow -eq 0 && test $$rt_rc -eq 0

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) tools/check_sql.py

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .outdial .cache .pytest_cache
