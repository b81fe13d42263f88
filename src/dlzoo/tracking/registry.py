"""The MLflow Model Registry side of dlzoo: every evaluated model is registered under a stable name per
dataset and architecture (``<dataset>-<model>``, e.g. ``digits-lenet5``), and the alias ``best`` follows
the version with the highest test score. MLflow reserves the alias name ``latest``; its own
``models:/<name>/latest`` URI already means the newest version, so dlzoo uses that instead of an alias.

    models:/digits-lenet5@best      the best version so far (test accuracy, or test R^2 for regression)
    models:/digits-lenet5/latest    the newest version
    models:/digits-lenet5/3         version 3
"""

from __future__ import annotations

from dataclasses import dataclass

from dlzoo.errors import DataError

BEST = "best"
SCORE_TAG = "dlzoo.score"  # model-version tag: "<metric>=<value>"


def registered_name(dataset: str, model: str) -> str:
    return f"{dataset}-{model}"


def _score(version) -> float:
    tag = (version.tags or {}).get(SCORE_TAG, "")
    try:
        return float(tag.split("=", 1)[1])
    except (IndexError, ValueError):
        return float("-inf")


def register(client, name: str, model_uri: str, run_id: str, metric: str, score: float) -> tuple[str, bool]:
    """Register ``model_uri`` as a new version of ``name``; move ``@best`` to it when its score is at least
    the current best's. Returns (version, became_best)."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"dlzoo: {name} (alias @best = highest {metric})")
    version = client.create_model_version(name, model_uri, run_id=run_id,
                                          tags={SCORE_TAG: f"{metric}={score:.6g}"}).version
    try:
        current = client.get_model_version_by_alias(name, BEST)
    except MlflowException:
        current = None
    became_best = current is None or score >= _score(current)
    if became_best:
        client.set_registered_model_alias(name, BEST, version)
    return str(version), became_best


@dataclass
class ModelRef:
    """A ``models:/`` URI resolved to its registered version and the training run that made it."""

    uri: str
    name: str
    version: str
    run_id: str


def resolve(client, uri: str) -> ModelRef:
    """``models:/<name>@<alias>``, ``models:/<name>/<version>`` or ``models:/<name>/latest`` -> ModelRef."""
    from mlflow.exceptions import MlflowException

    if not uri.startswith("models:/"):
        raise DataError(f"{uri!r} is not a models:/ URI (expected models:/<name>@best or models:/<name>/<version>)")
    ref = uri[len("models:/"):]
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, _, ver = ref.partition("/")
            if ver in ("", "latest"):
                versions = client.search_model_versions(f"name='{name}'")
                if not versions:
                    raise MlflowException(f"no versions of {name!r}")
                mv = max(versions, key=lambda v: int(v.version))
            else:
                mv = client.get_model_version(name, ver)
    except MlflowException as exc:
        names = sorted(m.name for m in client.search_registered_models())
        raise DataError(f"{uri} not found in the MLflow registry ({exc.message if hasattr(exc, 'message') else exc}); "
                        f"registered models: {', '.join(names) or '(none: run `dvc repro` first)'}") from None
    return ModelRef(uri=uri, name=mv.name, version=str(mv.version), run_id=mv.run_id)
