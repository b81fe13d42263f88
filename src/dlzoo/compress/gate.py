"""Dynamic pruning by channel gating (lecture 7: "find the neurons that do not contribute, per input";
gating mechanism, conditional computation): every convolution of a trained 1-D CNN gets a small gate that,
from the channel means of the convolution's input, decides per input which output channels to compute
(Gao et al. 2019, "Dynamic channel pruning: feature boosting and suppression"; Hua et al. 2019, "Channel
gating neural networks").

Training (fine-tuning the source network with its gates): hard 0/1 gates in the forward pass, the sigmoid's
gradient in the backward pass (straight-through estimator, Bengio et al. 2013), and a budget term
``weight · (share of open gates − keep)²`` per layer, added to the loss, pulls the share of open
channels to ``keep``.
Inference: only the open channels of each input are computed (the convolution and its BatchNorm run on the
selected filters, the rest of the output stays 0), which is what saves the FLOPs; ``dense_masked`` computes
every channel and then masks, the reference the sparse path must equal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GatedConvBN(nn.Module):
    """Conv1d + BatchNorm1d whose output channels are switched on and off per input by a linear gate on the
    input's channel means; a closed channel's output is 0 (and stays 0 through the following ReLU)."""

    def __init__(self, conv: nn.Conv1d, bn: nn.BatchNorm1d | None, open_bias: float = 0.5):
        super().__init__()
        self.conv, self.bn = conv, bn if bn is not None else nn.Identity()
        self.gate = nn.Linear(conv.in_channels, conv.out_channels)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, open_bias)  # start with every channel open: the source network
        self.soft: torch.Tensor | None = None  # the last training batch's straight-through gates, (B, C_out)
        self.mask: torch.Tensor | None = None  # the last batch's hard gates, (B, C_out) bool

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C_in, L)
        m = x.mean(-1)  # (B, C_in)
        m = m / (m.pow(2).mean(1, keepdim=True).sqrt() + 1e-5)  # unit RMS: the gates' scale does not follow the input's
        return self.gate(m)  # (B, C_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.gate_logits(x)
        self.mask = logits > 0
        if self.training:
            soft = torch.sigmoid(logits)
            self.soft = self.mask.to(x.dtype) + soft - soft.detach()  # straight-through: hard forward, soft grad
            return self.bn(self.conv(x)) * self.soft[:, :, None]
        return self.sparse(x, self.mask)

    def dense_masked(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Every channel computed, then the closed ones zeroed (the reference for ``sparse``)."""
        return self.bn(self.conv(x)) * mask[:, :, None].to(x.dtype)

    def sparse(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per input, the convolution and BatchNorm of its open channels only; closed channels are never computed."""
        conv, bn = self.conv, self.bn
        (k,), (s,), (p,), (d,) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
        length = (x.shape[-1] + 2 * p - d * (k - 1) - 1) // s + 1
        rows = []
        for xi, mi in zip(x, mask):
            idx = mi.nonzero().squeeze(1)
            out = x.new_zeros(1, conv.out_channels, length)
            if not len(idx):  # every channel closed: nothing to compute
                rows.append(out)
                continue
            bias = conv.bias[idx] if conv.bias is not None else None
            y = F.conv1d(xi[None], conv.weight[idx], bias, conv.stride, conv.padding, conv.dilation)  # (1, k, L')
            if isinstance(bn, nn.BatchNorm1d):
                y = F.batch_norm(y, bn.running_mean[idx], bn.running_var[idx], bn.weight[idx], bn.bias[idx],
                                 False, 0.0, bn.eps)
            out[:, idx] = y
            rows.append(out)
        return torch.cat(rows)


def gate_network(net: nn.Module) -> nn.Module:
    """Replace every Conv1d (with the BatchNorm1d right after it) of ``net`` in place by a ``GatedConvBN``."""
    for parent in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        children = list(parent.children())
        for i, child in enumerate(children):
            if isinstance(child, nn.Conv1d):
                bn = children[i + 1] if i + 1 < len(children) and isinstance(children[i + 1], nn.BatchNorm1d) else None
                parent[i] = GatedConvBN(child, bn)
                if bn is not None:
                    parent[i + 1] = nn.Identity()
    if not gates(net):
        from dlzoo.errors import ConfigError

        raise ConfigError(f"channel gating needs a network with Conv1d layers (e.g. cnn1d), not {type(net).__name__}")
    return net


def gates(net: nn.Module) -> list[GatedConvBN]:
    return [m for m in net.modules() if isinstance(m, GatedConvBN)]


class BudgetLoss(nn.Module):
    """Cross-entropy plus ``weight · mean over gated layers of (share of open gates − keep)²`` from ``net``'s
    last forward pass (the hard share, with the straight-through gradient in training). Per layer: a budget
    on the network's mean could be met by closing a whole layer, which cuts the signal."""

    def __init__(self, net: nn.Module, keep: float, weight: float, label_smoothing: float = 0.0):
        super().__init__()
        self.gated, self.keep, self.weight = gates(net), keep, weight
        self.ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        opened = torch.stack([(g.soft if g.training else g.mask.float()).mean() for g in self.gated])  # per layer
        return self.ce(logits, target) + self.weight * (opened - self.keep).pow(2).mean()


def flops_per_input(net: nn.Module, x: torch.Tensor) -> float:
    """FLOPs torch's FlopCounterMode counts for ``net`` on the single input ``x`` (1, *shape): what was run."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return float(counter.get_total_flops())


@torch.no_grad()
def gating_figures(gated: nn.Module, dense: nn.Module, x: torch.Tensor, flops_inputs: int = 100) -> dict[str, float]:
    """``gate/channels_skipped``: the share of gated channels closed, averaged over the inputs ``x``;
    ``gate/flops_skipped``: 1 − FLOPs run by the gated net / FLOPs of the dense source, averaged over the
    first ``flops_inputs`` inputs (the gates' own FLOPs count against it); ``gate/flops``: FLOPs per input."""
    gated.eval()
    gated(x)
    masks = torch.cat([g.mask for g in gates(gated)], 1)  # (N, gated channels)
    base = flops_per_input(dense.eval(), x[:1])
    ran = [flops_per_input(gated, x[i:i + 1]) for i in range(min(flops_inputs, len(x)))]
    mean = sum(ran) / len(ran)
    return {"gate/channels_skipped": float(1 - masks.float().mean()), "gate/flops": mean,
            "gate/flops_skipped": 1 - mean / base, "gate/flops_dense": base}
