"""The Hessian's spectrum at the end of training (lecture 002 §1.1: a critical point is a local minimum when
every eigenvalue of ∇²L is positive, a saddle point when some are negative).

Hessian-vector products by Pearlmutter's double backward; the extreme eigenvalues by Lanczos with full
reorthogonalisation (Ritz values of the k-step tridiagonal matrix); the fraction of negative eigenvalues by
stochastic Lanczos quadrature (Ghorbani et al. 2019, "An investigation into neural net optimization via Hessian
eigenvalue density"): over Rademacher start vectors v, the spectral density is Σ_i w_i δ(λ - θ_i) with Ritz
values θ_i and weights w_i = (first component of the i-th Ritz vector)², so the negative share is Σ_i w_i [θ_i < 0];
exact from the full Hessian when the model has few parameters. Written here on torch.autograd (~60 lines):
PyHessian, the usual library, is unmaintained and not on this stack.
"""

from __future__ import annotations

from typing import Callable

import torch

Vector = list[torch.Tensor]


def hessian_vector_product(loss_fn: Callable, params: list[torch.Tensor], batches: list, v: Vector) -> Vector:
    """H v, H = ∇² of the mean over ``batches`` of ``loss_fn(batch)`` with respect to ``params``."""
    hv = [torch.zeros_like(p) for p in params]
    for batch in batches:
        grads = torch.autograd.grad(loss_fn(batch), params, create_graph=True)
        dot = sum((g * x).sum() for g, x in zip(grads, v))
        for acc, h in zip(hv, torch.autograd.grad(dot, params)):
            acc += h.detach() / len(batches)
    return hv


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ritz values (ascending) and the squared first components of their vectors, after ``steps`` Lanczos
    steps from ``v0`` (flat, float64) with full reorthogonalisation; stops early on an invariant subspace."""
    basis = [v0 / v0.norm()]
    alphas, betas = [], []
    for j in range(min(steps, len(v0))):
        w = matvec(basis[j])
        alphas.append(torch.dot(w, basis[j]))
        q = torch.stack(basis)  # (j + 1, n)
        w = w - q.T @ (q @ w)
        w = w - q.T @ (q @ w)  # twice: orthogonal to working precision
        beta = w.norm()
        if j + 1 == min(steps, len(v0)) or beta <= 1e-10 * max(1.0, abs(float(alphas[-1]))):
            break
        betas.append(beta)
        basis.append(w / beta)
    t = torch.diag(torch.stack(alphas))
    if betas:
        off = torch.stack(betas)
        t = t + torch.diag(off, 1) + torch.diag(off, -1)
    theta, vecs = torch.linalg.eigh(t)
    return theta, vecs[0] ** 2


def hessian_spectrum(loss_fn: Callable, params: list[torch.Tensor], batches: list, steps: int = 30, probes: int = 3,
                     seed: int = 0, exact_max_params: int = 0, tol: float = 1e-3) -> dict[str, float]:
    """``max`` / ``min``: extreme Ritz values over ``probes`` Lanczos runs of ``steps`` steps; ``neg_fraction``:
    the SLQ share of eigenvalues below -``tol``·max|λ| (the tolerance keeps the near-zero bulk of an
    over-parameterised net from counting by rounding); with at most ``exact_max_params`` parameters, the
    full Hessian's eigenvalues give ``max``, ``min`` and ``neg_fraction`` exactly instead."""
    shapes = [p.shape for p in params]
    n = sum(p.numel() for p in params)

    def matvec(x: torch.Tensor) -> torch.Tensor:
        parts = [c.view(s).to(p.dtype) for c, s, p in zip(torch.split(x, [p.numel() for p in params]), shapes, params)]
        return torch.cat([h.flatten() for h in hessian_vector_product(loss_fn, params, batches, parts)]).double()

    if n <= exact_max_params:
        eye = torch.eye(n, dtype=torch.float64)
        full = torch.stack([matvec(eye[i]) for i in range(n)])
        eig = torch.linalg.eigvalsh((full + full.T) / 2)
        cut = tol * eig.abs().max()
        return {"max": float(eig[-1]), "min": float(eig[0]), "neg_fraction": float((eig < -cut).double().mean()),
                "exact": 1.0}
    gen = torch.Generator().manual_seed(seed)
    runs = [lanczos(matvec, torch.randint(0, 2, (n,), generator=gen).double() * 2 - 1, steps) for _ in range(probes)]
    top = max(float(theta[-1]) for theta, _ in runs)
    low = min(float(theta[0]) for theta, _ in runs)
    cut = tol * max(abs(top), abs(low))
    neg = sum(float(w[theta < -cut].sum()) for theta, w in runs) / probes
    return {"max": top, "min": low, "neg_fraction": neg, "exact": 0.0}
