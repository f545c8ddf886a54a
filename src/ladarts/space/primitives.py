"""The DARTS primitives, built exactly as the DARTS / PC-DARTS reference code builds them.

The module structure (and therefore every parameter count) must match the reference, because users
compare our numbers with the published ones: e.g. DARTS_V2 on the CIFAR network has 3,349,342 parameters.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

#: The 8 primitives of the DARTS search space, in the reference order (the encoding's last axis).
PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

#: Primitives that only the NASNet / AmoebaNet cells use; they can be built but not searched or encoded.
EXTRA_PRIMITIVES: tuple[str, ...] = ("sep_conv_7x7", "conv_7x1_1x7")


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The 'none' primitive: a zero tensor of the output shape (keeps the supernet's sums well-formed)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class _SameDepthwise(torch.autograd.Function):
    """Depthwise k×k conv, stride 1, "same" padding, with a faster backward on CPU.

    Its input gradient is the same conv with the kernel flipped, which the fast forward kernel computes (oneDNN's
    depthwise input-gradient kernel is 3–15× slower than its forward here, worst with dilation). The input is kept
    only when the weight gradient will be wanted (the α step freezes the weights).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int],  # type: ignore[override]
                dilation: tuple[int, int]) -> torch.Tensor:
        ctx.padding, ctx.dilation = padding, dilation
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight)
        return F.conv2d(x, weight, None, 1, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        g_x = g_w = None
        if ctx.needs_input_grad[0]:
            g_x = F.conv2d(grad, weight.flip(2, 3), None, 1, ctx.padding, ctx.dilation, grad.shape[1])
        if ctx.needs_input_grad[1]:
            g_w = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], list(ctx.padding), list(ctx.dilation), False, [0, 0], x.shape[1],
                [False, True, False])[1]
        return g_x, g_w, None, None


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(c, c, k, groups=c)`` (same parameters, same state dict) that trains faster when stride is 1.

    The custom backward is used only where autograd records the call; tracing, export and inference take the
    plain conv, so exported graphs and timed networks are unchanged.
    """

    def __init__(self, channels: int, k: int, stride: int, padding: int, dilation: int):
        super().__init__(channels, channels, k, stride=stride, padding=padding, dilation=dilation, groups=channels,
                         bias=False)
        self._same = stride == 1 and 2 * padding == dilation * (k - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Under autocast torch's own conv: the custom backward is written for fp32 (it would mix a low-precision
        # gradient with the fp32 weight).
        if (self._same and torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
                and not torch.is_autocast_enabled(x.device.type)
                and not torch.jit.is_tracing() and not torch.jit.is_scripting()):
            return _SameDepthwise.apply(x, self.weight, self.padding, self.dilation)
        return super().forward(x)


def _relu_dw_pw_bn(c_in: int, c_out: int, k: int, stride: int, padding: int, dilation: int, affine: bool):
    """One ReLU → depthwise k×k → pointwise 1×1 → BN block, the unit both SepConv and DilConv are made of."""
    return [
        nn.ReLU(inplace=False),
        DepthwiseConv2d(c_in, k, stride, padding, dilation),
        nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
        nn.BatchNorm2d(c_out, affine=affine),
    ]


class DilConv(nn.Sequential):
    """One ReLU-dw-pw-BN block with dilation (2 in the DARTS space)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, dilation: int, affine: bool = True):
        super().__init__(*_relu_dw_pw_bn(c_in, c_out, k, stride, padding, dilation, affine))


class SepConv(nn.Sequential):
    """Two stacked ReLU-dw-pw-BN blocks; only the first is strided (as in the reference)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            *_relu_dw_pw_bn(c_in, c_in, k, stride, padding, 1, affine),
            *_relu_dw_pw_bn(c_in, c_out, k, 1, padding, 1, affine),
        )


class FactorizedReduce(nn.Module):
    """Stride-2 'skip': two 1×1 stride-2 convs of C/2 channels, the second on the input shifted by a pixel."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class Conv7x1_1x7(nn.Sequential):
    def __init__(self, c: int, stride: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c, c, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(c, affine=affine),
        )


OpBuilder = Callable[[int, int, bool], nn.Module]

#: name → builder(C, stride, affine). A registry, so that the cell code never special-cases a primitive.
OPS: dict[str, OpBuilder] = {
    "none": lambda c, stride, affine: Zero(stride),
    "max_pool_3x3": lambda c, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda c, stride, affine: nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda c, stride, affine: Identity() if stride == 1 else FactorizedReduce(c, c, affine),
    "sep_conv_3x3": lambda c, stride, affine: SepConv(c, c, 3, stride, 1, affine),
    "sep_conv_5x5": lambda c, stride, affine: SepConv(c, c, 5, stride, 2, affine),
    "sep_conv_7x7": lambda c, stride, affine: SepConv(c, c, 7, stride, 3, affine),
    "dil_conv_3x3": lambda c, stride, affine: DilConv(c, c, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda c, stride, affine: DilConv(c, c, 5, stride, 4, 2, affine),
    "conv_7x1_1x7": lambda c, stride, affine: Conv7x1_1x7(c, stride, affine),
}

assert set(PRIMITIVES) | set(EXTRA_PRIMITIVES) == set(OPS)


def build_op(name: str, channels: int, stride: int, affine: bool = True, search: bool = False) -> nn.Module:
    """Build one primitive. In the search model (``search=True``) pools get a non-affine BN, as in the reference."""
    op = OPS[name](channels, stride, affine)
    if search and "pool" in name:
        op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
    return op
