"""Generative networks of lectures 8-9: autoencoder, VAE, conditional VAE (β-VAE is the VAE trained with a
β from the task config), and the generator / discriminator pair of a GAN (WGAN: the same pair, the
discriminator read as a critic without a sigmoid).

All are MLPs on flattened inputs (8x8 digits, 2-D points); outputs are reshaped back to ``input_shape``.
The networks hold no loss: ``dlzoo.tasks.generative`` trains them (autoencode, gan).
"""

from __future__ import annotations

import torch
from torch import nn

from dlzoo.models.layers import ActSpec, act_layer, flat_features
from dlzoo.models.registry import register_model


def mlp_stack(sizes: list[int], act: type[nn.Module], last_act: bool = False) -> nn.Sequential:
    """Linear layers through ``sizes`` with ``act`` between them (and after the last one if ``last_act``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if last_act or i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """Encoder q(z | x[, y]) and decoder p(x | z[, y]) as MLPs.

    ``variational=False`` is the plain autoencoder (the encoder gives z directly, ``logvar`` is None);
    ``conditional=True`` is the CVAE (Sohn et al. 2015): the one-hot label is concatenated to the flattened
    input of the encoder and to z at the decoder. The decoder returns logits of the pixel means (the task
    reads them as Bernoulli logits, or applies a sigmoid for the mean image). ``tau`` > 0 is the Tilted VAE:
    the prior is ``dlzoo.models.tilted.TiltedPrior`` (density on a shell of radius ≈ τ) instead of N(0, I);
    ``unit_variance`` fixes q(z|x) = N(mu(x), I) as in Floto et al. (the codes must then move onto the shell
    rather than reach it by widening q).
    """

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, hidden: list[int], latent_dim: int,
                 act: type[nn.Module] = nn.ReLU, variational: bool = True, conditional: bool = False,
                 tau: float = 0.0, unit_variance: bool = False):
        super().__init__()
        from dlzoo.models.tilted import TiltedPrior

        self.prior = TiltedPrior(tau, latent_dim) if tau else None  # None: N(0, I)
        self.input_shape, self.num_classes, self.latent_dim = tuple(input_shape), num_classes, latent_dim
        self.variational, self.conditional = variational, conditional
        n_in, n_y = flat_features(input_shape), num_classes if conditional else 0
        self.encoder = mlp_stack([n_in + n_y, *hidden], act, last_act=True)
        self.to_mu = nn.Linear(hidden[-1], latent_dim)
        self.to_logvar = nn.Linear(hidden[-1], latent_dim) if variational and not unit_variance else None
        self.unit_variance = variational and unit_variance
        self.decoder = mlp_stack([latent_dim + n_y, *reversed(hidden), n_in], act)

    def _with_label(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return h
        # y=None: an all-zero one-hot, "no label" (FLOP counting and MLflow's model signature call net(x))
        onehot = (nn.functional.one_hot(y, self.num_classes).to(h.dtype) if y is not None
                  else h.new_zeros(len(h), self.num_classes))
        return torch.cat([h, onehot], 1)  # (B, F + C)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.encoder(self._with_label(x.flatten(1), y))  # (B, hidden[-1])
        mu = self.to_mu(h)
        if self.unit_variance:
            return mu, torch.zeros_like(mu)  # log 1
        return mu, (self.to_logvar(h) if self.variational else None)  # (B, latent) each

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self._with_label(z, y)).view(len(z), *self.input_shape)  # (B, *input_shape) logits

    def autoencode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """(reconstruction logits, mu, logvar); z is sampled by reparameterisation in training mode and is
        the mean ``mu`` in eval mode (and always for the plain autoencoder)."""
        mu, logvar = self.encode(x, y)
        z = reparameterize(mu, logvar) if self.training and logvar is not None else mu
        return self.decode(z, y), mu, logvar

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The reconstruction logits alone (one tensor: what MLflow's logged model returns)."""
        return self.autoencode(x, y)[0]

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean images (pixel probabilities) of decoder(z), z ~ the prior (N(0, I) or the tilted one): (n, *input_shape)."""
        w = self.to_mu.weight
        z = (self.prior.sample(n, generator, w.device).to(w.dtype) if self.prior is not None
             else latent_codes(n, self.latent_dim, generator, w.device, w.dtype))
        return torch.sigmoid(self.decode(z, y))


def latent_codes(n: int, latent_dim: int, generator: torch.Generator | None, device: torch.device,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """z ~ N(0, I), (n, latent_dim), on ``device`` in ``dtype`` (the network's weights'). A seeded ``generator`` draws on its own device and the codes
    then move: a CPU generator gives the same codes, hence the same samples, whichever device the network is on."""
    if generator is None:
        return torch.randn(n, latent_dim, device=device, dtype=dtype)
    return torch.randn(n, latent_dim, generator=generator, device=generator.device).to(device, dtype)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): the sample is a differentiable function of (mu, logvar)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class GAN(nn.Module):
    """Generator G: z (latent_dim) -> x, and discriminator D: x -> one real-valued score per sample.

    D ends without a sigmoid: the non-saturating GAN loss reads its output as a logit
    (BCE-with-logits), WGAN as the critic's unbounded score. No BatchNorm in D: the WGAN-GP gradient
    penalty is per sample, which batch statistics would break (Gulrajani et al. 2017, §4).
    """

    def __init__(self, input_shape: tuple[int, ...], hidden: list[int], latent_dim: int,
                 act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.input_shape, self.latent_dim = tuple(input_shape), latent_dim
        n = flat_features(input_shape)
        self.generator = mlp_stack([latent_dim, *hidden, n], act)
        self.discriminator = mlp_stack([n, *hidden, 1], act)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z).view(len(z), *self.input_shape)  # (B, *input_shape)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x.flatten(1)).squeeze(1)  # (B,)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generate(z)

    def example_input(self, n: int = 1) -> torch.Tensor:
        """What ``forward`` takes (latent codes, not data-shaped inputs), for FLOP counting."""
        return torch.zeros(n, self.latent_dim)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        w = self.generator[0].weight
        return self.generate(latent_codes(n, self.latent_dim, generator, w.device, w.dtype))


def _vae(input_shape, num_classes, hidden, latent_dim, activation, **kwargs) -> VAE:
    return VAE(input_shape, num_classes, list(hidden), latent_dim, act_layer(activation), **kwargs)


@register_model()
def ae(input_shape, num_classes, hidden=(256, 128), latent_dim=8, activation: ActSpec = "relu") -> VAE:
    return _vae(input_shape, num_classes, hidden, latent_dim, activation, variational=False)


@register_model()
def vae(input_shape, num_classes, hidden=(256, 128), latent_dim=8, activation: ActSpec = "relu") -> VAE:
    return _vae(input_shape, num_classes, hidden, latent_dim, activation)


@register_model()
def tvae(input_shape, num_classes, hidden=(256, 128), latent_dim=8, activation: ActSpec = "relu",
         tau: float = 4.0, unit_variance: bool = True) -> VAE:
    """Tilted VAE (Floto et al. 2023): the VAE with the prior exp(τ‖z‖) N(0, I) / Z_τ."""
    if not (isinstance(tau, (int, float)) and tau > 0):
        from dlzoo.errors import ConfigError

        raise ConfigError(f"model.tau={tau!r}: must be a number > 0 (τ = 0 is the plain VAE: model=vae)")
    return _vae(input_shape, num_classes, hidden, latent_dim, activation, tau=float(tau), unit_variance=unit_variance)


@register_model()
def cvae(input_shape, num_classes, hidden=(256, 128), latent_dim=8, activation: ActSpec = "relu") -> VAE:
    return _vae(input_shape, num_classes, hidden, latent_dim, activation, conditional=True)


@register_model()
def gan_mlp(input_shape, num_classes, hidden=(128, 128, 128), latent_dim=2, activation: ActSpec = "relu") -> GAN:
    """``num_classes`` is unused (an unconditional GAN)."""
    return GAN(input_shape, list(hidden), latent_dim, act_layer(activation))
