"""Turn a composed config into the objects of one job: datamodule, network, task, callbacks.

Only entry points call these; the objects below them take plain arguments and never see the config tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from dlzoo.paths import bind, paths_of

# Model-config keys that describe the input the model needs rather than builder arguments.
INPUT_KEYS = ("name", "image_size", "aux_weight")
# Model-config keys applied after the network is built: `init` re-initialises every Linear/Conv weight
# (models.layers.INIT_SCHEMES; absent or null = each layer's PyTorch default).
POST_KEYS = ("init",)
# Regularizer keys that are model options: they override the model config's value (a model without the
# option refuses it, naming it).
MODEL_REGULARIZERS = ("dropout", "dropconnect", "spatial_dropout", "batchnorm", "layernorm", "variational_dropout")


def model_kwargs(cfg: DictConfig) -> dict[str, Any]:
    kwargs = {k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if k not in INPUT_KEYS + POST_KEYS}
    reg = cfg.get("regularizer") or {}
    kwargs.update({k: reg[k] for k in MODEL_REGULARIZERS if reg.get(k) is not None})
    return kwargs


def build_datamodule(cfg: DictConfig):
    from dlzoo.training.accelerators import pin_memory

    dm = _datamodule(cfg)
    dm.pin_memory = pin_memory(cfg.get("trainer") or {})
    return dm


def _datamodule(cfg: DictConfig):
    from dlzoo.data.datamodule import ArrayDataModule
    from dlzoo.data.regression import RegressionDataModule

    kind = task_class(cfg).datamodule
    _check_data_kind(cfg, kind)
    splits = splits_dir(cfg)
    if kind == "seq2seq":
        from dlzoo.data.seq2seq import Seq2SeqDataModule

        return Seq2SeqDataModule(cfg.data.name, splits, cfg.data.batch_size, cfg.seed,
                                 generate=OmegaConf.to_container(cfg.data.generate) if cfg.data.get("generate") else None)
    if kind == "detection":
        from dlzoo.data.detection import DetectionDataModule

        return DetectionDataModule(cfg.data.name, splits, cfg.data.batch_size, cfg.seed,
                                   fresh_canvases=cfg.data.get("fresh_canvases", False))
    image_size = cfg.model.get("image_size") or cfg.data.get("image_size")
    reg = cfg.get("regularizer") or {}
    cls = RegressionDataModule if kind == "regression" else ArrayDataModule
    return cls(cfg.data.name, splits, batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers,
               image_size=image_size, seed=cfg.seed, standardize=cfg.data.get("standardize", True),
               augment=reg.get("augment"), **_train_samples(cfg))


# datamodule kinds that only their own kind of data fits (data.kind says which a dataset is)
_OWN_DATA = ("seq2seq", "detection")


def _check_data_kind(cfg: DictConfig, kind: str) -> None:
    """Sequence pairs and detection canvases fit only the task made for them, and those tasks nothing else."""
    data_kind = cfg.data.get("kind")
    if data_kind == kind or (kind not in _OWN_DATA and data_kind not in _OWN_DATA):
        return
    from dlzoo.errors import ConfigError

    if kind in _OWN_DATA:
        raise ConfigError(f"task={cfg.task} trains on {kind} data and data={cfg.data.name} is "
                          f"{data_kind or 'not'} data (data.kind): choose a dataset whose data.kind is {kind}")
    owner = {"seq2seq": "seq2seq", "detection": "detect"}[data_kind]
    raise ConfigError(f"data={cfg.data.name} is {data_kind} data (data.kind), which task={cfg.task} cannot "
                      f"train on: use task={owner}")


def splits_dir(cfg: DictConfig) -> Path:
    """The prepared splits (`dvc repro prepare`): ``paths.splits`` of the bound config (``dlzoo.paths.bind``)."""
    return paths_of(cfg)[1]


def _train_samples(cfg: DictConfig) -> dict:
    """``data.train_samples`` (absent or null: the whole training split), for the datasets that take it."""
    n = cfg.data.get("train_samples")
    return {"train_samples": n} if n else {}


def build_network(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int):
    from dlzoo.models import get_model
    from dlzoo.models.layers import init_weights

    net = get_model(cfg.model.name, input_shape=input_shape, num_classes=num_classes, **model_kwargs(cfg))
    if cfg.model.get("init"):
        init_weights(net, cfg.model.init)
    return net


def load_trained_network(run_dir, root: Path | None = None):
    """(run_info, config, datamodule set up, network with the run's best weights in eval mode) of a training
    run folder: a distillation teacher here, a compression source in dlzoo.compress.source. Its config is bound
    to the project at ``root`` (default: the one the command runs in)."""
    from dlzoo.tracking import runs

    run_dir = Path(run_dir)
    info = runs.load_run(run_dir)
    cfg = bind(runs.load_config(run_dir), root)
    ckpt = runs.checkpoint(info, run_dir)
    dm = build_datamodule(cfg)
    dm.setup()
    net = build_network(cfg, dm.input_shape, dm.num_classes)
    net.load_state_dict(runs.net_state(ckpt))
    return info, cfg, dm, net.eval()


def task_class(cfg: DictConfig) -> type:
    """The task class of ``cfg.task`` (``dlzoo.tasks.registry``; classify where the config has none)."""
    from dlzoo.tasks.registry import get_task

    return get_task(cfg.get("task") or "classify")


def build_task(cfg: DictConfig, net, num_classes: int):
    from dlzoo.tasks.base import BuildContext

    root, splits = paths_of(cfg)
    context = BuildContext(splits_dir=splits, load_network=lambda run_dir: load_trained_network(run_dir, root)[3])
    return task_class(cfg).from_config(cfg, net, num_classes, context)


def build_callbacks(cfg: DictConfig, ckpt_dir: Path) -> list:
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint

    from dlzoo.training.guards import FiniteLossGuard
    from dlzoo.training.history import SaveOnException

    callbacks = []
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        cb = instantiate(node)
        if isinstance(cb, ModelCheckpoint):
            cb.dirpath = str(ckpt_dir)
        callbacks.append(cb)
    # An interrupted or crashing run leaves its state behind (checkpoints/on_exception.ckpt).
    callbacks.append(SaveOnException(ckpt_dir))
    callbacks.append(FiniteLossGuard())
    return callbacks


def build_profiler(name: str | None, dirpath: Path):
    """Lightning's profiler named by ``trainer.profiler`` (simple / advanced / pytorch), writing its report to
    ``dirpath/<stage>-profile.txt``. Given the bare name, Lightning would write next to the logger's log_dir,
    which the MLflow logger does not have, and only print the report."""
    if not name:
        return None
    from lightning.pytorch import profilers

    classes = {"simple": profilers.SimpleProfiler, "advanced": profilers.AdvancedProfiler,
               "pytorch": profilers.PyTorchProfiler}
    return classes[name](dirpath=str(dirpath), filename="profile")


def count_parameters(net) -> int:
    return sum(p.numel() for p in net.parameters())


def example_input(cfg: DictConfig, net, input_shape: tuple[int, ...], dtype=None) -> tuple:
    """The positional arguments of one forward pass of ``net`` on one sample, as the config's task feeds it;
    floating inputs in ``dtype`` where given (the weights' dtype under a "-true" precision)."""
    example = task_class(cfg).example_input(net, input_shape)
    return tuple(t.to(dtype) if dtype is not None and t.is_floating_point() else t for t in example)


def count_flops(net, example: tuple) -> int:
    """Floating-point operations of one inference forward pass on ``example`` (the positional arguments of one
    sample, ``example_input``) (eval mode, so GoogLeNet's
    auxiliary heads are left out), counted by torch.utils.flop_counter: 2 per multiply-add of convolutions
    and matrix products; elementwise ops (activations, norms, pooling) are not counted."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(*example)
    finally:
        net.train(was_training)
    return int(counter.get_total_flops())
