"""One bilevel step of DARTS: the α step (first or second order, with an optional latency term) and the w step.

The α step differentiates the validation loss with respect to α/β only (``torch.autograd.grad``): the reference
calls ``backward()`` and so also computes weight gradients it then throws away. The latency term is added to α's
gradient directly; it depends on α/β alone, so its gradient cannot reach w.

Under torchrun the α step runs on the unwrapped supernet (``autograd.grad`` would bypass DDP's hooks anyway) and
averages across ranks, with one all-reduce each: the α/β gradient (latency term included) before the Adam step,
and, in the second-order step, the training gradient of w (so that the virtual step w' is the same on every rank)
and ∇_{w'} L_val (so that the finite-difference Hessian-vector product uses the same vector and radius). The
average of the per-rank hypergradients is then the hypergradient of the mean losses. The w step goes through the
DDP wrapper with ``backward()``, so DDP averages the weight gradients.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call

from ladarts.runs import NonFiniteLoss, Precision, check_finite
from ladarts.search.objectives import LatencyObjective
from ladarts.space.supernet import Supernet


@contextlib.contextmanager
def frozen(params: Sequence[torch.nn.Parameter]) -> Iterator[None]:
    """Stop autograd tracking ``params`` for a forward pass whose gradient is wanted for other tensors only.

    Autograd then keeps no activation that only their gradient would need (in the α step: every depthwise conv's
    output, kept for the pointwise conv's weight gradient; in the w step: every op output, kept for ∂/∂α of the
    MixedOp's weighted sum). The gradients that are computed are unchanged; peak memory falls.
    """
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)


@dataclass
class ArchStats:
    loss: float
    lat_ms: float | None
    lat_term: float | None


class Architect:
    """Updates α (and β) with Adam on the validation split, first order or unrolled second order."""

    def __init__(self, model: Supernet, lr: float = 3e-4, betas: tuple[float, float] = (0.5, 0.999),
                 weight_decay: float = 1e-3, order: int = 1, objective: LatencyObjective | None = None,
                 w_momentum: float = 0.9, w_weight_decay: float = 3e-4, fd_epsilon: float = 0.01,
                 average: Callable[[Sequence[torch.Tensor]], None] | None = None,
                 precision: Precision | None = None):
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order}")
        if order == 2 and precision is not None and precision.amp is not None:
            raise ValueError("mixed precision works with the first-order step only")
        self.model, self.order, self.objective = model, order, objective
        # ``average``: the in-place mean over ranks (Context.average_); None in a single process.
        self.average = average or (lambda tensors: None)
        self.precision = precision or Precision(None, torch.device("cpu"))
        self.w_momentum, self.w_weight_decay = w_momentum, w_weight_decay
        self.fd_epsilon = fd_epsilon  # the finite-difference step is ε/‖∇_w' L_val‖; the reference uses ε = 0.01
        self.optimizer = torch.optim.Adam(model.arch_parameters(), lr=lr, betas=betas, weight_decay=weight_decay)

    def arch_gradients(self, x_val: torch.Tensor, y_val: torch.Tensor, x_train: torch.Tensor | None = None,
                       y_train: torch.Tensor | None = None, eta: float = 0.0,
                       w_optimizer: torch.optim.Optimizer | None = None) -> tuple[list[torch.Tensor], ArchStats]:
        """∇_α of L_val (+ the latency term), without touching any weight gradient."""
        arch = self.model.arch_parameters()
        prec = self.precision
        if self.order == 1:
            with frozen(self.model.weight_parameters()):
                with prec.autocast():
                    loss = F.cross_entropy(self.model(x_val), y_val)
                check_finite(loss, "the architecture (validation) loss")
                grads = list(torch.autograd.grad(prec.scale(loss), arch))
        else:
            assert x_train is not None and y_train is not None
            loss, grads = self._unrolled_gradients(x_train, y_train, x_val, y_val, eta, w_optimizer)
        lat_ms = term_v = None
        if self.objective is not None:
            term, lat = self.latency()
            check_finite(lat, "the predicted latency LAT(α)")
            lat_grads = torch.autograd.grad(prec.scale(term), arch, allow_unused=True)
            grads = [g if lg is None else g + lg for g, lg in zip(grads, lat_grads)]
            lat_ms, term_v = float(lat.detach()), float(term.detach())
        self.average(grads)
        if prec.scaler is None:  # with fp16 an overflow of the scaled gradient skips the step (GradScaler)
            for g in grads:
                if not bool(torch.isfinite(g).all()):
                    raise NonFiniteLoss("the architecture gradient has NaN or inf entries")
        return grads, ArchStats(float(loss.detach()), lat_ms, term_v)

    def latency(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss term, LAT(α) in ms) of the current α/β. The cost runs on the CPU (an LPM or a table is tiny); its
        gradient flows back to α/β on the run's device."""
        assert self.objective is not None
        return self.objective(*(t if t is None else t.cpu() for t in self.model.arch_tensors()))

    def step(self, x_val: torch.Tensor, y_val: torch.Tensor, x_train: torch.Tensor | None = None,
             y_train: torch.Tensor | None = None, eta: float = 0.0,
             w_optimizer: torch.optim.Optimizer | None = None) -> ArchStats:
        grads, stats = self.arch_gradients(x_val, y_val, x_train, y_train, eta, w_optimizer)
        for p, g in zip(self.model.arch_parameters(), grads):
            p.grad = g
        self.precision.step(self.optimizer)
        for p in self.model.arch_parameters():
            p.grad = None
        return stats

    def _unrolled_gradients(self, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor,
                            y_val: torch.Tensor, eta: float,
                            w_optimizer: torch.optim.Optimizer | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Second-order DARTS: α-gradient of L_val(w', α) with w' = w − η(momentum + ∇_w L_train + wd·w), minus
        η times the Hessian-vector product ∇²_{α,w} L_train · ∇_{w'} L_val by central finite differences."""
        model = self.model
        named_w = model.named_weight_parameters()
        ws = [p for _, p in named_w]
        arch = model.arch_parameters()
        loss_tr = F.cross_entropy(model(x_train), y_train)
        check_finite(loss_tr, "the training loss of the unrolled step")
        dws = torch.autograd.grad(loss_tr, ws)
        self.average(dws)
        w_prime = []
        for p, g in zip(ws, dws):
            buf = w_optimizer.state.get(p, {}).get("momentum_buffer") if w_optimizer is not None else None
            moment = buf * self.w_momentum if buf is not None else torch.zeros_like(p)
            w_prime.append((p.detach() - eta * (moment + g + self.w_weight_decay * p.detach())).requires_grad_())
        params = {n: wp for (n, _), wp in zip(named_w, w_prime)}
        params.update({n: getattr(model, n) for n in model.ARCH_NAMES if getattr(model, n) is not None})
        buffers = {n: b.clone() for n, b in model.named_buffers()}  # the virtual step leaves the BN stats alone
        loss_val = F.cross_entropy(functional_call(model, (params, buffers), (x_val,)), y_val)
        check_finite(loss_val, "the unrolled validation loss")
        g_all = torch.autograd.grad(loss_val, [*arch, *w_prime])
        g_arch, dw_prime = list(g_all[: len(arch)]), g_all[len(arch):]
        self.average(dw_prime)
        r = self.fd_epsilon / torch.cat([d.reshape(-1) for d in dw_prime]).norm()
        saved = [p.detach().clone() for p in ws]
        grads_pm = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for p, s, d in zip(ws, saved, dw_prime):
                    p.copy_(s + sign * r * d)
            with frozen(ws):
                loss = F.cross_entropy(model(x_train), y_train)
                grads_pm.append(torch.autograd.grad(loss, arch))
        with torch.no_grad():
            for p, s in zip(ws, saved):
                p.copy_(s)
        grads = [g - eta * (gp - gn) / (2 * r) for g, gp, gn in zip(g_arch, *grads_pm)]
        return loss_val, grads


def weight_step(model: Supernet, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                grad_clip: float = 5.0, forward: torch.nn.Module | None = None,
                precision: Precision | None = None) -> tuple[float, int]:
    """One SGD step on w (α fixed): returns (loss, number of correct predictions).

    ``forward``: the module the batch goes through (the DDP wrapper of ``model`` under torchrun, whose backward
    averages the weight gradients); ``model`` itself by default."""
    prec = precision or Precision(None, x.device)
    ws = model.weight_parameters()
    with frozen(model.arch_parameters()), prec.autocast():
        logits = (forward or model)(x)
        loss = F.cross_entropy(logits, y)
    check_finite(loss, "the training (weight) loss")
    prec.scale(loss).backward()  # α is frozen in this graph: only w receives gradients
    prec.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(ws, grad_clip)
    prec.step(optimizer)
    prec.update()
    for p in ws:
        p.grad = None
    return float(loss.detach()), int((logits.argmax(1) == y).sum())
