# trainyard — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: help venv run test test-fast lint services images migrate wheel bench bench-api bench-dispatch bench-metrics bench-scale chaos clean flower \
	compose-build compose-config compose-up compose-down

help:
	@echo "make run        start trainyard on http://127.0.0.1:$(PORT) (embedded defaults)"
	@echo "make test       start PostgreSQL, Redis and Docker, then run every test"
	@echo "make test-fast  pure domain tests only (no services)"
	@echo "make lint       ruff and mypy (app/ and workers/ type-check clean)"
	@echo "make services   install/start PostgreSQL, Redis and a Docker engine"
	@echo "make images     build the local base image and the reference trainer image"
	@echo "make wheel      dist/trainyard-*.whl: migrations and reference trainer included"
	@echo "make bench      API benchmark (see bench/README.md)"
	@echo "make bench-api  list and detail beside the minimal-Flask baseline: x rps, x p99 per row"
	@echo "make bench-dispatch  POST run -> container running, cancel, reconcile 200 jobs"
	@echo "make bench-metrics   1M-row train.csv ingest beside a raw COPY and MLflow"
	@echo "make bench-scale     5, 10, 20 nodes on one PostgreSQL and Redis, 1,000 runs each"
	@echo "make chaos      fault injection on its own stack, then a table (docs/chaos.md)"
	@echo "make flower     Flower alone, for a running broker (BROKER_URL)"
	@echo "make compose-build|compose-config|compose-up|compose-down   docker compose (docs/deployment.md)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

venv: $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'

services:
	bash scripts/services.sh

images:
	bash scripts/build-images.sh

migrate: venv
	$(BIN)/trainyard migrate

# What a node without a checkout installs (docs/deployment.md); tests/deploy/test_wheel.py
# installs one in a fresh virtualenv and runs `trainyard migrate` and `trainyard worker --check`.
wheel: venv
	$(BIN)/pip wheel -q --no-deps -w dist .

# API + dashboard, a worker, Flower and an embedded Redis; SQLite unless DATABASE_URL is set.
# FLOWER_PORT (5555) and REDIS_PORT (6379) come from the environment; Ctrl-C stops it all.
run: venv
	$(BIN)/trainyard devstack --port $(PORT)

# Flower alone, for a broker that is already running (BROKER_URL); `make run` starts its own.
flower: venv
	$(BIN)/celery -A workers.celery_app:celery_app flower --address=127.0.0.1 --port=$${FLOWER_PORT:-5555}

# docker compose (see docs/deployment.md). The images are built from wheels made here, so
# `docker build` needs no index (BASE_IMAGE=trainyard/base:bookworm works offline).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)

compose-build: venv
	bash scripts/build-app-image.sh

compose-config:
	$(COMPOSE) config

compose-up: compose-build
	$(COMPOSE) up -d

compose-down:
	$(COMPOSE) down

# Parallel over TEST_WORKERS processes (pytest-xdist), each with its own database and Redis DB;
# tests that start stacks or containers run one after another in one of them (tests/conftest.py).
TEST_WORKERS ?= 2
test: venv services images
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

test-fast: venv
	$(BIN)/python -m pytest -q tests/domain

lint: venv
	$(BIN)/ruff check app workers tests bench trainer
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m bench.api_bench

# Issue 13 item 7: the list and the detail beside the baseline (jsonify of a constant page)
# in one run, each row with its x rps and x p99 to the baseline; e.g.
# `make bench-api BENCH_API_ARGS="--concurrency 8,32 --duration 20"` (bench/README.md).
BENCH_API_ARGS ?= --concurrency 8 --duration 8 --open-duration 8
bench-api: venv
	$(BIN)/python -m bench.api_bench --scenarios baseline,list-first,list-mixed,detail \
		--no-fake-node $(BENCH_API_ARGS)

bench-dispatch: venv
	$(BIN)/python -m bench.dispatch_bench

bench-metrics: venv
	$(BIN)/python -m bench.metrics_bench

# Its own PostgreSQL cluster and Redis on free ports, the API and N nodes (process runtime);
# e.g. `make bench-scale SCALE_ARGS="--nodes 2 --runs 50"` (bench/README.md "Scale run").
SCALE_ARGS ?= --nodes 5,10,20 --runs 1000
bench-scale: venv
	$(BIN)/python -m bench.scale_bench $(SCALE_ARGS)

# Its own PostgreSQL, Redis, API and two nodes; faults by PID; CHAOS_BURST runs at once.
chaos: venv images
	$(BIN)/python -m tests.chaos --burst $${CHAOS_BURST:-150}

clean:
	rm -rf var .pytest_cache .ruff_cache
