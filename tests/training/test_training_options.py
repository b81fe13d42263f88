"""Optimizers, schedules, regularizers, losses and activations: each behaves as its formula says, and every
option of their config groups trains a real Lightning step."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from conftest import FAST, ROOT, compose
from dlzoo import builders
from dlzoo.models import get_model
from dlzoo.models.layers import ACTIVATIONS, DropConnectLinear, act_layer
from dlzoo.tasks.options import partial
from dlzoo.training.losses import build_loss, soft_targets
from dlzoo.training.optim import split_decay, weight_penalties
from dlzoo.training.schedules import warmup_factor


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


# ---------------------------------------------------------------- optimizers: the lecture's update rules (000 §3)
W0, G = torch.tensor([1.0, -2.0, 3.0]), torch.tensor([0.5, -1.0, 2.0])


def _steps(option: str, n: int) -> tuple[torch.Tensor, dict]:
    """``n`` steps of the configured optimizer on w = W0 with the constant gradient G."""
    cfg = compose([f"optimizer={option}"])
    w = nn.Parameter(W0.clone())
    opt = partial(cfg.optimizer)([w])
    for _ in range(n):
        opt.zero_grad()
        (w * G).sum().backward()  # dL/dw = G
        opt.step()
    return w.detach(), dict(cfg.optimizer)


def _adam_dir(h: dict) -> torch.Tensor:
    # first step: m_hat = g, v_hat = g^2 (bias-corrected; the lecture's table omits the correction)
    return G / (G.abs() + h["eps"])


RULES = {  # option -> (w after the first step, w after the second step or None)
    "sgd": lambda h: (W0 - h["lr"] * G, None),
    "momentum": lambda h: (W0 - h["lr"] * G, W0 - h["lr"] * G - h["lr"] * (h["momentum"] + 1) * G),
    "nesterov": lambda h: (W0 - h["lr"] * (1 + h["momentum"]) * G, None),
    "adagrad": lambda h: (W0 - h["lr"] * G / (G.pow(2).sqrt() + h["eps"]), None),
    "rmsprop": lambda h: (W0 - h["lr"] * G / (((1 - h["alpha"]) * G.pow(2)).sqrt() + h["eps"]), None),
    "adam": lambda h: (W0 - h["lr"] * _adam_dir(h), None),
    "adamw": lambda h: (W0 * (1 - h["lr"] * h["weight_decay"]) - h["lr"] * _adam_dir(h), None),
    "lamb": lambda h: (W0 - h["lr"] * W0.norm() / (r := _adam_dir(h) + h["weight_decay"] * W0).norm() * r, None),
}


def test_every_optimizer_option_has_a_rule_test():
    assert set(_options("optimizer")) == set(RULES)


@pytest.mark.parametrize("option", sorted(RULES))
def test_first_update_matches_the_update_rule(option):
    w1, h = _steps(option, 1)
    first, second = RULES[option](h)
    assert torch.allclose(w1, first, atol=1e-6), (w1, first)
    if second is not None:
        w2, _ = _steps(option, 2)
        assert torch.allclose(w2, second, atol=1e-6), (w2, second)


# ---------------------------------------------------------------- schedules
def test_warmup_cosine_and_linear_match_their_formulas():
    cfg = compose(["scheduler=warmup_cosine", "scheduler.warmup_steps=10"])
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    from dlzoo.training.schedules import build_scheduler

    sched = build_scheduler(partial(cfg.scheduler, drop=("interval",)), opt, total_steps=110, interval="step")
    lrs = []
    for _ in range(111):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.05) and lrs[10] == pytest.approx(0.1)
    for s in (35, 60, 97):  # 0.1 * 0.5 * (1 + cos(pi * (s - 10) / 100))
        assert lrs[s] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * (s - 10) / 100)))
    assert lrs[110] == pytest.approx(0.0, abs=1e-12)
    assert warmup_factor(60, 10, 110, decay="linear") == pytest.approx(0.5)


def test_total_steps_come_from_the_trainer(project):
    """``total_steps: null`` (warmup, one-cycle) is filled with the run's optimizer steps, and the LR is logged
    per step."""
    from dlzoo.train import run

    import mlflow

    cfg = compose(["experiment=digits_mlp", "scheduler=onecycle", "trainer.max_epochs=1", "train.log_model=false",
                   "train.test=false", "trainer.log_every_n_steps=2", *FAST])
    info = run(cfg, project / "out", [])
    hist = mlflow.MlflowClient(info["tracking_uri"]).get_metric_history(info["run_id"], "lr-Adam")
    steps = sorted(m.step for m in hist)
    assert len(steps) >= 8 and steps[1] - steps[0] == 2  # every log_every_n_steps, not per epoch
    lrs = [m.value for m in sorted(hist, key=lambda m: m.step)]
    # one cycle over the run's 20 steps: up to max_lr (= optimizer.lr) by 30 %, then below the start
    assert lrs[0] < 0.5 * max(lrs) <= 0.5 * cfg.optimizer.lr and lrs[-1] < lrs[0]


# ---------------------------------------------------------------- regularizers
def _mlp():
    torch.manual_seed(0)
    return get_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[16], batchnorm=True)


def test_l1_and_l2_penalties_match_their_formulas_and_skip_biases_and_norms():
    net = _mlp()
    weights = [net.features[1].weight, net.head.weight]
    assert {id(p) for p in split_decay(net)[0]} == {id(w) for w in weights}
    l1 = sum(w.abs().sum() for w in weights)
    terms = weight_penalties(net, l1=1e-3, l2=1e-2)
    assert terms["l1_penalty"].item() == pytest.approx(1e-3 * l1.item(), rel=1e-5)
    assert terms["l2_penalty"].item() == pytest.approx(0.5e-2 * sum(w.pow(2).sum() for w in weights).item(), rel=1e-5)
    sum(terms.values()).backward()
    assert net.head.bias.grad is None and net.features[2].weight.grad is None  # bias, BatchNorm: no penalty


def test_l1_term_is_in_the_training_loss_and_grows_with_lambda():
    cfg0 = compose(["model=logreg"])
    x, y = torch.randn(8, 1, 32, 32), torch.randint(0, 10, (8,))
    losses = []
    for lam in (0.0, 1e-3, 1e-2):
        cfg = compose(["model=logreg", "regularizer=[l1]", f"regularizer.l1={lam}"]) if lam else cfg0
        torch.manual_seed(0)
        net = builders.build_network(cfg, (1, 32, 32), 10)
        task = builders.build_task(cfg, net, 10)
        losses.append(task.training_step((x, y), 0).item())  # no trainer: self.log() only warns
    data_loss = losses[0]
    penalty = [lo - data_loss for lo in losses]
    assert penalty[0] == 0 and 0 < penalty[1] < penalty[2]
    assert penalty[2] == pytest.approx(10 * penalty[1], rel=1e-4)  # linear in lambda


def test_gradient_clipping_bounds_the_norm(project):
    class Norms(pl.Callback):
        def __init__(self):
            self.raw, self.clipped = [], []

        @staticmethod
        def _norm(module):
            return torch.norm(torch.stack([p.grad.norm() for p in module.parameters() if p.grad is not None]))

        def on_after_backward(self, trainer, module):
            self.raw.append(float(self._norm(module)))

        def on_train_batch_end(self, trainer, module, *args):  # after the step: the clipped gradient
            self.clipped.append(float(self._norm(module)))

    cfg = compose(["experiment=digits_mlp", "regularizer=[clip_norm]", "trainer.gradient_clip_val=0.05"])
    dm = builders.build_datamodule(cfg)
    net = builders.build_network(cfg, dm.input_shape, dm.num_classes)
    norms = Norms()
    pl.Trainer(max_steps=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               gradient_clip_val=0.05, gradient_clip_algorithm="norm", callbacks=[norms],
               limit_val_batches=0).fit(builders.build_task(cfg, net, dm.num_classes), datamodule=dm)
    assert min(norms.raw) > 0.05  # clipping had something to do
    assert max(norms.clipped) <= 0.05 * (1 + 1e-4)


def test_label_smoothing_changes_the_target_distribution():
    cfg = compose(["model=logreg", "regularizer=[label_smoothing]"])
    task = builders.build_task(cfg, builders.build_network(cfg, (1, 32, 32), 10), 10)
    logits, y = torch.randn(6, 10), torch.randint(0, 10, (6,))
    target = soft_targets(y, 10, 0.1)
    assert target.sum(1).allclose(torch.ones(6)) and target.max().item() == pytest.approx(0.91)
    expected = -(target * logits.log_softmax(1)).sum(1).mean()
    assert task.loss_fn(logits, y).item() == pytest.approx(expected.item(), rel=1e-5)
    assert task.loss_fn(logits, y).item() != pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-3)


def test_dropconnect_drops_weights_in_training_only():
    torch.manual_seed(0)
    layer = DropConnectLinear(20, 30, p=0.5)
    x = torch.randn(4, 20)
    plain = nn.functional.linear(x, layer.weight, layer.bias)
    layer.eval()
    assert torch.equal(layer(x), plain)
    layer.train()
    outs = torch.stack([layer(x) for _ in range(2000)])
    assert not torch.allclose(outs[0], plain)
    assert torch.allclose(outs.mean(0), plain, atol=0.1)  # unbiased: kept weights scaled by 1/(1-p)


# ---------------------------------------------------------------- losses (001, lecture 2)
def test_regression_losses_match_their_formulas():
    pred, y = torch.tensor([[0.0], [1.0], [4.0]]), torch.tensor([0.5, 1.0, 0.0])
    err = (pred.squeeze(1) - y).abs()  # 0.5, 0, 4
    assert build_loss("mse", "regress")(pred, y).item() == pytest.approx((err ** 2).mean().item())
    assert build_loss("mae", "regress")(pred, y).item() == pytest.approx(err.mean().item())
    huber = torch.where(err <= 1.0, 0.5 * err ** 2, 1.0 * (err - 0.5)).mean()
    assert build_loss("huber", "regress", delta=1.0)(pred, y).item() == pytest.approx(huber.item())
    clipped = build_loss("clipped", "regress", base="mse", max_loss=4.0)
    assert clipped(pred, y).item() == pytest.approx(torch.clamp(err ** 2, max=4.0).mean().item())
    p = pred.clone().requires_grad_()
    clipped(p, y).backward()
    assert p.grad[2].item() == 0.0  # the clipped sample gives no gradient


def test_classification_losses():
    logits, y = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0])
    ce = nn.functional.cross_entropy(logits, y)
    assert build_loss("kl_div")(logits, y).item() == pytest.approx(ce.item(), rel=1e-5)  # one-hot: KL == CE
    bce = nn.functional.binary_cross_entropy_with_logits(logits, nn.functional.one_hot(y, 3).float(), reduction="sum") / 5
    assert build_loss("bce")(logits, y).item() == pytest.approx(bce.item(), rel=1e-5)
    w = [1.0, 2.0, 3.0]
    weighted = build_loss("weighted_cross_entropy", class_weights=w)(logits, y)
    per = nn.functional.cross_entropy(logits, y, reduction="none")
    assert weighted.item() == pytest.approx((per * torch.tensor(w)[y]).sum().item() / torch.tensor(w)[y].sum().item())


def test_a_loss_of_the_wrong_task_is_refused():
    from dlzoo.errors import ConfigError

    with pytest.raises(ConfigError, match="does not fit task=regress; choose one of: .*huber.*mse"):
        build_loss("cross_entropy", "regress")


# ---------------------------------------------------------------- activations (000 §2)
def test_activation_parameters_come_from_the_mapping_form():
    layer = act_layer({"name": "leaky_relu", "negative_slope": 0.2})()
    assert layer(torch.tensor([-1.0])).item() == pytest.approx(-0.2)
    assert isinstance(act_layer("prelu")(), nn.PReLU)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_every_activation_trains_a_step(name):
    torch.manual_seed(0)
    net = get_model("mlp", input_shape=(1, 8, 8), num_classes=10, hidden=[16], activation=name)
    assert any(isinstance(m, ACTIVATIONS[name]) for m in net.modules())
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


# ---------------------------------------------------------------- every option trains one real step
# (the optimizers take their steps in test_first_update_matches_the_update_rule, the activations below)
TRAIN_OPTIONS = (
    [("scheduler", o) for o in _options("scheduler")]
    + [("regularizer", o) for o in _options("regularizer") if o != "augment"]  # augment: tests/data/test_augment.py
    + [("loss", o) for o in _options("loss")]
)
REGRESS = ["experiment=diabetes_mlp"]
NEEDS = {("regularizer", "spatial_dropout"): ["data=mnist1d", "model=cnn1d"],
         ("regularizer", "variational_dropout"): ["data=mnist1d", "model=lstm", "model.num_layers=2"], **{("loss", o): REGRESS for o in ("mse", "mae", "huber", "smooth_l1")}}


@pytest.mark.parametrize("group,option", TRAIN_OPTIONS)
def test_every_option_trains_a_step(group, option, project):
    override = f"{group}=[{option}]" if group == "regularizer" else f"{group}={option}"
    cfg = compose([*NEEDS.get((group, option), ["model=mlp"]), override, "trainer.max_epochs=1"])
    dm = builders.build_datamodule(cfg)
    task = builders.build_task(cfg, builders.build_network(cfg, dm.input_shape, dm.num_classes), dm.num_classes)
    before = [p.detach().clone() for p in task.parameters()]
    trainer_kw = {k: cfg.trainer[k] for k in ("gradient_clip_val", "gradient_clip_algorithm")}
    pl.Trainer(max_steps=2, limit_val_batches=0, num_sanity_val_steps=0,  # 2 steps: warmup starts from lr 0 logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, **trainer_kw).fit(task, datamodule=dm)
    assert any(not torch.equal(b, p) for b, p in zip(before, task.parameters()))


def test_model_init_schemes_set_the_textbook_variances():
    from dlzoo.errors import ConfigError

    for scheme, var in (("kaiming", lambda fi, fo: 2 / fi), ("xavier", lambda fi, fo: 2 / (fi + fo))):
        cfg = compose(["experiment=digits_mlp", "model.hidden=[512,256]", f"model.init={scheme}"])
        net = builders.build_network(cfg, (1, 8, 8), 10)
        linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
        for m in linears:
            fo, fi = m.weight.shape
            assert m.weight.var().item() == pytest.approx(var(fi, fo), rel=0.1) and not m.bias.any()
    cfg = compose(["experiment=digits_mlp", "model.init=he"])
    with pytest.raises(ConfigError, match="model.init='he' is unknown; choose one of: xavier, kaiming"):
        builders.build_network(cfg, (1, 8, 8), 10)


def test_channels_last_stores_weights_and_batches_nhwc_and_trains_the_same_net(project):
    """``train.channels_last``: the conv weights and the image batches in NHWC; the same arithmetic up to the
    kernels' summation order, so a few steps land where the default memory format lands."""
    from dlzoo.train import build, run

    common = ["experiment=digits_lenet5", "trainer.max_epochs=1", "trainer.limit_train_batches=6",
              "train.test=false", "train.log_model=false", "runtime.threads=1", *FAST]
    job = build(compose([*common, "train.channels_last=true"]), project / "built")
    convs = [m.weight for m in job.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert any(not w.is_contiguous() for w in convs)  # (with one input channel both layouts coincide)
    x, y = next(iter(job.dm.train_dataloader()))
    assert job.dm.on_after_batch_transfer((x, y), 0)[0].is_contiguous(memory_format=torch.channels_last)
    weights = []
    for flag in ("false", "true"):
        info = run(compose([*common, f"train.channels_last={flag}"]), project / f"cl-{flag}", [])
        weights.append(torch.load(info["last_ckpt"], weights_only=False)["state_dict"])
    assert all(torch.allclose(weights[0][k], weights[1][k], atol=1e-4) for k in weights[0])
    trained = [weights[1][k] for k in weights[1] if k.startswith("net.") and weights[1][k].dim() == 4]
    assert trained and all(w.is_contiguous(memory_format=torch.channels_last) for w in trained)  # kept NHWC
    assert any(not w.is_contiguous() for w in trained)
