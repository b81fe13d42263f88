"""Hyperparameter search with Optuna over any config key or group: ``python -m dlzoo.train hparams_search=NAME``.

``conf/hparams_search/NAME.yaml`` holds the search space (``hparams_search.params``: a dotted key such as
``optimizer.lr`` or a group such as ``optimizer`` / ``regularizer`` -> a distribution) and may set other keys
for every trial. The value optimised is the one the run's checkpoint keeps (``callbacks.model_checkpoint``:
its ``monitor`` on the validation split, maximised for ``mode: max``), so the test split plays no part in
the choice.

Every trial is one ordinary training run (``dlzoo.train.run``) recorded as a child MLflow run of one parent
run, which holds the search space, each trial's value (``trial/value`` by step) and the best value, trial
and parameters. A trial that crashes is recorded (FAILED, the error in its tag) and told to Optuna as
failed; the search goes on.

Why Optuna directly and not hydra-optuna-sweeper: the sweeper (1.3.0, the last release) pins optuna < 3,
whose database storage breaks under SQLAlchemy 2 (which MLflow requires), and a failing job re-raises in
the sweeper and ends the whole sweep. Optuna's ask-and-tell API takes a dozen lines here, works with the
current Optuna (5.x) and its storages, and keeps every trial in this process (no Lightning re-import).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf

from dlzoo.errors import ConfigError
from dlzoo.paths import paths_of
from dlzoo.tracking.races import retry_race

KINDS = ("float", "int", "categorical")


def override_value(value: Any) -> str:
    """A Python value as a Hydra override value: lists as ``[a,b]``, None as ``null``."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if value is None:
        return "null"
    return str(value)


def check_space(space: dict) -> None:
    if not space:
        raise ConfigError("hparams_search.params is empty: give at least one key -> {type: float|int|categorical, ...}")
    for key, spec in space.items():
        kind = (spec or {}).get("type")
        if kind not in KINDS:
            raise ConfigError(f"hparams_search.params.{key}.type={kind!r}: choose one of {', '.join(KINDS)}")
        need = ("choices",) if kind == "categorical" else ("low", "high")
        missing = [k for k in need if spec.get(k) is None]
        if missing:
            raise ConfigError(f"hparams_search.params.{key} ({kind}) needs {', '.join(missing)}")


def suggest(trial, space: dict) -> tuple[dict[str, Any], list[str]]:
    """Sample one point: (values by key, Hydra overrides). Groups (keys without a dot) become ``group=option``
    (a list of options for several-at-once groups such as ``regularizer``); dotted keys ``++key=value``."""
    values, overrides = {}, []
    for key, spec in space.items():
        if spec["type"] == "float":
            v = trial.suggest_float(key, spec["low"], spec["high"], log=bool(spec.get("log", False)))
        elif spec["type"] == "int":
            v = trial.suggest_int(key, spec["low"], spec["high"], log=bool(spec.get("log", False)))
        else:  # Optuna's choices must be scalars: lists are offered as their override strings
            choices = [override_value(c) if isinstance(c, (list, tuple)) else c for c in spec["choices"]]
            v = trial.suggest_categorical(key, choices)
        values[key] = v
        overrides.append(f"{key}={override_value(v)}" if "." not in key else f"++{key}={override_value(v)}")
    return values, sorted(overrides, key=lambda o: o.startswith("++"))  # groups before values


def search(cfg: DictConfig, output_dir: Path, overrides: list[str], train: Callable[..., dict]) -> dict:
    """Run the search described by ``cfg.hparams_search``; trial folders go under ``output_dir``; each trial
    is trained by ``train`` (``dlzoo.train.run``, passed in by the training entry point so that this module
    does not import the one that calls it). Returns {best_value, best_params, best_trial, parent_run_id,
    n_failed}."""
    import optuna

    from dlzoo.tracking import mlflow_utils as mu

    hs = OmegaConf.to_container(cfg.hparams_search, resolve=True)
    space = hs.get("params") or {}
    check_space(space)
    monitor = OmegaConf.select(cfg, "callbacks.model_checkpoint.monitor")
    if not monitor:
        raise ConfigError("hparams_search optimises the checkpoint's monitored value: callbacks.model_checkpoint "
                          "is not configured")
    direction = "maximize" if OmegaConf.select(cfg, "callbacks.model_checkpoint.mode") == "max" else "minimize"
    base = [o for o in overrides if not o.lstrip("+~").startswith(("hydra.", "output_dir="))]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = _study(hs, direction, hs.get("seed", cfg.seed))
    root = paths_of(cfg)[0]
    client, exp_id = _open_store(mu.tracking_uri(cfg.logger.get("tracking_uri"), root), cfg.logger.experiment_name)
    name = cfg.get("name") or cfg.model.name

    def new_parent() -> str:
        pid = mu.start_parent(client, cfg.logger.experiment_name, f"search-{name}-{monitor.replace('/', '_')}",
                              overrides, {"dlzoo.search": "optuna", "dlzoo.name": str(name)}, root)
        client.log_param(pid, "search.space", json.dumps(space)[:6000])
        for k, v in {"search.metric": monitor, "search.direction": direction, "search.n_trials": hs["n_trials"],
                     "search.base_overrides": " ".join(base) or "(none)"}.items():
            client.log_param(pid, k, v)
        return pid

    # a shared study: the worker that asks trial 0 creates the parent run
    state: dict[str, Any] = {"pid": None if hs.get("storage") else new_parent(), "n_failed": 0}

    def close(status: str, _error: BaseException | None) -> None:
        pid = state["pid"] = state["pid"] or study.user_attrs.get(PARENT_ATTR)
        if pid is None:  # a shared study this worker asked nothing of (it had all its trials already)
            raise ConfigError(f"hparams_search.n_trials={hs['n_trials']}: the study {hs.get('study_name')!r} in "
                              f"{hs.get('storage')} has that many trials already; raise n_trials to go on")
        state["summary"] = _summarise(client, study, pid, monitor, state["n_failed"])
        client.set_terminated(pid, status)

    with mu.ending(close):
        while (trial := _ask(study, int(hs["n_trials"]), hs.get("storage"))) is not None:
            pid = state["pid"] = state["pid"] or _shared_parent(study, trial.number, new_parent)
            values, trial_overrides = suggest(trial, space)
            tags = {"mlflow.parentRunId": pid, "dlzoo.trial": str(trial.number)}
            try:
                trial_cfg = _compose([*base, *trial_overrides])
                info = train(trial_cfg, output_dir / f"trial_{trial.number:03d}", [*base, *trial_overrides], extra_tags=tags)
                value = (info.get("best_score") or {}).get(monitor)
                if value is None:
                    raise RuntimeError(f"the trial logged no {monitor}")
            except Exception as exc:  # noqa: BLE001 -- a crashed trial must not end the search
                state["n_failed"] += 1
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                _record_failure(client, exp_id, pid, trial.number, values, exc)
                print(f"trial {trial.number} failed ({type(exc).__name__}: {exc}); the search goes on", file=sys.stderr)
                continue
            study.tell(trial, value)
            client.log_metric(pid, "trial/value", value, step=trial.number)
            print(f"trial {trial.number}: {monitor}={value:.4f} {' '.join(trial_overrides)}")
    summary, pid = state["summary"], state["pid"]
    print(f"best {monitor}={summary['best_value']} (trial {summary['best_trial']}): {summary['best_params']}; "
          f"MLflow parent run {pid}")
    return summary


PARENT_ATTR = "mlflow_parent_run_id"


def _open_store(uri: str, experiment_name: str):
    """(client, experiment id) of a store that concurrent workers may be creating at the same moment."""
    from dlzoo.tracking import mlflow_utils as mu

    def make():
        client = mu.store_client(uri)
        return client, mu.get_or_create_experiment(client, experiment_name)

    return retry_race(make)


def _study(hs: dict, direction: str, seed: int):
    """The Optuna study: in memory, or in ``hparams_search.storage`` (a database URL: sqlite:///optuna.db,
    postgresql://...) under ``study_name``, shared by every worker started with the same two; each finished
    trial is written there when it is told, so a worker that dies loses no finished trial."""
    import optuna

    storage = hs.get("storage")
    if storage:
        # sqlite: wait for a lock held by another worker instead of failing at once
        engine = {"connect_args": {"timeout": 60}} if str(storage).startswith("sqlite") else {}
        url = storage
        storage = retry_race(lambda: optuna.storages.RDBStorage(url, engine_kwargs=engine))
    sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(direction=direction, sampler=sampler, storage=storage,
                                study_name=hs.get("study_name"), load_if_exists=storage is not None)
    if storage is not None:
        sampler.reseed_rng()  # workers with one seed would propose the same points; a shared study is not replayable
    return study


def _ask(study, n_trials: int, storage: str | None):
    """The study's next trial, or None once it has ``n_trials`` (every worker's, in a shared one).

    Counting and asking are two calls: two workers that both count n - 1 trials would both ask and the study
    would end with n + 1. On a sqlite study (one file that every worker reaches) the pair is made atomic with
    a lock file beside it; on a server database (PostgreSQL) a worker may still run one trial more."""
    from dlzoo.tracking.mlflow_utils import sqlite_lock

    with sqlite_lock(storage or ""):  # a no-op for an in-memory study or a server database
        return study.ask() if _open_trials(study) < n_trials else None


def _open_trials(study) -> int:
    """Trials asked so far, by every worker (complete, failed, running, waiting)."""
    return len(study.get_trials(deepcopy=False))


def _shared_parent(study, number: int, create, timeout_s: float = 120.0) -> str:
    """The parent MLflow run of a shared study, created once: the storage hands out trial numbers atomically,
    so the worker holding trial 0 creates it and records its id in the study; the others wait for that id."""
    import time

    if number == 0 and PARENT_ATTR not in study.user_attrs:
        study.set_user_attr(PARENT_ATTR, create())
    deadline = time.monotonic() + timeout_s
    while PARENT_ATTR not in study.user_attrs:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no parent MLflow run recorded in the study after {timeout_s:.0f} s "
                               "(the worker holding trial 0 died before creating it): start the search anew")
        time.sleep(0.5)
    return study.user_attrs[PARENT_ATTR]


def _compose(overrides: list[str]) -> DictConfig:
    """The trial's config: composed like the command's own (inside ``@hydra.main`` Hydra is initialised already)."""
    from hydra.core.global_hydra import GlobalHydra

    if not GlobalHydra.instance().is_initialized():
        from dlzoo.configure import compose

        return compose(overrides)
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    cfg = compose(config_name=HydraConfig.get().job.config_name, overrides=overrides)
    OmegaConf.resolve(cfg)
    return cfg


def _record_failure(client, exp_id: str, pid: str, number: int, values: dict, exc: BaseException) -> None:
    """A trial that failed before its training run started (a bad value, a model that refuses it) still
    gets a FAILED child run with its parameters and the error."""
    found = client.search_runs([exp_id], filter_string=f"tags.mlflow.parentRunId = '{pid}' and "
                               f"tags.`dlzoo.trial` = '{number}'", max_results=1)
    error = f"{type(exc).__name__}: {exc}"[:5000]
    if found:
        return
    child = client.create_run(exp_id, run_name=f"trial-{number}", tags={"mlflow.parentRunId": pid,
                                                                       "dlzoo.trial": str(number), "dlzoo.error": error})
    for k, v in values.items():
        client.log_param(child.info.run_id, k, v)
    client.set_terminated(child.info.run_id, "FAILED")


def _summarise(client, study, pid: str, monitor: str, n_failed: int) -> dict:
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary = {"best_value": None, "best_params": {}, "best_trial": None, "parent_run_id": pid, "n_failed": n_failed,
               "n_complete": len(done)}
    client.set_tag(pid, "dlzoo.search.failed_trials", str(n_failed))
    if done:
        best = study.best_trial
        summary.update(best_value=best.value, best_params=best.params, best_trial=best.number)
        client.log_metric(pid, f"best/{monitor}", best.value)
        client.set_tag(pid, "dlzoo.search.best_trial", str(best.number))
        for k, v in best.params.items():
            client.log_param(pid, f"best.{k}", v)
    return summary
