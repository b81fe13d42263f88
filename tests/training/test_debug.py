"""Debug presets (conf/debug/, as in lightning-hydra-template): what each sets, that Lightning's profiler
report reaches the MLflow run, that overfitting trains on the same batches, and that none of them writes
into the pipeline's outputs."""

from __future__ import annotations

import pytest

from conftest import FAST, compose, run_cli

PRESETS = {
    "default": {"trainer.max_epochs": 1, "trainer.detect_anomaly": True},
    "fdr": {"trainer.fast_dev_run": True},
    "overfit": {"trainer.overfit_batches": 3, "callbacks.early_stopping": None},
    "limit": {"trainer.limit_train_batches": 3, "trainer.limit_val_batches": 2, "trainer.limit_test_batches": 2},
    "profiler": {"trainer.profiler": "simple", "trainer.max_epochs": 1},
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_sets_its_keys_and_keeps_out_of_the_pipeline(project, preset):
    from omegaconf import OmegaConf

    cfg = compose([f"debug={preset}", "experiment=digits_lenet5"])
    for key, value in PRESETS[preset].items():
        assert OmegaConf.select(cfg, key) == value, key
    # no metrics file, no evaluation folder, no model, runs apart from the pipeline's experiments
    assert cfg.train.metrics is None and cfg.train.eval_dir is None and cfg.train.log_model is False
    assert cfg.logger.experiment_name == "debug"
    assert cfg.output_dir is None  # Hydra's run folder, which the preset puts under debug/
    assert cfg.model.name == "lenet5"  # the experiment's choices stay


def test_overfit_trains_on_the_same_batches_every_epoch(project):
    import lightning.pytorch as pl
    import torch
    from omegaconf import OmegaConf

    from dlzoo import builders

    cfg = compose(["debug=overfit", "model=mlp"])
    dm = builders.build_datamodule(cfg)
    dm.setup()
    task = builders.build_task(cfg, builders.build_network(cfg, dm.input_shape, dm.num_classes), dm.num_classes)
    seen: list[list[torch.Tensor]] = []

    class Record(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            seen.append([])

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen[-1].append(batch[1].clone())  # the labels identify the samples of a batch

    kwargs = OmegaConf.to_container(cfg.trainer) | {"max_epochs": 2, "enable_progress_bar": False,
                                                     "enable_model_summary": False}
    trainer = pl.Trainer(**kwargs, logger=False, enable_checkpointing=False, callbacks=[Record()])
    trainer.fit(task, datamodule=dm)
    assert [len(e) for e in seen] == [3, 3]
    assert all(torch.equal(a, b) for a, b in zip(*seen))
    first_three = [y for _, y in list(dm.train_dataloader())[:3]]
    assert not all(torch.equal(a, b) for a, b in zip(seen[0], first_three))  # the loader shuffles; overfit does not


@pytest.mark.slow  # long (subprocesses, services): `make test-slow` runs it
def test_profiler_report_is_an_artifact_of_the_run_and_nothing_lands_in_the_pipeline(project):
    from mlflow.tracking import MlflowClient

    res = run_cli(["-m", "dlzoo.train", "debug=profiler", "model=mlp", "trainer.limit_train_batches=3",
                   *FAST], project)
    assert res.returncode == 0, res.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("debug")
    (run,) = client.search_runs([exp.experiment_id])
    names = {a.path for a in client.list_artifacts(run.info.run_id, "profiler")}
    assert "profiler/fit-profile.txt" in names
    report = client.download_artifacts(run.info.run_id, "profiler/fit-profile.txt", str(project / "dl"))
    assert "run_training_epoch" in open(report).read()  # Lightning's SimpleProfiler table
    # the pipeline's outputs are untouched: no metrics/, nothing in artifacts/ but the splits
    assert not (project / "metrics").exists()
    assert sorted(p.name for p in (project / "artifacts").iterdir()) == ["splits"]
    assert list((project / "debug" / "runs").glob("*/*/profiler/fit-profile.txt"))


def test_unknown_profiler_is_refused_before_training(project):
    res = run_cli(["-m", "dlzoo.train", "debug=profiler", "trainer.profiler=fancy", *FAST], project)
    assert res.returncode == 2
    assert "trainer.profiler='fancy': must be null, 'simple', 'advanced' or 'pytorch'" in res.stderr
