"""The DARTS / PC-DARTS supernet: every edge of a cell is a MixedOp over the 8 primitives, weighted by softmax(α).

Structure follows the reference search network (``model_search.py`` of DARTS and PC-DARTS): a 3C stem, L cells
with reductions at L/3 and 2L/3, 4 intermediate nodes concatenated (multiplier 4), every op built with affine=False
and pools followed by a non-affine BN. PC-DARTS (``partial_channels=K>1``) sends 1/K of the channels through the
MixedOp, passes the rest by (max-pooled on reduction edges), shuffles channels with K groups, and weighs each edge by
β, softmax-normalised over each node's incoming edges. ``genotype()`` applies the reference derivation
(:func:`ladarts.space.soft.derive`).
"""

from __future__ import annotations

import torch
from torch import nn

from ladarts.space.encoding import N_EDGES, N_NODES
from ladarts.space.genotype import Genotype
from ladarts.space.geometry import edge_stride, reduction_indices
from ladarts.space.primitives import PRIMITIVES, FactorizedReduce, ReLUConvBN, build_op
from ladarts.space.soft import derive, edge_weights

_NONE = PRIMITIVES.index("none")
METHODS = ("darts", "pc-darts")


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle, as PC-DARTS uses it after each partial MixedOp."""
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class MixedOp(nn.Module):
    """Σ_o w_o · o(x) over the 8 primitives (DARTS), or on 1/K of the channels (PC-DARTS, ``partial_channels``
    K > 1).

    'none' contributes exactly zero to the sum and to every gradient, so it is not evaluated (the reference
    multiplies a zero tensor); α_none still receives its gradient through the softmax.
    """

    def __init__(self, channels: int, stride: int, partial_channels: int = 1):
        super().__init__()
        k = partial_channels
        if channels % k:
            raise ValueError(f"partial channels K={k} must divide the cell's channel count {channels}")
        self.partial_channels = k
        self.stride = stride
        self._ops = nn.ModuleList(build_op(p, channels // k, stride, affine=False, search=True) for p in PRIMITIVES)
        self.mp = nn.MaxPool2d(2, 2) if k > 1 else None
        # The four conv primitives open with the same ReLU of the same input: the mix computes (and keeps for
        # backward) one copy instead of four, then runs the rest of each op. Identical values and gradients.
        self._after_relu = [list(op)[1:] if isinstance(op, nn.Sequential) and isinstance(op[0], nn.ReLU) else None
                            for op in self._ops]

    def _mix(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = None
        relu_x = None
        for i, op in enumerate(self._ops):
            if i == _NONE:
                continue
            tail = self._after_relu[i]
            if tail is not None:
                if relu_x is None:
                    relu_x = torch.relu(x)
                y = relu_x
                for m in tail:
                    y = m(y)
            else:
                y = op(x)
            y = weights[i] * y
            out = y if out is None else out + y
        return out

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if self.partial_channels == 1:
            return self._mix(x, weights)
        c = x.shape[1] // self.partial_channels
        mixed = self._mix(x[:, :c], weights)
        rest = x[:, c:]
        if mixed.shape[2] != x.shape[2]:
            rest = self.mp(rest)
        return channel_shuffle(torch.cat([mixed, rest], dim=1), self.partial_channels)


class SearchCell(nn.Module):
    """A cell of the supernet: 4 nodes, each the sum of MixedOps on all its predecessors (14 edges)."""

    def __init__(self, c_prev_prev: int, c_prev: int, c: int, reduction: bool, reduction_prev: bool,
                 partial_channels: int = 1):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, c, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, c, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0, affine=False)
        self._ops = nn.ModuleList(
            MixedOp(c, edge_stride(reduction, j), partial_channels) for i in range(N_NODES) for j in range(2 + i)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                edge_w: torch.Tensor | None = None) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(N_NODES):
            s = None
            for j, h in enumerate(states):
                y = self._ops[offset + j](h, weights[offset + j])
                if edge_w is not None:
                    y = edge_w[offset + j] * y
                s = y if s is None else s + y
            offset += len(states)
            states.append(s)
        return torch.cat(states[-N_NODES:], dim=1)


class Supernet(nn.Module):
    """The search network. ``method`` "darts" or "pc-darts" (partial channels K and edge normalisation β).

    α (``alphas_normal``, ``alphas_reduce``: 14×8) and β (``betas_normal``, ``betas_reduce``: 14, PC-DARTS only)
    are parameters of this module, initialised as the reference does (1e-3·N(0,1)) after the weights;
    :meth:`weight_parameters` and :meth:`arch_parameters` give the two sets for the two optimisers.

    ``channels_last`` (default) keeps activations in NHWC, where oneDNN's depthwise and pooling kernels are several
    times faster on the CPU (a first-order step at C=16 × 8, batch 64, 1 thread: 18.5 s against 29.4 s in NCHW; see
    benchmarks/RESULTS.md); values and gradients are those of the NCHW network.
    """

    def __init__(self, channels: int = 16, num_classes: int = 10, cells: int = 8, in_channels: int = 3,
                 method: str = "darts", partial_channels: int = 4, stem_multiplier: int = 3,
                 channels_last: bool = True):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        if cells < 3:
            raise ValueError(f"a supernet needs at least 3 cells (two reductions), got {cells}")
        self.method = method
        self.partial_channels = partial_channels if method == "pc-darts" else 1
        self.channels, self.num_classes, self.n_cells, self.in_channels = channels, num_classes, cells, in_channels
        c_curr = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        reductions = set(reduction_indices(cells))
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(cells):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            self.cells.append(SearchCell(c_pp, c_p, c_curr, reduction, reduction_prev,
                                         self.partial_channels))
            reduction_prev = reduction
            c_pp, c_p = c_p, N_NODES * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        n_ops = len(PRIMITIVES)
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(N_EDGES, n_ops))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(N_EDGES, n_ops))
        if self.partial_channels > 1:
            self.betas_normal: nn.Parameter | None = nn.Parameter(1e-3 * torch.randn(N_EDGES))
            self.betas_reduce: nn.Parameter | None = nn.Parameter(1e-3 * torch.randn(N_EDGES))
        else:
            self.betas_normal = self.betas_reduce = None
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    ARCH_NAMES = ("alphas_normal", "alphas_reduce", "betas_normal", "betas_reduce")

    def arch_parameters(self) -> list[nn.Parameter]:
        return [p for p in (self.alphas_normal, self.alphas_reduce, self.betas_normal, self.betas_reduce)
                if p is not None]

    def named_weight_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if n not in self.ARCH_NAMES]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_weight_parameters()]

    def arch_tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(α normal, α reduce, β normal, β reduce), the inputs of :func:`ladarts.space.soft.soft_encoding`."""
        return self.alphas_normal, self.alphas_reduce, self.betas_normal, self.betas_reduce

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_normal = torch.softmax(self.alphas_normal, dim=-1)
        w_reduce = torch.softmax(self.alphas_reduce, dim=-1)
        e_normal = edge_weights(self.betas_normal) if self.betas_normal is not None else None
        e_reduce = edge_weights(self.betas_reduce) if self.betas_reduce is not None else None
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            if cell.reduction:
                s0, s1 = s1, cell(s0, s1, w_reduce, e_reduce)
            else:
                s0, s1 = s1, cell(s0, s1, w_normal, e_normal)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def genotype(self) -> Genotype:
        """The reference derivation: top-2 edges per node by strongest non-'none' weight (β-weighted in PC-DARTS)."""
        return derive(*self.arch_tensors())
