"""Device handling without a GPU: the code paths that run on an accelerator are checked for what breaks
there (host copies of device tensors, CPU generators for device tensors, a hard-coded CPU Trainer), and the
accelerator presets are checked against this machine before any data is built."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch
from conftest import FAST, run_cli
from omegaconf import OmegaConf
from torch.overrides import TorchFunctionMode

from dlzoo.errors import ConfigError

HOST_COPIES = {"numpy", "item", "tolist", "cpu"}


class DeviceStrict(TorchFunctionMode):
    """What a CUDA tensor refuses or pays for, made to fail on the CPU: copies to the host (``.numpy()``,
    ``.item()``, ``.tolist()``, ``.cpu()``) and a generator on another device than the tensor it fills."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in HOST_COPIES:
            raise AssertionError(f"host copy of a device tensor: Tensor.{name}()")
        gen, dev = kwargs.get("generator"), kwargs.get("device")
        if gen is not None and dev is not None and torch.device(dev).type != gen.device.type:
            raise AssertionError(f"{name}: a {gen.device.type} generator for a {torch.device(dev).type} tensor")
        return func(*args, **kwargs)


def _boxes(n: int = 30, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 20
    wh = torch.rand(n, 2, generator=g) * 8 + 1
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=g)


def test_nms_stays_on_the_device_and_keeps_the_same_boxes():
    from dlzoo.models.boxes import nms, select_detections
    from conftest import nms_brute_force

    boxes, scores = _boxes()
    for thr in (0.1, 0.3, 0.5, 0.7):
        with DeviceStrict():
            keep = nms(boxes, scores, thr)
        assert keep.tolist() == nms_brute_force(boxes.tolist(), scores.tolist(), thr)
    class_scores = torch.rand(2, len(boxes), 3, generator=torch.Generator().manual_seed(1))
    with DeviceStrict():
        dets = select_detections(torch.stack([boxes, boxes]), class_scores, 0.2, 0.5)
    assert len(dets) == 2 and all(len(d["boxes"]) == len(d["scores"]) == len(d["labels"]) > 0 for d in dets)


def test_nms_handles_no_boxes_and_one_box():
    from dlzoo.models.boxes import batched_nms, nms

    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).tolist() == []
    assert nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([0.3]), 0.5).tolist() == [0]
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).tolist() == []


@pytest.mark.parametrize("kind", ["vae", "cvae", "gan"])
def test_sampling_with_a_seeded_cpu_generator_works_for_a_network_on_another_device(kind):
    from dlzoo.models.generative import GAN, VAE

    net = (GAN((1, 8, 8), [16], 4) if kind == "gan"
           else VAE((1, 8, 8), 10, [16], 4, conditional=kind == "cvae"))
    y = torch.arange(10) if kind == "cvae" else None
    args = (10, y) if kind != "gan" else (10,)
    reference = net.sample(*args, generator=torch.Generator().manual_seed(0))
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    net.to("meta")  # weights on a non-CPU device (no storage: shapes and devices only)
    with DeviceStrict():
        out = net.sample(*((10, y.to("meta")) if kind == "cvae" else args), generator=torch.Generator().manual_seed(0))
    assert out.device.type == "meta" and out.shape == reference.shape
    # a CPU generator draws the same codes whatever the network's device: samples are comparable across devices
    net.to_empty(device="cpu")
    net.load_state_dict(weights)
    torch.manual_seed(123)  # the global RNG plays no part
    assert torch.equal(net.sample(*args, generator=torch.Generator().manual_seed(0)), reference)


def test_single_device_trainer_takes_the_configured_accelerator_and_precision():
    from dlzoo.training.accelerators import single_device_trainer

    trainer = single_device_trainer(OmegaConf.create({"accelerator": "cpu", "devices": 4, "precision": "bf16-mixed"}),
                                    max_epochs=3)
    assert trainer.precision == "bf16-mixed" and trainer.num_devices == 1 and trainer.max_epochs == 3
    assert type(trainer.accelerator).__name__ == "CPUAccelerator" and trainer.logger is None
    with pytest.raises(ConfigError, match="trainer=cpu"):
        single_device_trainer(OmegaConf.create({"accelerator": "gpu", "devices": 1}))


def test_check_trainer_names_the_problem_and_trainer_cpu(monkeypatch):
    from dlzoo.training.accelerators import check_trainer, requested

    check_trainer(OmegaConf.create({"accelerator": "cpu", "devices": 64}))  # CPU processes: any number
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ConfigError, match=r"^trainer.accelerator=gpu: this machine has no CUDA GPU .*trainer=cpu$"):
        check_trainer(OmegaConf.create({"accelerator": "gpu", "devices": 1}))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # a two-GPU machine, as torch reports it
    check_trainer(OmegaConf.create({"accelerator": "gpu", "devices": 2}))
    check_trainer(OmegaConf.create({"accelerator": "cuda", "devices": "auto"}))
    with pytest.raises(ConfigError, match=r"trainer.devices=4: this machine has 2 CUDA GPU\(s\); use "
                                          r"trainer.devices=2 \(or fewer\), or trainer=cpu"):
        check_trainer(OmegaConf.create({"accelerator": "gpu", "devices": 4}))
    with pytest.raises(ConfigError, match="trainer.devices"):
        check_trainer(OmegaConf.create({"accelerator": "gpu", "devices": [0, 1, 2]}))
    assert requested("0,1", 2) == 2 and requested(-1, 3) == 3 and requested("3", 8) == 3
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no Apple MPS device.*trainer=cpu"):
        check_trainer(OmegaConf.create({"accelerator": "mps", "devices": 1}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("preset", ["gpu", "ddp"])
def test_gpu_preset_without_a_gpu_fails_in_one_line_before_any_data(project, preset):
    (project / "artifacts" / "splits").unlink()  # building data would fail with another message
    r = run_cli(["-m", "dlzoo.train", f"trainer={preset}", "output_dir=out", *FAST], project)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: trainer.accelerator=gpu: this machine has no CUDA GPU")
    assert "trainer=cpu" in r.stderr and "Traceback" not in r.stderr
    assert not (project / "mlflow.db").exists() and not (project / "out").exists()


@pytest.mark.parametrize("experiment", ["digits_lenet5", "seq2seq_transformer", "digits_yolo"])
def test_datamodules_pin_memory_for_a_cuda_accelerator_only(project, experiment):
    from conftest import compose

    from dlzoo import builders

    for accelerator, pinned in (("cpu", False), ("gpu", True)):
        dm = builders.build_datamodule(compose([f"experiment={experiment}", f"trainer.accelerator={accelerator}"]))
        dm.setup()
        assert [dm.train_dataloader().pin_memory, dm.test_dataloader().pin_memory] == [pinned, pinned]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, splits_dir):
    """A tiny trained LeNet-5 run folder (one epoch on a few batches) in its own project."""
    import shutil

    from conftest import ROOT

    proj = tmp_path_factory.mktemp("proj")
    shutil.copytree(ROOT / "conf", proj / "conf")
    (proj / "artifacts").mkdir()
    (proj / "artifacts" / "splits").symlink_to(splits_dir)
    r = run_cli(["-m", "dlzoo.train", "experiment=digits_lenet5", "trainer.max_epochs=1",
                 "trainer.limit_train_batches=2", "train.log_model=false", "output_dir=run", *FAST], proj)
    assert r.returncode == 0, r.stderr[-2000:]
    return proj


def test_evaluation_and_finetunes_use_the_runs_accelerator(trained_run, monkeypatch):
    """A run configured for a GPU is evaluated (and fine-tuned) on a GPU, not silently on the CPU: on this
    machine without one that is the one-line error; the same run configured for the CPU evaluates."""
    monkeypatch.chdir(trained_run)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{trained_run}/mlflow.db")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    config = trained_run / "run" / "config.yaml"
    cpu = config.read_text()
    config.write_text(cpu.replace("accelerator: cpu", "accelerator: gpu"))
    from dlzoo.compress.source import finetune, load_compression_source
    from dlzoo.evaluate import evaluate

    with pytest.raises(ConfigError, match="trainer=cpu"):
        evaluate(trained_run / "run", trained_run / "eval", register=False)
    src = load_compression_source(trained_run / "run")
    with pytest.raises(ConfigError, match="trainer=cpu"):
        finetune(src, src.net, 1, 1e-3)
    config.write_text(cpu.replace("precision: 32-true", "precision: bf16-mixed"))
    summary = evaluate(trained_run / "run", trained_run / "eval", register=False)
    assert 0 <= summary["test/acc"] <= 1
    rows = (trained_run / "eval" / "predictions.csv").read_text().splitlines()
    assert rows[0] == "actual,predicted" and len(rows) == 1 + 360 and rows[1].split(",")[1].isdigit()
    assert json.loads((trained_run / "run" / "run_info.json").read_text())["run_id"] == summary["run_id"]


def test_presets_one_gpu_all_gpus_of_a_node_and_mps(project, monkeypatch):
    from conftest import compose

    from dlzoo.training.accelerators import check_trainer, requested

    gpu, ddp, mps = (compose([f"trainer={p}"]).trainer for p in ("gpu", "ddp", "mps"))
    assert (gpu.accelerator, gpu.devices, gpu.strategy) == ("gpu", 1, "auto")
    assert (ddp.accelerator, ddp.devices, ddp.strategy, ddp.sync_batchnorm) == ("gpu", "auto", "ddp", True)
    assert (mps.accelerator, mps.devices, mps.precision) == ("mps", 1, "32-true")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)  # a four-GPU node, as torch reports it
    check_trainer(ddp)
    assert requested(ddp.devices, 4) == 4
    nodes = compose(["trainer=ddp", "trainer.num_nodes=3"]).trainer
    assert nodes.num_nodes == 3 and nodes.devices == "auto"


def test_trainer_preset_reaches_the_composed_config_of_a_stage(project):
    """`make run TRAINER=...` exports DLZOO_TRAINER; the configure stages compose it into each stage's config."""
    import yaml
    from conftest import ROOT

    cmd = ["-m", "dlzoo.configure", "--job"]
    configs = {}
    for name, env in (("default", {}), ("cpu", {"DLZOO_TRAINER": "cpu"}), ("ddp_cpu", {"DLZOO_TRAINER": "ddp_cpu"}),
                      ("explicit", {"DLZOO_TRAINER": "ddp_cpu"})):
        extra = ["trainer=cpu"] if name == "explicit" else []
        r = run_cli([*cmd, "--out", f"{name}.yaml", "experiment=digits_mlp", *extra], project, env=env)
        assert r.returncode == 0, r.stderr
        configs[name] = yaml.safe_load((project / f"{name}.yaml").read_text())
    assert configs["cpu"] == configs["default"] == configs["explicit"]  # the CPU figures stay as they are
    assert (configs["ddp_cpu"]["trainer"]["strategy"], configs["ddp_cpu"]["trainer"]["devices"]) == ("ddp", 2)
    assert configs["ddp_cpu"]["model"] == configs["default"]["model"]
    r = run_cli([*cmd, "--out", "bad.yaml", "experiment=digits_mlp"], project, env={"DLZOO_TRAINER": "gpux"})
    assert r.returncode != 0 and "gpux" in r.stderr and "ddp_cpu" in r.stderr  # Hydra lists the presets
    make = subprocess.run(["make", "-s", "-C", str(ROOT), "--eval", "show-trainer: ; @echo $$DLZOO_TRAINER",
                           "show-trainer", "TRAINER=gpu"], capture_output=True, text=True)
    assert make.stdout.strip() == "gpu", make.stderr


def test_trainer_preset_reaches_the_comparisons_and_claims(monkeypatch):
    """`make run TRAINER=gpu` / `make claims TRAINER=gpu`: the comparisons and claims compose their variants from
    base_overrides, which adds the preset unless the spec chooses a trainer itself."""
    from dlzoo.compare import base_overrides
    from dlzoo.configure import compose

    spec = {"base": ["experiment=digits_mlp", "trainer.max_epochs=1"]}
    monkeypatch.delenv("DLZOO_TRAINER", raising=False)
    assert not any(o.startswith("trainer=") for o in base_overrides(spec))
    monkeypatch.setenv("DLZOO_TRAINER", "ddp_cpu")
    cfg = compose([*base_overrides(spec), "model=lenet5"])
    assert (cfg.trainer.strategy, cfg.trainer.max_epochs) == ("ddp", 1)
    chosen = base_overrides({"base": ["trainer=cpu", "experiment=digits_mlp"]})
    assert [o for o in chosen if o.startswith("trainer=")] == ["trainer=cpu"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_make_run_checks_the_trainer_preset_first(project):
    r = run_cli(["-m", "dlzoo.accelerators", "gpu"], project)
    assert r.returncode == 2 and r.stderr.strip() == ("error: trainer.accelerator=gpu: this machine has no CUDA GPU "
                                                      "(torch sees none); train on the CPU with trainer=cpu")
    assert run_cli(["-m", "dlzoo.accelerators", "ddp_cpu"], project).returncode == 0
    r = run_cli(["-m", "dlzoo.accelerators", "gpux"], project)
    assert r.returncode == 2 and "mps" in r.stderr
