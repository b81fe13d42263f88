"""The `paths` node: entry points bind it to a project once; nothing below them looks at the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import FAST, compose


def test_bind_fills_the_root_and_resolves_relative_paths_under_it(tmp_path):
    from dlzoo.paths import bind, paths_of

    cfg = bind(OmegaConf.create({"paths": {"root": None, "splits": "artifacts/splits"}}), tmp_path)
    assert paths_of(cfg) == (tmp_path.resolve(), tmp_path.resolve() / "artifacts" / "splits")
    # an absolute entry is kept; a config without the node (a pipeline job config) gets the defaults
    elsewhere = tmp_path / "shared" / "splits"
    assert paths_of(bind(OmegaConf.create({"paths": {"root": str(tmp_path), "splits": str(elsewhere)}})))[1] == elsewhere
    assert paths_of(bind(OmegaConf.create({"seed": 1}), tmp_path))[1] == tmp_path.resolve() / "artifacts" / "splits"


def test_an_unbound_config_is_refused_with_the_fix():
    from dlzoo import builders

    cfg = OmegaConf.create({"paths": {"root": None, "splits": "artifacts/splits"}})
    with pytest.raises(ValueError, match=r"dlzoo\.paths\.bind"):
        builders.splits_dir(cfg)


def test_compose_binds_to_the_project_the_command_runs_in(project):
    cfg = compose(["experiment=digits_mlp"])
    assert Path(cfg.paths.root) == project.resolve()
    assert Path(cfg.paths.splits) == project.resolve() / "artifacts" / "splits"


def test_pipeline_job_configs_are_the_same_on_every_machine(project, tmp_path, monkeypatch):
    """The configure stage's output (a DVC-hashed file) leaves the machine-local paths out."""
    from dlzoo.configure import main

    main(["--out", str(tmp_path / "a.yaml"), "--job", "experiment=digits_mlp"])
    monkeypatch.setenv("DLZOO_ROOT", str(tmp_path))  # another root
    main(["--out", str(tmp_path / "b.yaml"), "--job", "experiment=digits_mlp"])
    a = (tmp_path / "a.yaml").read_text()
    assert a == (tmp_path / "b.yaml").read_text() and "paths" not in OmegaConf.load(tmp_path / "a.yaml")


def test_a_job_started_elsewhere_trains_on_the_project_its_paths_name(project, tmp_path, monkeypatch):
    """From a folder that is no project, `paths.root=` picks the project: its splits, its store; the run's
    params and config.yaml hold no machine-local path."""
    import mlflow

    from dlzoo.train import run

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = compose([f"paths.root={project}", "experiment=digits_mlp", "trainer.max_epochs=1",
                   "trainer.limit_train_batches=2", "train.log_model=false", *FAST])
    info = run(cfg, elsewhere / "run", [])
    assert info["tracking_uri"].startswith(f"sqlite:///{project.resolve() / 'mlflow.db'}")
    assert not (elsewhere / "mlflow.db").exists()
    run_ = mlflow.MlflowClient(info["tracking_uri"]).get_run(info["run_id"])
    assert not any(k.startswith("paths.") for k in run_.data.params)
    assert "paths" not in OmegaConf.load(elsewhere / "run" / "config.yaml")


def test_missing_splits_are_refused_naming_the_folder_and_the_command(project, tmp_path):
    from dlzoo.errors import DlzooError
    from dlzoo.train import build

    missing = tmp_path / "no_splits"
    with pytest.raises(DlzooError, match=str(missing)) as exc:
        build(compose(["experiment=digits_mlp", f"paths.splits={missing}"]), tmp_path / "run")
    assert "dvc repro prepare" in str(exc.value)
