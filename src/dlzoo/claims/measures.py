"""Measurements a claim may ask for after training (``measure: [sharpness]``), on the variant's measured weights.

``sharpness``: the largest eigenvalue of the Hessian of the training loss (lecture 002 §1.1–1.2: sharp vs flat
minima; Keskar et al. 2017), by power iteration on Hessian-vector products (Pearlmutter's double backward) over a
fixed subset of the training split, in eval mode (no dropout, BatchNorm on its running statistics). Written here
because it is ~30 lines on torch.autograd; PyHessian, the usual library, is unmaintained and not on this stack.
"""

from __future__ import annotations


def top_hessian_eigenvalue(loss_fn, params: list, batches: list, iters: int = 30, seed: int = 0,
                           tol: float = 1e-4) -> float:
    """Largest-magnitude eigenvalue of ∇²L, L = mean over ``batches`` of ``loss_fn(batch)``.

    Power iteration v ← Hv/‖Hv‖ from a seeded random v; stops when the Rayleigh quotient vᵀHv changes by less
    than ``tol`` (relative) or after ``iters`` products.
    """
    import torch

    from dlzoo.training.hessian import hessian_vector_product

    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    norm = torch.sqrt(sum((x * x).sum() for x in v))
    v = [x / norm for x in v]
    eig = 0.0
    for _ in range(iters):
        hv = hessian_vector_product(loss_fn, params, batches, v)
        new = float(sum((h * x).sum() for h, x in zip(hv, v)))  # Rayleigh quotient vᵀHv (‖v‖ = 1)
        norm = torch.sqrt(sum((h * h).sum() for h in hv))
        v = [h / norm for h in hv]
        if abs(new - eig) <= tol * abs(new):
            return new
        eig = new
    return eig


def sharpness(task, dm, max_samples: int = 1024, batch_size: int = 256, seed: int = 0) -> float:
    """Top Hessian eigenvalue of ``task``'s training loss on the first ``max_samples`` training samples."""
    import torch

    ds = dm.datasets["train"]
    n = min(max_samples, len(ds))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, range(n)), batch_size=batch_size)
    batches = list(loader)
    task.eval()
    params = [p for p in task.parameters() if p.requires_grad]
    with torch.enable_grad():
        return top_hessian_eigenvalue(lambda b: task._step(b)[0], params, batches, seed=seed)


MEASURES = {"sharpness": sharpness}
