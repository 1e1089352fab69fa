# Distillery: `make run` to try it, `make test` to test it. Both set up .venv on their own.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 8000
STAMP := $(VENV)/.installed

.PHONY: venv install llama-cpp run migrate demo demo-model test integration browser-deps bench bench-review clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first: `pip install torch==2.13.0` takes the local CPU wheel, so nothing pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e ".[test]"
	touch $(STAMP)

venv install: $(STAMP)

# The optional llama.cpp teacher engine. llama-cpp-python ships as source: this compiles llama.cpp with CMake
# (measured: see README "Teacher engines"). CMAKE_BUILD_PARALLEL_LEVEL caps the compile jobs (default: all cores).
llama-cpp: install
	CMAKE_BUILD_PARALLEL_LEVEL=$${CMAKE_BUILD_PARALLEL_LEVEL:-$$(nproc)} $(PIP) install -e ".[llama-cpp]"

migrate: install
	$(PY) manage.py migrate --noinput

demo-model: install
	$(PY) manage.py build_demo_model

demo: migrate demo-model
	$(PY) manage.py ensure_admin
	$(PY) manage.py load_demo

# Web server, a worker for the default queue (imports, sweeps, with beat) and one for the ML queues, on the
# embedded defaults (SQLite, filesystem broker); Ctrl+C or SIGTERM stops them all (bin/run-services).
run: demo
	@$(PY) manage.py collectstatic --noinput -v 0
	@echo ""
	@echo "  Distillery is running at http://$(HOST):$(PORT)/   (API docs: /api/docs/, admin: /admin/)"
	@$(PY) manage.py ensure_admin --show
	@echo ""
	@PY=$(PY) exec bin/run-services $(HOST):$(PORT)

test: install browser-deps
	$(PY) -m pytest $(PYTEST_ARGS)

# The integration part against PostgreSQL + Redis with a real worker (.ci/run starts the services).
integration: install
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/distillery} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-redis://127.0.0.1:6379/0} \
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

# Debian's chromium for the browser tests (Playwright's own download does not work offline).
browser-deps:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != "0" ] || \
	  (apt-get install -y -qq chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)) || \
	  echo "chromium could not be installed: browser tests will be skipped"

# Benchmarks print figures and write JSON to bench/results/; see each script's --help for sizes.
bench: install
	$(PY) bench/import_export.py
	$(PY) bench/generation.py
	$(PY) bench/eval_overhead.py
	$(PY) bench/training_throughput.py

# Review round-trip latency on PostgreSQL with concurrent simulated annotators (BENCH_ARGS="--completions 100000").
bench-review: install
	$(PY) bench/review_latency.py $(BENCH_ARGS)

clean:
	rm -rf var/test .pytest_cache
