"""Sample quality of a generative run, scored by a classifier run of the pipeline (DVC stage `sample_quality`).

    python -m dlzoo.sample_quality artifacts/runs/digits_cvae --classifier artifacts/runs/digits_lenet5 \\
        --metrics metrics/samples/digits_cvae.json --out-dir artifacts/eval/digits_cvae/samples

The generator draws ``per_label`` mean images from its prior (per requested label for a CVAE). Measured:
``samples/acc`` the share the classifier assigns to the requested label (CVAE only), and ``samples/fd`` the
Fréchet distance between the test digits and the samples in the classifier's feature space (the input of
its last linear layer, as FID uses Inception's last pooling layer). Two references put FD on a scale:
``samples/fd_val`` (real validation digits: what a perfect sampler scores) and ``samples/fd_collapsed``
(a collapsed sampler drawing the average training digit of each label). The figures go to the generative
run's MLflow run; ``samples.csv`` (requested vs classified label) is a DVC confusion plot.

FD is torchmetrics' ``FrechetInceptionDistance`` given the classifier as a custom feature extractor (an
``nn.Module`` with ``num_features``): its default Inception-v3 needs torch-fidelity and downloaded weights.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch
from torch import nn

from dlzoo.errors import DlzooError
from dlzoo.paths import report_json


class ClassifierFeatures(nn.Module):
    """A trained classifier seen from generated images: images in [0, 1] at the generator's resolution go
    through the classifier's own input pipeline (resize, standardisation with its training statistics) and
    the network; ``forward`` returns the input of the last ``nn.Linear`` (the penultimate features) and
    keeps the logits in ``self.logits``."""

    def __init__(self, net: nn.Module, image_size: int | None, stats: tuple[float, float]):
        super().__init__()
        self.net, self.image_size, self.stats = net.eval(), image_size, stats
        last = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
        self.num_features = last.in_features  # read by torchmetrics' FID
        self._features: torch.Tensor | None = None
        last.register_forward_hook(lambda module, inputs, output: setattr(self, "_features", inputs[0]))
        self.logits: torch.Tensor | None = None

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """The datamodule's preprocessing (dlzoo.data.datamodule): resize, then standardise."""
        if self.image_size and x.shape[-1] != self.image_size:
            x = nn.functional.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", align_corners=False)
        return (x - self.stats[0]) / self.stats[1]

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.logits = self.net(self.prepare(x.float()))  # (B, classes)
        return self._features.flatten(1)  # (B, num_features)


def load_classifier(run_dir: Path) -> ClassifierFeatures:
    from dlzoo.evaluate import load_task

    _, cfg, dm, task = load_task(run_dir)
    return ClassifierFeatures(task.net, dm.image_size, dm.stats)


def frechet_distance(features: ClassifierFeatures, real: torch.Tensor, fake: torch.Tensor) -> float:
    """FD between two image sets (N, C, H, W) in [0, 1] in the classifier's feature space."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=features, normalize=True)
    fid.update(real, real=True)
    fid.update(fake, real=False)
    return float(fid.compute())


def collapsed_samples(x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A collapsed sampler: for each requested label, the average training image of that label."""
    means = torch.stack([x[y == c].mean(0) for c in range(int(y.max()) + 1)])  # (classes, C, H, W)
    return means[labels]


def score(features: ClassifierFeatures, samples: torch.Tensor, labels: torch.Tensor | None, real: torch.Tensor) -> dict:
    """``acc`` (if labels are given: share classified as requested, and per label) and ``fd`` of ``samples``."""
    out: dict = {"fd": frechet_distance(features, real, samples)}
    if labels is not None:
        features(samples)
        hit = (features.logits.argmax(1) == labels).float()
        out["acc"] = float(hit.mean())
        out["acc_per_label"] = {int(c): float(hit[labels == c].mean()) for c in labels.unique()}
    return out


def sample_quality(run_dir: Path, classifier_dir: Path, out_dir: Path, per_label: int = 100, seed: int = 0) -> dict:
    import mlflow

    from dlzoo.evaluate import load_task
    from dlzoo.tasks.generative import image_grid

    info, cfg, dm, task = load_task(run_dir)
    features = load_classifier(classifier_dir)
    real = dm.datasets["test"].tensors[0]  # (N, 1, 8, 8) in [0, 1] (autoencode runs: data.standardize=false)
    x_tr, y_tr = dm.datasets["train"].tensors
    from dlzoo.training.accelerators import device

    net = task.net.to(device(cfg.trainer))  # sampling on the run's accelerator; scoring on the CPU
    labels = torch.arange(dm.num_classes).repeat_interleave(per_label) if net.conditional else None
    g = torch.Generator().manual_seed(seed)
    to_net = labels.to(net.to_mu.weight.device) if labels is not None else None
    samples = net.sample(dm.num_classes * per_label, to_net, generator=g).float().cpu()  # (N, 1, 8, 8) mean images
    result = {f"samples/{k}": v for k, v in score(features, samples, labels, real).items()}
    result["samples/fd_val"] = frechet_distance(features, real, dm.datasets["val"].tensors[0])
    request = labels if labels is not None else torch.arange(dm.num_classes).repeat_interleave(per_label)
    result["samples/fd_collapsed"] = frechet_distance(features, real, collapsed_samples(x_tr, y_tr, request))
    result |= {"samples/count": len(samples), "classifier": str(classifier_dir)}

    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "samples.csv"
    features(samples)
    with csv_path.open("w", newline="") as f:  # requested -1: an unconditional sampler
        w = csv.writer(f)
        w.writerow(["requested", "classified"])
        w.writerows(zip((labels if labels is not None else torch.full((len(samples),), -1)).tolist(),
                        features.logits.argmax(1).tolist()))
    from dlzoo.report.plots import _plt, save

    fig, ax = _plt().subplots(figsize=(5, 5.4))
    ax.imshow(image_grid(samples[:: max(1, per_label // 10)].numpy(), dm.num_classes), cmap="gray")
    ax.set_axis_off()
    ax.set_title(f"samples (acc {result.get('samples/acc', float('nan')):.3f}, FD {result['samples/fd']:.2f})")
    grid = save(fig, out_dir / "samples.png")
    mlflow.set_tracking_uri(info["tracking_uri"])
    with mlflow.start_run(run_id=info["run_id"]):
        mlflow.log_metrics({k: v for k, v in result.items() if isinstance(v, float)})
        mlflow.log_artifact(str(grid), "plots")
        mlflow.log_artifact(str(csv_path))
    return {"name": cfg.get("name") or run_dir.name, "run_id": info["run_id"], "model": cfg.model.name, **result}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path, help="a generative training run (task=autoencode)")
    ap.add_argument("--classifier", type=Path, required=True, help="a classifier run on the same dataset")
    ap.add_argument("--metrics", type=Path, default=None, help="write the metrics JSON here")
    ap.add_argument("--out-dir", type=Path, required=True, help="folder for samples.csv and samples.png")
    ap.add_argument("--per-label", type=int, default=100, help="samples drawn per label")
    args = ap.parse_args(argv)
    from dlzoo.console import quiet

    quiet()
    try:
        result = sample_quality(args.run_dir, args.classifier, args.out_dir, args.per_label)
    except DlzooError as exc:
        sys.exit(f"error: {exc}")
    report_json(result, args.metrics)


if __name__ == "__main__":
    main()
