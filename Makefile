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
export DEBIAN_FRONTEND := noninteractive
PYTEST_ARGS ?=
UI_PORT ?= 5000

.PHONY: help setup lock data trainer gpu-check postgres run run-seeds run-extra claims claims-all claims-threads repro report browser bench bench-pipeline test test-slow test-all ui mlflow-server params clean

help:
	@echo "make run        set up .venv, materialise data/, run the whole pipeline (dvc repro), print the leaderboard"
	@echo "                TRAINER=gpu (ddp, mps): train its stages on that preset of conf/trainer/"
	@echo "make run-seeds  make run, then the default matrix again at the seeds of pipeline.seeds; mean ± std in the report"
	@echo "make run-extra  the extra suite (shuffled MNIST-1D, seq2seq, WGAN, YOLO; extra/dvc.yaml), then the report"
	@echo "make claims     the lecture-claims suite (claims/dvc.yaml) but its slow claims: verdicts -> reports/claims.md"
	@echo "make claims-all the whole lecture-claims suite, the slow claims (WGAN, attention vs CNN, ...) too"
	@echo "make claims-threads  make claims' training claims at 1 and 2 torch threads, verdicts combined"
	@echo "make test       set up and run the test suite (not the slow tests)"
	@echo "make test-slow  the slow tests: accuracy bars across seeds, run-seeds, serving, PostgreSQL, gpu-check dry run"
	@echo "make bench      benchmarks: throughput vs a raw PyTorch loop, per-step profile, start-up, latency/memory (benchmarks/results/)"
	@echo "make gpu-check  on a GPU machine: every experiment 1 epoch, DDP, bf16 throughput (benchmarks/results/)"
	@echo "make bench-pipeline  wall time of a fresh make run and of a no-op dvc repro"
	@echo "make ui         MLflow UI on http://127.0.0.1:$(UI_PORT)/#/experiments?workflowType=machine_learning"
	@echo "make mlflow-server  a shared MLflow tracking server on http://127.0.0.1:$(SERVER_PORT)"
	@echo "make data       materialise data/ and check it against data.dvc"
	@echo "make lock       refresh requirements.lock (the exact versions make setup installs) from .venv"
	@echo "make params     rewrite params.yaml (DVC params: pipeline lists, prepare, per-experiment overrides) from conf/"

# requirements.lock: the exact versions of the recorded results, as pip constraints (see its header)
LOCK := requirements.lock

# The installer is uv (pip install uv, then `uv pip install`): the same constraints file and versions as pip,
# in under a minute where pip took 2-3 (its resolver, and its byte-compiling of every module one at a time).
# --compile-bytecode: where Python may not write bytecode (PYTHONDONTWRITEBYTECODE) every start would otherwise
# compile torch's modules again. uv does not read pip's configuration, so a find-links folder set for pip (a
# local torch wheel) is handed to it. Should uv be unavailable or fail, pip installs the same set.
FIND_LINKS = $${UV_FIND_LINKS:-$${PIP_FIND_LINKS:-$$($(BIN)/python -m pip config get global.find-links 2>/dev/null)}}

$(STAMP): pyproject.toml $(LOCK)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	{ $(BIN)/python -m pip install -q uv && UV_FIND_LINKS="$(FIND_LINKS)" \
		$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -c $(LOCK) -e '.[dev]'; } || \
		$(BIN)/python -m pip install -q -c $(LOCK) -e '.[dev]'
	@touch $@

setup: $(STAMP)

# Refresh requirements.lock from .venv: install pyproject.toml's ranges (without the lock; upgrade a package
# first with `.venv/bin/pip install -U NAME` to move it), then freeze every version, local labels (+cpu) dropped.
lock:
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@{ sed -n '1,/^$$/p' $(LOCK); $(BIN)/python -m pip freeze --exclude-editable | sed -E 's/\+[A-Za-z0-9.]+$$//'; } \
		> $(LOCK).new && mv $(LOCK).new $(LOCK)
	@touch $(STAMP)
	@echo "$(LOCK): $$(grep -c '==' $(LOCK)) pinned packages"

# data/ is DVC-tracked (data.dvc). With a DVC remote configured it is pulled; otherwise it is rebuilt from
# the packages that embed it, which is byte-identical, and then checked against data.dvc.
data: setup
	@if [ -n "$$(dvc remote list 2>/dev/null)" ]; then \
		dvc pull -q data.dvc; \
	else \
		python -m dlzoo.data.materialize && python -m dlzoo.data.check; \
	fi

# TRAINER: the preset of conf/trainer/ the pipeline's stages train on (`make run TRAINER=gpu`; ddp, mps, cpu).
# It reaches each stage's composed config (artifacts/configs/, via DLZOO_TRAINER and dlzoo.configure); when it
# differs from the last run's, those configs are re-composed, so DVC re-trains the stages whose config changed.
TRAINER ?= cpu
export DLZOO_TRAINER := $(TRAINER)
TRAINER_STAMP := artifacts/configs/.trainer

trainer: setup
	@python -m dlzoo.accelerators $(TRAINER)
	@if [ "$$(cat $(TRAINER_STAMP) 2>/dev/null || echo cpu)" != "$(TRAINER)" ]; then \
		echo "trainer=$(TRAINER): re-composing the stages' configs"; \
		dvc repro -q --force --single-item configure extra/dvc.yaml:configure_extra && \
		echo "$(TRAINER)" > $(TRAINER_STAMP); \
	fi

# the default pipeline (dvc.yaml); `make run-extra` adds the extra suite (extra/dvc.yaml); `dvc repro -P` runs both
repro: data trainer
	dvc repro

report:
	@python -m dlzoo.report --print-only

run: repro
	@python -m dlzoo.report --print-only

# the default matrix at the seeds of pipeline.seeds besides each experiment's own (seeds/dvc.yaml; about twice
# the training time of `make run` with two extra seeds), then the report with mean ± std (n) over the seeds
run-seeds: repro
	dvc repro seeds/dvc.yaml
	dvc repro --single-item --force report
	@python -m dlzoo.report --print-only

# the extra suite (shuffled MNIST-1D, seq2seq, WGAN, YOLO: ~15 min more on 2 cores), then the report again with it
run-extra: data trainer
	dvc repro extra/dvc.yaml
	dvc repro --single-item --force report
	@python -m dlzoo.report --print-only

# the lecture-claims suite (conf/claims/, claims/dvc.yaml): trains each claim's runs, judges it, then the report
# again with reports/claims.md. Claims on compression results reproduce those stages of the default pipeline first.
claims: data
	dvc repro claims/dvc.yaml:claims claims/dvc.yaml:claims_on_results
	dvc repro --single-item --force report
	@python -m dlzoo.claims --summary

# every claim, the slow ones (pipeline.claims_slow) too
claims-all: data
	dvc repro claims/dvc.yaml
	dvc repro --single-item --force report
	@python -m dlzoo.claims --summary
	@git status --porcelain claims/dvc.lock | grep -q . && echo "claims/dvc.lock changed: commit it (and dvc push) like dvc.lock, see docs/dvc.md" || true

# make claims' training claims at 1 and at 2 torch threads (stand-ins for two CPUs; CLAIMS= picks others), then
# their verdicts combined into metrics-claims/: a verdict that differs between the two is inconclusive
CLAIMS ?= $(shell python -c "from omegaconf import OmegaConf; print(*OmegaConf.load('params.yaml').pipeline.claims)")
claims-threads: data
	dvc repro prepare
	for t in 1 2; do for c in $(CLAIMS); do \
	  python -m dlzoo.claims $$c --threads $$t --out metrics-claims-t$$t/$$c.json --runs artifacts/claims-t$$t/$$c || exit 1; \
	done; done
	python -m dlzoo.claims --combine metrics-claims-t1 metrics-claims-t2 --out-dir metrics-claims
	dvc repro --single-item --force report

# The browser test (tests/pipeline/test_pipeline.py) looks at the report and the MLflow UI through headless Chromium,
# Debian's `chromium` package; installed here where apt-get runs as root, else that one test is skipped.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser test"; \
		{ apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || \
		  { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }; } \
		|| echo "warning: could not install chromium; the browser test will be skipped"; \
	else echo "note: no chromium (install Debian's chromium package); the browser test will be skipped"; fi

# The PostgreSQL test (tests/pipeline/test_scale_out.py) starts its own server on 127.0.0.1 with Debian's postgresql
# (initdb / pg_ctl); installed here where apt-get runs as root, else that test is skipped.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's postgresql for the PostgreSQL tracking-server test"; \
		{ apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 || \
		  { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends postgresql >/dev/null; }; } \
		|| echo "warning: could not install postgresql; the PostgreSQL test will be skipped"; \
	else echo "note: no PostgreSQL (install Debian's postgresql package); the PostgreSQL test will be skipped"; fi

# `make test` runs the tests in TEST_JOBS processes (pytest-xdist; `TEST_JOBS=auto`: one per CPU, `TEST_JOBS=0`:
# in this process). Most tests are small trainings whose Python overhead leaves a core idle: on a 2-core AMD
# EPYC pytest took 11.8-13.3 min in two processes, 16 min in one (benchmarks/README.md). The slow suite stays
# in one process (its bars and timings). `--dist loadfile`: a file's tests share one worker, so a module fixture
# that reproduces a pipeline is built once (tests/conftest.py orders the long files first).
TEST_JOBS ?= 2

test: data postgres
	python -m ruff check src tests benchmarks
	python -m pytest -m "not slow" -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

test-slow: data browser postgres
	python -m pytest -m slow $(PYTEST_ARGS)

# Benchmarks: figures go to benchmarks/results/*.json; see benchmarks/README.md. Not timed tests.
bench: data
	python benchmarks/throughput.py
	python benchmarks/step_profile.py
	python benchmarks/startup.py
	python benchmarks/models.py

# On a GPU machine: every default experiment one epoch on one GPU, DDP on all GPUs (one MLflow run), bf16
# throughput against a raw loop -> benchmarks/results/gpu_check.json (`python benchmarks/gpu_check.py --dry-run`: CPU)
gpu-check: data
	python benchmarks/gpu_check.py

bench-pipeline: setup
	python benchmarks/pipeline.py

test-all: data browser postgres
	python -m pytest $(PYTEST_ARGS)

ui: setup
	@echo "MLflow UI: http://127.0.0.1:$(UI_PORT)/#/experiments?workflowType=machine_learning"
	@echo "  (an experiment: http://127.0.0.1:$(UI_PORT)/#/experiments/<id>?workflowType=machine_learning; python -m dlzoo.report lists them)"
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --host 127.0.0.1 --port $(UI_PORT)

# A shared tracking server on loopback (sqlite backend by default; MLFLOW_BACKEND=postgresql://... for a team).
# Point training at it with `logger=mlflow_server` or MLFLOW_TRACKING_URI=http://127.0.0.1:$(SERVER_PORT).
MLFLOW_BACKEND ?= sqlite:///$(CURDIR)/mlflow-server.db
SERVER_PORT ?= 5001
mlflow-server: setup
	mlflow server --backend-store-uri $(MLFLOW_BACKEND) --artifacts-destination $(CURDIR)/mlartifacts-server \
		--host 127.0.0.1 --port $(SERVER_PORT)

params: setup
	python -m dlzoo.configure --out params.yaml --params

clean:
	rm -rf artifacts metrics reports outputs multirun debug
