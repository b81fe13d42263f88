"""``train.steps_per_execution``: several optimizer steps per Lightning step make exactly the updates of one step
per batch -- same weights, optimizer and scheduler state, step count and epoch figures -- with per-step and
plateau schedules, norm and value clipping, step limits and DDP; what cannot apply is refused before training."""

from __future__ import annotations

import pytest
import torch
from conftest import FAST, compose, run_cli

from dlzoo.errors import ConfigError

BASE = ["experiment=digits_mlp", "train.test=false", "train.log_model=false", "runtime.threads=1", *FAST]


def _train(project, name: str, *overrides: str):
    from dlzoo.train import run

    info = run(compose([*BASE, *overrides]), project / name, [])
    assert info["status"] == "FINISHED"
    return torch.load(info["last_ckpt"], weights_only=False), (project / name / "history.csv").read_text()


def _history(text: str) -> list[list[str]]:
    """history.csv without its wall-time column."""
    rows = [line.split(",") for line in text.strip().splitlines()]
    drop = rows[0].index("time/train_epoch_s")
    return [[v for i, v in enumerate(row) if i != drop] for row in rows]


def _same_training(a: dict, b: dict) -> None:
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    (sa,), (sb,) = a["optimizer_states"], b["optimizer_states"]
    assert [g["lr"] for g in sa["param_groups"]] == [g["lr"] for g in sb["param_groups"]]
    for p, state in sa["state"].items():
        assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(sb["state"][p][k])) for k, v in state.items())
    assert a["lr_schedulers"] == b["lr_schedulers"]


@pytest.mark.parametrize("extra", [
    # a per-step schedule (total_steps from the run's optimizer steps) and clipping by norm
    ["trainer.max_epochs=2", "scheduler=onecycle", "trainer.gradient_clip_val=0.05"],
    # reduce-on-plateau at every epoch's end (mode=max on val/loss: it never "improves") and clipping by value
    ["trainer.max_epochs=3", "scheduler=plateau", "scheduler.mode=max", "scheduler.patience=0",
     "trainer.gradient_clip_val=0.01", "trainer.gradient_clip_algorithm=value"],
    # callbacks with step hooks (gradient norms, update sizes: history.csv's grad/* and update/* columns)
    ["trainer.max_epochs=2", "+callbacks.grad_norms._target_=dlzoo.training.probes.GradientNorms",
     "+callbacks.update_norms._target_=dlzoo.training.probes.UpdateNorms"],
    # augmentation (drawn per step, between the forward passes) on a CNN
    ["experiment=digits_lenet5", "trainer.max_epochs=1", "trainer.limit_train_batches=6"],
    # Lightning's own path for each step (a precision plug-in that adds to it: autocast), clipping under it
    ["trainer.max_epochs=1", "trainer.precision=bf16-mixed", "trainer.gradient_clip_val=0.05"],
])
def test_several_steps_per_batch_make_the_same_updates_as_one(project, extra):
    one, h1 = _train(project, "k1", "train.steps_per_execution=1", *extra)
    three, h3 = _train(project, "k3", "train.steps_per_execution=3", *extra)  # 20 batches an epoch: 7 of 3, last of 2
    _same_training(one, three)
    assert _history(h1) == _history(h3)
    if any("GradientNorms" in o for o in extra):
        assert "grad/first_over_last" in h3 and "update/effective_lr" in h3
    if not any(o.startswith("trainer.limit_train_batches") for o in extra):
        assert one["global_step"] == 20 * one["epoch"] + 20  # optimizer steps, not Lightning steps
    if "scheduler=plateau" in extra:  # the schedule did act
        assert three["optimizer_states"][0]["param_groups"][0]["lr"] < compose([*BASE, *extra]).optimizer.lr


def test_mlflow_curves_are_over_optimizer_steps_either_way(project):
    """The learning rate every trainer.log_every_n_steps optimizer steps and the epoch figures at the same step
    numbers, whether a Lightning step holds one optimizer step or several: curves of both kinds of run overlay."""
    import mlflow

    from dlzoo.train import run

    curves = []
    for k in (1, 3):
        info = run(compose([*BASE, "scheduler=onecycle", "trainer.max_epochs=2", "trainer.log_every_n_steps=4",
                            "train.test=true", f"train.steps_per_execution={k}"]), project / f"k{k}", [])
        client = mlflow.MlflowClient(info["tracking_uri"])
        curves.append({key: sorted((m.step, m.value) for m in client.get_metric_history(info["run_id"], key))
                       for key in ("lr-Adam", "val/acc", "train/loss", "epoch", "test/acc")})
    assert curves[0] == curves[1]
    assert [s for s, _ in curves[0]["lr-Adam"]] == list(range(3, 40, 4))  # every 4th of 2 x 20 steps


def test_distillation_takes_several_steps_per_batch_with_the_same_updates(project):
    """The distillation task is a classification task with its own loss: it must reach every step too."""
    _train(project, "teacher", "trainer.max_epochs=1")
    distill = ["task=distill", f"+distill.teacher={project / 'teacher'}", "model.hidden=[32]", "trainer.max_epochs=1"]
    one, _ = _train(project, "k1", "train.steps_per_execution=1", *distill)
    three, _ = _train(project, "k3", "train.steps_per_execution=3", *distill)
    _same_training(one, three)
    assert one["global_step"] == 20
    first = {k: v for k, v in one["state_dict"].items() if k.startswith("net.")}
    assert first and "teacher.head.weight" in one["state_dict"]  # the student's weights, the teacher beside them
    # the student moved from where it starts
    from dlzoo.train import build

    fresh = build(compose([*BASE, *distill]), project / "fresh").task.state_dict()
    assert not all(torch.equal(v, fresh[k]) for k, v in first.items())


@pytest.mark.parametrize("k, limits, steps", [
    (4, ["trainer.max_epochs=2", "trainer.limit_train_batches=6"], 12),  # 6 an epoch (3 steps a batch), not 2 x 4
    # the epoch's batches all in one (digits: 20 steps an epoch), 6 steps of it: the sampler is not run to its
    # end, as with one step per batch, so the next epoch's shuffle is the same
    (32, ["trainer.max_epochs=2", "trainer.limit_train_batches=6"], 12),
    (4, ["trainer.max_epochs=1", "trainer.max_steps=7"], 7),  # not 2 batches x 4
])
def test_step_limits_count_optimizer_steps(project, k, limits, steps):
    one, _ = _train(project, "k1", "train.steps_per_execution=1", *limits)
    several, _ = _train(project, f"k{k}", f"train.steps_per_execution={k}", *limits)
    assert several["global_step"] == steps
    _same_training(one, several)


def test_what_cannot_take_several_steps_is_refused_before_training(project):
    from dlzoo.train import build

    def refusal(*overrides: str) -> str:
        with pytest.raises(ConfigError) as e:
            build(compose([*BASE, *overrides]), project / "out")
        return str(e.value)

    assert "train.steps_per_execution=0: must be an integer >= 1" in refusal("train.steps_per_execution=0")
    assert "trainer.accumulate_grad_batches=2 do not go together" in refusal(
        "train.steps_per_execution=2", "+trainer.accumulate_grad_batches=2")
    assert "integer trainer.val_check_interval" in refusal("train.steps_per_execution=2", "+trainer.val_check_interval=5")
    assert "task=regress takes one optimizer step per training batch" in refusal(
        "experiment=diabetes_mlp", "train.steps_per_execution=2")
    assert not (project / "out" / "mlflow_run.json").exists()


@pytest.mark.slow  # two DDP jobs of two processes each: `make test-slow` runs it
def test_under_ddp_every_step_all_reduces_its_gradients(project):
    """With k steps per batch each rank's optimizer must see the gradients averaged over the ranks at every step,
    not only the first: the weights then equal those of one step per batch."""
    ckpts = []
    for k in (1, 3):
        out = project / f"ddp{k}"
        r = run_cli(["-m", "dlzoo.train", "trainer=ddp_cpu", *BASE, "trainer.max_epochs=2", f"output_dir={out}",
                     f"train.steps_per_execution={k}", f"hydra.run.dir={out}/hydra"], cwd=project, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        ckpts.append(torch.load(out / "checkpoints" / "last.ckpt", weights_only=False))
    _same_training(*ckpts)
