# trainyard — the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000

.PHONY: help venv run test test-fast lint services images migrate bench clean

help:
	@echo "make run        start trainyard on http://127.0.0.1:$(PORT) (embedded defaults)"
	@echo "make test       start PostgreSQL, Redis and Docker, then run every test"
	@echo "make test-fast  pure domain tests only (no services)"
	@echo "make lint       ruff"
	@echo "make services   install/start PostgreSQL, Redis and a Docker engine"
	@echo "make images     build the local base image and the reference trainer image"
	@echo "make bench      API benchmark (see bench/README.md)"

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

run: venv
	$(BIN)/trainyard migrate
	$(BIN)/gunicorn --bind 127.0.0.1:$(PORT) --workers 2 --threads 4 'app.factory:create_app()'

test: venv services images
	$(BIN)/python -m pytest -q

test-fast: venv
	$(BIN)/python -m pytest -q tests/domain

lint: venv
	$(BIN)/ruff check app workers tests bench trainer

bench: venv
	$(BIN)/python -m bench.api_bench

clean:
	rm -rf var .pytest_cache .ruff_cache
