# dlzoo: `make run` (set up + the whole default pipeline) and `make test` (set up + the test suite).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
# DVC and MLflow stay offline and quiet.
export DVC_NO_ANALYTICS := 1
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
# `mlflow ui/server` would start GenAI job workers (7 processes) that dlzoo never uses.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION := false
PYTEST_ARGS ?=
UI_PORT ?= 5000

.PHONY: help setup data run repro report test test-slow test-all ui mlflow-server params clean

help:
	@echo "make run        set up .venv, materialise data/, run the whole pipeline (dvc repro), print the leaderboard"
	@echo "make test       set up and run the test suite (not the slow tests)"
	@echo "make test-slow  the slow tests (accuracy bars of the real pipeline configs)"
	@echo "make ui         MLflow UI on http://127.0.0.1:$(UI_PORT)"
	@echo "make mlflow-server  a shared MLflow tracking server on http://127.0.0.1:$(SERVER_PORT)"
	@echo "make data       materialise data/ and check it against data.dvc"
	@echo "make params     re-compose params.yaml from conf/ (after editing conf/ defaults)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

setup: $(STAMP)

# data/ is DVC-tracked (data.dvc). With a DVC remote configured it is pulled; otherwise it is rebuilt from
# the packages that embed it, which is byte-identical, and then checked against data.dvc.
data: setup
	@if [ -n "$$(dvc remote list 2>/dev/null)" ]; then \
		dvc pull -q data.dvc; \
	else \
		python -m dlzoo.data.materialize && python -m dlzoo.data.check; \
	fi

repro: data
	dvc repro

report:
	@python -m dlzoo.report --print-only

run: repro
	@python -m dlzoo.report --print-only

test: data
	python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: data
	python -m pytest -m slow $(PYTEST_ARGS)

test-all: data
	python -m pytest $(PYTEST_ARGS)

ui: setup
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(UI_PORT)

# A shared tracking server on loopback (sqlite backend by default; MLFLOW_BACKEND=postgresql://... for a team).
# Point training at it with `logger=mlflow_server` or MLFLOW_TRACKING_URI=http://127.0.0.1:$(SERVER_PORT).
MLFLOW_BACKEND ?= sqlite:///$(CURDIR)/mlflow-server.db
SERVER_PORT ?= 5001
mlflow-server: setup
	mlflow server --backend-store-uri $(MLFLOW_BACKEND) --artifacts-destination $(CURDIR)/mlartifacts-server \
		--host 127.0.0.1 --port $(SERVER_PORT)

params: setup
	python -m dlzoo.configure --out params.yaml

clean:
	rm -rf artifacts metrics reports outputs multirun
