"""Data augmentation applied to training batches after they reach their device (the datamodule calls it
on the training split only; validation and test batches are never touched).

The transforms follow torchvision's (``RandomCrop(padding=...)``, ``RandomAffine``, ``RandomHorizontalFlip``,
``ColorJitter``) plus additive Gaussian noise; torchvision itself does not install beside this torch build,
and here they run on whole batches -- one ``grid_sample`` or one gather per batch, not a Python loop per
sample. Inputs are shifted so that 0 is the background before the geometric transforms (the datamodule
passes ``x - fill``), so zero fill means "background". Order: crop -> affine -> flip -> jitter -> noise.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from dlzoo.errors import ConfigError


def random_translate(x: torch.Tensor, translate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each sample by up to ``translate`` x its size along every spatial axis (integer pixels, zero fill)."""
    if translate <= 0:
        return x
    b = x.shape[0]
    if x.ndim == 4:  # (B, C, H, W): integer-pixel shifts through an affine grid, nearest sampling
        h, w = x.shape[-2:]
        max_px = torch.tensor([round(translate * w), round(translate * h)], dtype=x.dtype)
        shift = torch.round((torch.rand(b, 2, generator=generator) * 2 - 1) * max_px)  # pixels (dx, dy)
        theta = torch.zeros(b, 2, 3, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, 0, 2] = -2 * shift[:, 0] / w
        theta[:, 1, 2] = -2 * shift[:, 1] / h
        grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if x.ndim == 3:  # (B, C, L): shift along L with zero fill
        length = x.shape[-1]
        k = max(1, round(translate * length))
        shift = torch.randint(-k, k + 1, (b, 1, 1), generator=generator).to(x.device)
        idx = torch.arange(length, device=x.device).view(1, 1, -1) - shift  # source position per output position
        valid = (idx >= 0) & (idx < length)
        out = torch.gather(x, 2, idx.clamp(0, length - 1).expand(-1, x.shape[1], -1))
        return out * valid
    return x


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by ``padding`` pixels and cut a random window of the original size (RandomCrop(padding=p))."""
    if padding <= 0:
        return x
    b, c, h, w = x.shape
    xp = F.pad(x, (padding,) * 4)  # (B, C, H + 2p, W + 2p)
    off = torch.randint(0, 2 * padding + 1, (b, 2), generator=generator).to(x.device)  # (top, left) per sample
    rows = (off[:, 0:1] + torch.arange(h, device=x.device))[:, :, None]  # (B, H, 1)
    cols = (off[:, 1:2] + torch.arange(w, device=x.device))[:, None, :]  # (B, 1, W)
    out = xp[torch.arange(b, device=x.device)[:, None, None], :, rows, cols]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()


def random_affine(x: torch.Tensor, degrees: float = 0.0, scale: float = 0.0, shear: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate by U(-degrees, degrees), zoom by U(1 - scale, 1 + scale), shear by U(-shear, shear) degrees
    (about the image centre, bilinear, zero fill)."""
    if degrees <= 0 and scale <= 0 and shear <= 0:
        return x
    b = x.shape[0]

    def uniform(lim: float) -> torch.Tensor:
        return (torch.rand(b, generator=generator) * 2 - 1) * lim

    angle, sh = torch.deg2rad(uniform(degrees)), torch.deg2rad(uniform(shear))
    zoom = 1 + uniform(scale)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # forward map A = zoom * R(angle) @ Shear_x(sh); affine_grid wants the inverse (output -> input coordinates)
    a = torch.stack([torch.stack([cos, cos * torch.tan(sh) - sin], -1),
                     torch.stack([sin, sin * torch.tan(sh) + cos], -1)], -2) * zoom[:, None, None]  # (B, 2, 2)
    theta = torch.cat([torch.linalg.inv(a), torch.zeros(b, 2, 1)], dim=2).to(x.dtype)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each sample left-right with probability 1/2."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip.view(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)


def color_jitter(x: torch.Tensor, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Scale brightness, contrast (about each image's mean) and saturation (about its grey level, RGB only)
    by factors drawn from U(1 - v, 1 + v), as torchvision's ColorJitter (fixed order, no hue)."""
    b = x.shape[0]

    def factor(v: float) -> torch.Tensor:
        return (1 + (torch.rand(b, generator=generator) * 2 - 1) * v).view(b, 1, 1, 1).to(x.device, x.dtype)

    if brightness > 0:
        x = x * factor(brightness)
    if contrast > 0:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = mean + (x - mean) * factor(contrast)
    if saturation > 0 and x.shape[1] == 3:
        grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])  # ITU-R 601 luma, (B, 1, H, W)
        x = grey + (x - grey) * factor(saturation)
    return x


# Datasets whose classes change under a left-right mirror (a mirrored 2, 3, 7 ... is not a digit).
NO_HFLIP = ("digits", "mnist")


@dataclass(frozen=True)
class Augment:
    """The composable augmentation of ``conf/regularizer/augment.yaml``; 0 / False switches a transform off."""

    translate: float = 0.0  # max shift, fraction of the size per axis (images and 1-D signals)
    crop_padding: int = 0  # RandomCrop(size, padding=crop_padding)
    rotation: float = 0.0  # degrees
    scale: float = 0.0  # zoom range 1 +- scale
    shear: float = 0.0  # degrees
    hflip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0  # RGB only
    noise: float = 0.0  # std of additive Gaussian noise, in units of the standardised input

    @classmethod
    def from_config(cls, cfg: dict | None) -> "Augment":
        cfg = dict(cfg or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"regularizer.augment has no option(s) {unknown}; it accepts: {sorted(known)}")
        return cls(**cfg)

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def check(self, dataset: str, input_shape: tuple[int, ...]) -> None:
        """Refuse transforms that make no sense for this data, before training."""
        image_only = [k for k in ("crop_padding", "rotation", "scale", "shear", "hflip", "brightness", "contrast",
                                  "saturation") if getattr(self, k)]
        if len(input_shape) != 3 and image_only:
            raise ConfigError(f"regularizer.augment.{image_only[0]} applies to images; {dataset} inputs have shape "
                              f"{tuple(input_shape)} (1-D signals take translate and noise)")
        if self.hflip and dataset in NO_HFLIP:
            raise ConfigError(f"regularizer.augment.hflip=true is not valid for {dataset}: a mirrored digit is "
                              "another symbol (use it for CIFAR-10 / Fashion-MNIST)")
        if self.saturation and input_shape[0] != 3:
            raise ConfigError(f"regularizer.augment.saturation needs RGB images; {dataset} has {input_shape[0]} channel(s)")

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """x: (B, C, H, W) or (B, C, L), background at 0."""
        if x.ndim == 4:
            x = random_crop(x, self.crop_padding, generator)
            x = random_affine(x, self.rotation, self.scale, self.shear, generator)
        x = random_translate(x, self.translate, generator)
        if self.hflip:
            x = random_hflip(x, generator)
        if x.ndim == 4:
            x = color_jitter(x, self.brightness, self.contrast, self.saturation, generator)
        if self.noise > 0:
            x = x + self.noise * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        return x

