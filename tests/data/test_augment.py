"""Data augmentation: each transform does what its torchvision namesake does, on training batches only."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from conftest import compose
from dlzoo.config import validate
from dlzoo.data.augment import Augment, color_jitter, random_affine, random_crop, random_hflip
from dlzoo.errors import ConfigError


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_random_crop_is_a_window_of_the_zero_padded_image():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6) + 1  # no zeros inside
    out = random_crop(x.repeat(16, 1, 1, 1), padding=2, generator=_gen())
    assert out.shape == (32, 3, 6, 6)
    padded = torch.nn.functional.pad(x.repeat(16, 1, 1, 1), (2,) * 4)
    shifted = 0
    for i in range(32):
        windows = [(r, c) for r in range(5) for c in range(5) if torch.equal(padded[i, :, r:r + 6, c:c + 6], out[i])]
        assert windows, f"sample {i} is not a crop of its padded image"
        shifted += windows[0] != (2, 2)
    assert shifted > 16  # most samples moved, and what came in at the border is zero fill
    assert (out == 0).any()


def test_random_affine_rotates_about_the_centre():
    x = torch.zeros(64, 1, 17, 17)
    x[:, :, 8, 12] = 1.0  # a dot 4 px right of the centre
    out = random_affine(x, degrees=60, generator=_gen())
    ys, xs = torch.meshgrid(torch.arange(17.0), torch.arange(17.0), indexing="ij")
    mass = out.sum(dim=(1, 2, 3))
    cy, cx = (out[:, 0] * ys).sum((1, 2)) / mass, (out[:, 0] * xs).sum((1, 2)) / mass
    radius = torch.sqrt((cy - 8) ** 2 + (cx - 8) ** 2)
    angle = torch.rad2deg(torch.atan2(cy - 8, cx - 8))
    assert torch.allclose(radius, torch.full_like(radius, 4.0), atol=0.3)  # stays on its circle
    assert angle.abs().max() <= 61 and angle.std() > 15  # turned by different angles within the range
    assert torch.equal(random_affine(x, 0, 0, 0), x)


def test_hflip_mirrors_about_half_of_the_samples():
    x = torch.randn(200, 1, 4, 4)
    out = random_hflip(x, _gen())
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and 60 < int(mirrored.sum()) < 140


def test_colour_jitter_factors_stay_in_range_and_saturation_keeps_grey():
    x = torch.rand(50, 3, 4, 4) + 0.5
    out = color_jitter(x, brightness=0.2, generator=_gen())
    ratio = out / x
    assert torch.allclose(ratio, ratio[:, :1, :1, :1].expand_as(ratio))  # one factor per image
    assert ratio.min() >= 0.8 - 1e-6 and ratio.max() <= 1.2 + 1e-6 and ratio.std() > 0.05
    grey = torch.rand(10, 1, 4, 4).expand(10, 3, 4, 4)
    assert torch.allclose(color_jitter(grey, saturation=0.5, generator=_gen()), grey, atol=1e-6)
    contrast = color_jitter(x, contrast=0.5, generator=_gen())
    assert torch.allclose(contrast.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)  # about the mean


def test_gaussian_noise_has_the_configured_std():
    x = torch.zeros(100, 1, 8, 8)
    out = Augment(noise=0.3)(x, _gen())
    assert out.std().item() == pytest.approx(0.3, rel=0.05)


@pytest.mark.parametrize("cfg,dataset,shape,match", [
    ({"hflip": True}, "digits", (1, 8, 8), "mirrored digit"),
    ({"saturation": 0.2}, "mnist", (1, 28, 28), "RGB"),
    ({"rotation": 10.0}, "mnist1d", (1, 40), "applies to images"),
])
def test_transforms_that_do_not_fit_the_data_are_refused(cfg, dataset, shape, match):
    with pytest.raises(ConfigError, match=match):
        Augment.from_config(cfg).check(dataset, shape)
    Augment.from_config({"hflip": True, "saturation": 0.2}).check("cifar10", (3, 32, 32))  # fine for RGB photos


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="crop_padding"):
        Augment.from_config({"cutout": 4})


def test_config_composes_and_bad_values_are_refused():
    cfg = compose(["regularizer=[augment]", "regularizer.augment.rotation=10", "regularizer.augment.crop_padding=2"])
    validate(cfg)
    assert Augment.from_config(cfg.regularizer.augment) == Augment(translate=0.125, crop_padding=2, rotation=10.0)
    with pytest.raises(ConfigError, match="regularizer.augment.rotation"):
        validate(compose(["regularizer=[augment]", "regularizer.augment.rotation=400"]))


def test_only_training_batches_are_augmented(project):
    from dlzoo import builders

    cfg = compose(["regularizer=[augment]", "regularizer.augment.noise=0.5", "model=resnet18"])
    dm = builders.build_datamodule(cfg)
    dm.setup()
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False)
    dm.trainer = trainer
    batch = next(iter(dm.train_dataloader()))
    trainer.training = True
    x_train, _ = dm.on_after_batch_transfer(batch, 0)
    assert not torch.equal(x_train, batch[0])
    for state in ("validating", "testing"):
        setattr(trainer, state, True)
        x_eval, _ = dm.on_after_batch_transfer(batch, 0)
        assert torch.equal(x_eval, batch[0]), state
