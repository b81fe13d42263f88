"""One parent MLflow run per Hydra multirun, with every trial as its child.

``MLflowSweepParent`` is a Hydra callback (registered in conf/config.yaml under ``hydra.callbacks``): at
``on_multirun_start`` it creates the parent run and writes its id to ``<sweep dir>/mlflow_parent.json``;
every job of the sweep (in-process, joblib workers or SLURM tasks alike) reads that file and tags its run
``mlflow.parentRunId``; at ``on_multirun_end`` the parent gets the number of trials, how many finished,
and the best trial's ``test/acc`` and run id, and ends FINISHED (FAILED when no trial finished).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

PARENT_FILE = "mlflow_parent.json"


def parent_run_id() -> str | None:
    """The parent run of the current multirun job, or None outside a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    f = Path(hc.sweep.dir) / PARENT_FILE
    return json.loads(f.read_text())["run_id"] if f.exists() else None


class MLflowSweepParent(Callback):
    def __init__(self, metric: str = "test/acc", mode: str = "max") -> None:
        self.metric, self.mode = metric, mode

    def _client(self, config: DictConfig):
        from dlzoo.tracking.mlflow_utils import get_or_create_experiment, store_client, tracking_uri

        client = store_client(tracking_uri(config.logger.get("tracking_uri")))
        return client, get_or_create_experiment(client, config.logger.experiment_name)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from dlzoo.tracking.mlflow_utils import check_reachable, tracking_uri

        check_reachable(tracking_uri(config.logger.get("tracking_uri")))
        client, exp_id = self._client(config)
        sweep_dir = Path(config.hydra.sweep.dir)
        overrides = " ".join(config.hydra.overrides.task)
        run = client.create_run(exp_id, run_name=f"sweep-{sweep_dir.name}",
                                tags={"dlzoo.sweep": "parent", "mlflow.note.content": f"Hydra multirun: {overrides}"})
        sweep_dir.mkdir(parents=True, exist_ok=True)
        (sweep_dir / PARENT_FILE).write_text(json.dumps({"run_id": run.info.run_id}))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        f = Path(config.hydra.sweep.dir) / PARENT_FILE
        if not f.exists():
            return
        parent = json.loads(f.read_text())["run_id"]
        client, _ = self._client(config)
        children = client.search_runs(
            [e.experiment_id for e in client.search_experiments()],
            filter_string=f"tags.mlflow.parentRunId = '{parent}'", max_results=10000)
        done = [r for r in children if r.info.status == "FINISHED"]
        client.log_metric(parent, "sweep/trials", len(children))
        client.log_metric(parent, "sweep/finished", len(done))
        scored = [r for r in done if self.metric in r.data.metrics]
        if scored:
            pick = max if self.mode == "max" else min
            best = pick(scored, key=lambda r: r.data.metrics[self.metric])
            client.log_metric(parent, f"best/{self.metric}", best.data.metrics[self.metric])
            client.set_tag(parent, "best_run_id", best.info.run_id)
        client.set_terminated(parent, "FINISHED" if done else "FAILED")
