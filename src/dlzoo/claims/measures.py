"""Measurements a claim may ask for after training (``measure: [sharpness]``), on the variant's measured weights.

``sharpness``: the largest eigenvalue of the Hessian of the training loss (lecture 002 §1.1–1.2: sharp vs flat
minima; Keskar et al. 2017), by power iteration on Hessian-vector products (Pearlmutter's double backward) over a
fixed subset of the training split, in eval mode (no dropout, BatchNorm on its running statistics). Written here
because it is ~30 lines on torch.autograd; PyHessian, the usual library, is unmaintained and not on this stack.
``activation_mb``: the memory autograd keeps for the backward pass of one training batch (a device-independent
memory figure; timings on a shared machine are not).

``weights``: of the weight matrices and kernels (biases and norm parameters excluded, as the L1/L2 regularizers
exclude them) the share that is near zero (``|w| < 0.01 · max|w|`` of its tensor: relative, so that weights that are
merely small do not count as sparse; L1 with a gradient optimizer drives weights towards zero, not exactly to it)
and their L2 norm (lecture 000 §4: L1 yields sparse weights, L2 small ones).

``dropout_scaling``: the first dropout layer's outputs on the same validation batch in training mode (dropout
active) and in eval mode, every other layer in eval mode: the ratio of their means and the share of zeroed units.
Inverted dropout scales the kept units by 1/(1−p) in training, so that the expected activation is the same in
both modes (the ratio ≈ 1, not 1−p) and nothing needs rescaling at test time.
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


def _weight_tensors(task) -> list:
    return [p.detach() for name, p in task.named_parameters() if p.ndim >= 2]


def weights(task, dm, seed: int = 0, relative: float = 0.01) -> dict[str, float]:
    """{"sparsity": share of weights with |w| < relative · max|w| of their tensor, "norm": their L2 norm}."""
    import torch

    tensors = _weight_tensors(task)
    near_zero = sum(int((w.abs() < relative * w.abs().max()).sum()) for w in tensors)
    total = sum(w.numel() for w in tensors)
    return {"sparsity": near_zero / total, "norm": float(torch.sqrt(sum((w * w).sum() for w in tensors)))}


def dropout_scaling(task, dm, seed: int = 0, max_samples: int = 512) -> dict[str, float]:
    """{"train_over_eval": mean output of the first nn.Dropout in training mode / in eval mode, "zeroed": the
    share of its outputs set to zero in training mode, "p": its rate}, on the first validation samples."""
    import torch

    drops = [m for m in task.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
    if not drops:
        raise ValueError("dropout_scaling: the model has no dropout layer (set model.dropout > 0)")
    x = dm.datasets["val"].tensors[0][:max_samples]
    outputs = []
    hook = drops[0].register_forward_hook(lambda m, i, out: outputs.append((i[0].detach(), out.detach())))
    task.eval()
    torch.manual_seed(seed)
    with torch.no_grad():
        task(x)
        drops[0].train()
        task(x)
    hook.remove()
    drops[0].eval()
    (eval_in, eval_out), (train_in, train_out) = outputs
    return {"train_over_eval": float(train_out.mean() / eval_out.mean()),
            "zeroed": float(((train_out == 0) & (train_in != 0)).sum() / (train_in != 0).sum()), "p": drops[0].p}


MEASURES = {"sharpness": sharpness, "activation_mb": activation_mb, "weights": weights,
            "dropout_scaling": dropout_scaling}
