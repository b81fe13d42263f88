"""LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", Alg. 2).

Written here because ``torch.optim`` has no LAMB and the libraries that do (timm, torch-optimizer, apex)
are not dependencies of this project (timm needs torchvision, which does not install beside this torch).
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class Lamb(Optimizer):
    """Adam's bias-corrected direction plus decoupled weight decay, rescaled per parameter tensor by the trust
    ratio ||w|| / ||r|| (layer-wise adaptation):

        m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  r = m_hat / (sqrt(v_hat) + eps) + wd * w
        w <- w - lr * phi(||w||) / ||r|| * r,   phi = identity, ratio = 1 where a norm is 0

    ``max_trust_ratio`` optionally clips the ratio (timm's ``Lamb`` offers the same option)."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0, max_trust_ratio: float | None = None):
        if lr <= 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"invalid LAMB hyperparameters lr={lr} betas={betas} eps={eps} weight_decay={weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      max_trust_ratio=max_trust_ratio))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v = state["m"], state["v"]
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                r = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + group["eps"])
                if group["weight_decay"]:
                    r.add_(p, alpha=group["weight_decay"])
                w_norm, r_norm = p.norm(), r.norm()
                ratio = torch.where((w_norm > 0) & (r_norm > 0), w_norm / r_norm, torch.ones_like(w_norm))
                if group["max_trust_ratio"] is not None:
                    ratio = ratio.clamp(max=group["max_trust_ratio"])
                p.add_(r * ratio, alpha=-group["lr"])
        return loss
