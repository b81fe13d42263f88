"""The tilted Gaussian prior of the Tilted VAE (Floto et al. 2023, "The Tilted Variational Autoencoder"):

    p_τ(z) = exp(τ‖z‖) N(z; 0, I) / Z_τ,

whose density sits on a spherical shell instead of at the centre: ‖z‖ has the density
∝ r^(k-1) exp(-r²/2 + τ r), peaked at the shell radius r* = (τ + √(τ² + 4(k - 1))) / 2 (≈ τ for a large τ);
τ = 0 is the standard normal. The KL term of the ELBO against it is

    KL(q ‖ p_τ) = KL(q ‖ N(0, I)) - τ E_q‖z‖ + log Z_τ,

the first term in closed form, E_q‖z‖ estimated with reparameterised samples of q (the paper's closed form
through a Laguerre polynomial holds for a unit-variance encoder only; this estimate holds for any diagonal
Gaussian, is unbiased and has gradients), log Z_τ = log E_{N(0,I)}[exp(τ‖z‖)] by quadrature once.
Neither torch.distributions nor scipy has this distribution: written out here.
"""

from __future__ import annotations

import math

import torch


def shell_radius(tau: float, dim: int) -> float:
    """The mode of ‖z‖ under p_τ: the radius of the shell its density sits on."""
    return (tau + math.sqrt(tau * tau + 4 * (dim - 1))) / 2


def _log_radial(r, tau: float, dim: int):
    """Unnormalised log density of ‖z‖: (k-1) log r - r²/2 + τ r, for a float r >= 0 or a tensor r > 0."""
    if isinstance(r, torch.Tensor):
        return (dim - 1) * torch.log(r) - r * r / 2 + tau * r
    if r <= 0:
        return 0.0 if dim == 1 else -math.inf
    return (dim - 1) * math.log(r) - r * r / 2 + tau * r


def log_normalizer(tau: float, dim: int) -> float:
    """log Z_τ = log E_{z~N(0,I)} exp(τ‖z‖), from the chi-distributed radius by adaptive quadrature
    (scaled by the density's peak so the integrand stays near 1)."""
    from scipy.integrate import quad

    peak = shell_radius(tau, dim)
    top = _log_radial(peak, tau, dim)
    tilted, _ = quad(lambda r: math.exp(_log_radial(r, tau, dim) - top), 0, peak + 40, points=[peak], limit=200)
    plain_top = _log_radial(math.sqrt(dim - 1) if dim > 1 else 1.0, 0.0, dim)
    plain, _ = quad(lambda r: math.exp(_log_radial(r, 0.0, dim) - plain_top), 0, 40 + math.sqrt(dim), limit=200)
    return top + math.log(tilted) - plain_top - math.log(plain)


class TiltedPrior:
    """p_τ on R^dim: ``sample`` draws from it, ``kl`` turns KL(q ‖ N(0, I)) into KL(q ‖ p_τ)."""

    def __init__(self, tau: float, dim: int, grid: int = 8192):
        self.tau, self.dim = float(tau), dim
        self.radius = shell_radius(self.tau, dim)
        self.log_z = log_normalizer(self.tau, dim)
        # inverse-CDF table of the radius: the density is smooth and bounded, a fine grid is exact enough
        r = torch.linspace(1e-6, self.radius + 40, grid, dtype=torch.float64)
        dens = torch.exp(_log_radial(r, self.tau, dim) - _log_radial(self.radius, self.tau, dim))
        cdf = torch.cumulative_trapezoid(dens, r)
        self._r, self._cdf = r[1:], cdf / cdf[-1]

    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """(n, dim): a uniform direction times a radius drawn by inverting the radius's CDF."""
        direction = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        direction = direction / direction.norm(dim=1, keepdim=True)
        u = torch.rand(n, generator=generator, dtype=torch.float64)
        i = torch.searchsorted(self._cdf, u).clamp(1, len(self._cdf) - 1)
        lo, hi = self._cdf[i - 1], self._cdf[i]
        radius = self._r[i - 1] + (u - lo) / (hi - lo).clamp_min(1e-300) * (self._r[i] - self._r[i - 1])
        return (direction * radius[:, None]).float().to(device)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, kl_standard: torch.Tensor, samples: int = 16) -> torch.Tensor:
        """KL(N(mu, diag exp(logvar)) ‖ p_τ) per sample, (B,), from KL to N(0, I) (B,) and ``samples``
        reparameterised draws of q for E_q‖z‖."""
        eps = torch.randn(samples, *mu.shape, device=mu.device, dtype=mu.dtype)
        mean_norm = (mu + torch.exp(0.5 * logvar) * eps).norm(dim=-1).mean(0)  # (B,)
        return kl_standard - self.tau * mean_norm + self.log_z
