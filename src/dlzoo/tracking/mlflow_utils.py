"""MLflow conventions of dlzoo: where the store is, run names, tags, and how a run ends.

Default store: ``sqlite:///<project>/mlflow.db`` with artifacts under ``<project>/mlartifacts``
(MLflow >= 3.13 refuses a plain ``./mlruns`` file store). ``$MLFLOW_TRACKING_URI`` or
``logger.tracking_uri`` points it elsewhere (e.g. ``http://127.0.0.1:5000`` for a shared server).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from dlzoo.paths import store_root


# Parallel jobs (joblib launcher, DDP) share one sqlite file: wait up to 60 s for its write lock instead of
# failing with "database is locked" (sqlite's default busy timeout is 5 s).
SQLITE_BUSY_TIMEOUT_S = 60

# The experiment tag that the MLflow UI (3.x) reads to choose between its "GenAI" and "Model training" views,
# and its value for model training (the UI's ExperimentKind.CUSTOM_MODEL_DEVELOPMENT; the Python package has
# no constant for it). Every experiment dlzoo creates carries it.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
# The UI's URL parameter for the same switch: an experiment page opens on the runs table with it.
UI_WORKFLOW_PARAM = "workflowType=machine_learning"
UI_DEFAULT = "http://127.0.0.1:5000"  # `make ui`


def tracking_uri(configured: str | None = None, root: Path | None = None) -> str:
    """``configured`` (``logger.tracking_uri``), else ``$MLFLOW_TRACKING_URI``, else the sqlite store of the
    project at ``root`` (default: the one the command runs in; see ``dlzoo.paths.store_root``)."""
    if configured:
        return configured
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{store_root(root) / 'mlflow.db'}?timeout={SQLITE_BUSY_TIMEOUT_S}"


def ensure_store(uri: str) -> None:
    """Make sure the sqlite store at ``uri`` exists, creating it one process at a time.

    MLflow builds a fresh sqlite store by running its ~50 schema migrations (alembic), which on sqlite copy
    tables through ``_alembic_tmp_*`` ones. Two processes doing that at once (two jobs, torchrun ranks, a
    `--jobs 2` benchmark started together) do not just fail: the loser leaves the store half-migrated ("table
    _alembic_tmp_experiments already exists", "expected to match one row ... 0 found") and every later job
    fails on it. Retrying cannot mend that, so the creation is serialised with a lock file beside the database
    (``<db>.lock``, filelock: the cross-platform lock torch and huggingface use); once the store exists, opening
    it migrates nothing and the lock is held for a few milliseconds. Servers and other databases are left to
    their own locking."""
    db = sqlite_file(uri)
    if db is None or db in _READY_STORES:
        return
    import mlflow

    db.parent.mkdir(parents=True, exist_ok=True)
    with sqlite_lock(uri):
        mlflow.MlflowClient(uri).search_experiments(max_results=1)  # creates / checks the schema
    _READY_STORES.add(db)


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (query string dropped); None for any other URL."""
    return Path(uri[len("sqlite:///"):].split("?")[0]) if str(uri).startswith("sqlite:///") else None


def sqlite_lock(uri: str, timeout_s: float = 600):
    """A lock across processes for a sqlite database (``<db>.lock`` beside it, filelock), or a no-op context
    for a server database, which does its own locking."""
    import contextlib

    db = sqlite_file(uri)
    if db is None:
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(f"{db}.lock", timeout=timeout_s)


_READY_STORES: set[Path] = set()


def store_client(uri: str):
    """An ``MlflowClient`` on ``uri``, its store created first if it is a fresh sqlite file (see ensure_store)."""
    import mlflow

    ensure_store(uri)
    return mlflow.MlflowClient(uri)


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail fast, before any training, when a tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    from dlzoo.errors import TrackingError

    fix = ("start it (`make mlflow-server`), or point elsewhere with MLFLOW_TRACKING_URI / logger.tracking_uri "
           "(unset both for the local sqlite store)")
    try:
        r = requests.get(uri.rstrip("/") + "/health", timeout=timeout_s)
    except requests.RequestException as exc:
        raise TrackingError(f"MLflow tracking server {uri} is unreachable ({type(exc).__name__}): {fix}") from None
    if r.status_code != 200:
        raise TrackingError(f"MLflow tracking server {uri} answered HTTP {r.status_code} on /health: {fix}")


def artifact_root(uri: str | None = None) -> str:
    """Where the artifacts of a store's experiments go: ``mlartifacts/`` beside a sqlite store's file, else
    beside the project's store (a database server's runs keep their artifacts in the project)."""
    db = sqlite_file(uri) if uri else None
    return ((db.parent if db is not None else store_root()) / "mlartifacts").as_uri()


def ui_url(experiment_id: str | None = None, base: str = UI_DEFAULT) -> str:
    """The MLflow UI page of an experiment (or the experiment list), on its Model-training view."""
    page = f"experiments/{experiment_id}" if experiment_id is not None else "experiments"
    return f"{base.rstrip('/')}/#/{page}?{UI_WORKFLOW_PARAM}"


def experiment_links(uri: str, base: str = UI_DEFAULT) -> list[str]:
    """``name: URL`` of every dlzoo experiment in the store at ``uri``, for the UI at ``base``."""
    import mlflow

    if (db := sqlite_file(uri)) is not None and not db.exists():
        return []  # no store yet (and none created by looking)
    client = mlflow.MlflowClient(uri)
    found = client.search_experiments(filter_string=f"tags.`{EXPERIMENT_KIND_TAG}` = '{MODEL_TRAINING_KIND}'")
    return [f"{e.name}: {ui_url(e.experiment_id, base)}" for e in sorted(found, key=lambda e: e.name)]


def get_or_create_experiment(client, name: str) -> str:
    """The id of experiment ``name``, created (tagged as model training) if it does not exist yet."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) is None:  # made by an older dlzoo or by hand
            client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
        return exp.experiment_id
    location = None
    uri = client._tracking_client.tracking_uri
    if uri.startswith("sqlite:") or uri.startswith("postgresql") or uri.startswith("mysql"):
        location = f"{artifact_root(uri)}/{name}"
    try:
        return client.create_experiment(name, artifact_location=location,
                                        tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
    except Exception:  # created meanwhile by a parallel job
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def data_version(root: Path) -> str | None:
    """The md5 that data.dvc of the project at ``root`` records for data/ (what DVC calls the data version)."""
    f = root / "data.dvc"
    if not f.exists():
        return None
    for line in f.read_text().splitlines():
        line = line.strip().lstrip("- ")
        if line.startswith("md5:"):
            return line.split(":", 1)[1].strip()
    return hashlib.md5(f.read_bytes()).hexdigest()


# Files DVC itself rewrites while a pipeline runs (lock files, the committed metrics of scores/): a change there
# does not make the code or config differ from the commit, so `git.dirty` leaves them out.
DVC_WRITTEN = (":(exclude,glob)**/dvc.lock", ":(exclude)scores")


def provenance_tags(overrides: list[str], root: Path) -> dict[str, str]:
    """Git commit and state, data version, the DVC experiment, the command: of the project at ``root``."""
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", *DVC_WRITTEN)
    tags = {
        "git.commit": commit or "unknown",
        "git.dirty": "unknown" if status is None else str(bool(status)).lower(),
        "data.dvc.md5": data_version(root) or "unknown",
        # set by DVC in `dvc exp run` (workspace, --queue, --temp): the experiment this run belongs to
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc.exp_baseline": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "mlflow.source.git.commit": commit or "",
        "mlflow.note.content": "Hydra overrides: " + (" ".join(overrides) if overrides else "(none: defaults)"),
    }
    return {k: v for k, v in tags.items() if v != ""}


# Keys of the root config that describe the DVC pipeline (its experiment lists), not the job a run trains
NOT_JOB_KEYS = ("pipeline",)
MAX_PARAM_CHARS = 6000  # MLflow's limit for one param value


def job_params(resolved: dict) -> dict[str, str]:
    """The composed job config as flat MLflow params (``optimizer.lr`` ...), without the pipeline's lists."""
    from dlzoo.config import flatten

    job = {k: v for k, v in resolved.items() if k not in NOT_JOB_KEYS}
    return {k: str(v)[:MAX_PARAM_CHARS] for k, v in flatten(job).items()}


def run_name(cfg: Any) -> str:
    if cfg.logger.get("run_name"):
        return str(cfg.logger.run_name)
    what = cfg.get("name") or f"{cfg.data.name}_{cfg.model.name}"
    opt = str(cfg.optimizer.get("_target_", "opt")).rsplit(".", 1)[-1].lower()
    return f"{what}-{opt}-lr{cfg.optimizer.lr:g}-s{cfg.seed}"


def end_status(exc: BaseException | None) -> str:
    """MLflow run status for how a job ended: FINISHED; KILLED for Ctrl-C and SIGTERM (a KeyboardInterrupt, or
    the SystemExit Lightning raises for them once it has stopped: SIGTERMException is one); FAILED otherwise."""
    if exc is None:
        return "FINISHED"
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return "KILLED"
    return "FAILED"


@contextlib.contextmanager
def ending(close: Callable[[str, BaseException | None], None]):
    """Run the block, then ``close(status, error)`` however it ended, so that an MLflow run is never left
    RUNNING: used by training (its own run), searches, comparisons and claims (their parent runs). The
    error, if any, is raised again once ``close`` is done."""
    error: BaseException | None = None
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 -- raised again below
        error = exc
        raise
    finally:
        close(end_status(error), error)


def start_parent(client, experiment_name: str, run_name: str, overrides: list[str], tags: dict[str, str],
                 root: Path) -> str:
    """An MLflow parent run for a group of child runs (a search, a comparison, a claim) of the project at
    ``root``; returns its id."""
    exp_id = get_or_create_experiment(client, experiment_name)
    return client.create_run(exp_id, run_name=run_name, tags=provenance_tags(overrides, root) | tags).info.run_id


class JobRun:
    """The MLflow run of one training job.

    Under DDP every rank runs the job; only global rank 0 (``rank0=True``) talks to MLflow, every method is a
    no-op elsewhere, so a job makes exactly one run. ``reuse_run_id`` reopens an earlier run (resuming).
    """

    def __init__(self, uri: str, rank0: bool) -> None:
        self.uri, self.rank0, self.run_id, self.run_name = uri, rank0, None, None
        self.experiment_id: str | None = None

    def start(self, experiment_name: str, run_name: str, tags: dict[str, str],
              reuse_run_id: str | None = None, system_metrics_s: float | None = None) -> None:
        """``system_metrics_s``: sample MLflow's system metrics (system/*) every so many seconds; None leaves
        it to MLflow (off unless $MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING is true)."""
        if not self.rank0:
            return
        import mlflow

        ensure_store(self.uri)
        mlflow.set_tracking_uri(self.uri)
        if system_metrics_s:
            mlflow.set_system_metrics_sampling_interval(system_metrics_s)
            mlflow.set_system_metrics_samples_before_logging(1)  # log each sample: no averaging over samples
        on = True if system_metrics_s else None
        if reuse_run_id:
            active = mlflow.start_run(run_id=reuse_run_id, log_system_metrics=on)
            mlflow.set_tags({k: v for k, v in tags.items() if k != "mlflow.parentRunId"})
        else:
            exp_id = get_or_create_experiment(mlflow.MlflowClient(self.uri), experiment_name)
            active = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags, log_system_metrics=on)
        self.run_id, self.run_name = active.info.run_id, active.info.run_name
        self.experiment_id = active.info.experiment_id

    def ui_url(self) -> str:
        """The run's experiment in the MLflow UI: this tracking server, or `make ui` for a local store."""
        return ui_url(self.experiment_id, self.uri if self.uri.startswith(("http://", "https://")) else UI_DEFAULT)

    def __getattr__(self, name: str):
        """log_params / log_metric / log_artifact / set_tag ... of ``mlflow``, on rank 0 only."""
        if name.startswith(("log_", "set_tag")):
            if not self.rank0:
                return lambda *a, **k: None
            import mlflow

            return getattr(mlflow, name)
        raise AttributeError(name)

    def flush(self) -> None:
        """Wait for the metrics queued by asynchronous logging (MLFlowLogger(synchronous=False))."""
        if self.rank0 and self.run_id:
            import mlflow

            mlflow.flush_async_logging()

    def end(self, status: str) -> None:
        if self.rank0 and self.run_id:
            import mlflow

            mlflow.end_run(status)
