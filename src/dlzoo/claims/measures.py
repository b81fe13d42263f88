"""Measurements a claim may ask for after training (``measure: [sharpness]``), on the variant's measured weights.

``sharpness``: the largest eigenvalue of the Hessian of the training loss (lecture 002 §1.1–1.2: sharp vs flat
minima; Keskar et al. 2017), by power iteration on Hessian-vector products (Pearlmutter's double backward) over a
fixed subset of the training split, in eval mode (no dropout, BatchNorm on its running statistics). Written here
because it is ~30 lines on torch.autograd; PyHessian, the usual library, is unmaintained and not on this stack.
``activation_mb``: the memory autograd keeps for the backward pass of one training batch (a device-independent
memory figure; timings on a shared machine are not).
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


def saved_tensor_bytes(fn) -> int:
    """Bytes of the distinct storages autograd saves for the backward pass while ``fn()`` runs (the activation
    memory of training; the same on every device), through ``torch.autograd.graph.saved_tensors_hooks``."""
    import torch

    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def activation_mb(task, dm, seed: int = 0, batch_size: int = 64) -> float:
    """MiB that autograd keeps for the backward pass of ``task``'s training loss on the first ``batch_size``
    training samples (train mode): where attention's (T, T) scores show up as memory."""
    import torch

    batch = next(iter(torch.utils.data.DataLoader(dm.datasets["train"], batch_size=batch_size)))
    task.train()
    with torch.enable_grad():
        return saved_tensor_bytes(lambda: task._step(batch)[0]) / 2 ** 20


MEASURES = {"sharpness": sharpness, "activation_mb": activation_mb}
