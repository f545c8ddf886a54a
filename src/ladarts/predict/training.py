"""Training an LPM: the closed-form linear stage, then Adam on a relative-error loss with early stopping."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from ladarts.predict.lpm import LPM, N_FEATURES, LPMConfig
from ladarts.runs import progress_bar


@dataclass
class FitResult:
    epochs: int
    best_epoch: int
    steps: int
    best_val_loss: float
    fit_s: float
    batch_size: int


def _batch_size(config: LPMConfig, n: int) -> int:
    return config.batch_size or int(min(1024, max(32, n // 32)))


def train_lpm(model: LPM, x_train: torch.Tensor, y_train_ms: torch.Tensor, x_val: torch.Tensor,
              y_val_ms: torch.Tensor, *, seed: int = 0, device: str | torch.device = "cpu",
              set_normalisation: bool = True, anchor_weight: float = 0.0, lr: float | None = None,
              max_epochs: int | None = None, progress: bool = False, desc: str = "fit LPM",
              staged: bool | None = None, prior_ridge: float | None = None) -> FitResult:
    """Adam on a relative-error loss with early stopping on (x_val, y_val); keeps the best epoch.

    ``set_normalisation`` fits the target mean/std on the training targets (off when fine-tuning keeps them);
    ``anchor_weight`` > 0 adds an L2 pull towards the starting weights (L2-SP, for few-shot transfer).
    ``staged`` (default: ``config.staged`` for a fresh fit) fits the linear term in closed form first;
    ``prior_ridge`` (transfer) shrinks that fit towards the current linear weights instead of towards zero.
    """
    cfg = model.config
    dev = torch.device(device)
    model.to(dev)
    g = torch.Generator().manual_seed(seed)
    ty = model.to_target(y_train_ms.double())
    if set_normalisation:
        model.y_mean.fill_(float(ty.mean()))
        model.y_std.fill_(float(ty.std()) if len(ty) > 1 and float(ty.std()) > 0 else 1.0)
    mu, sd = float(model.y_mean), float(model.y_std)
    xt = x_train.reshape(len(x_train), -1).float().to(dev)
    zt = ((ty - mu) / sd).float().to(dev)
    xv = x_val.reshape(len(x_val), -1).float().to(dev)
    zv = ((model.to_target(y_val_ms.double()) - mu) / sd).float().to(dev)
    # The loss is on the relative error rel = (pred − y) / y = r · (ẑ − z): r = std / y in ms space, r = std in
    # log space (a log-ratio is a relative error to first order).
    if cfg.output == "ms":
        rt = (sd / y_train_ms.double()).float().to(dev)
        rv = (sd / y_val_ms.double()).float().to(dev)
    else:
        rt, rv = torch.full_like(zt, sd), torch.full_like(zv, sd)

    def rel_loss(rel: torch.Tensor) -> torch.Tensor:
        if cfg.loss == "huber":
            return torch.nn.functional.huber_loss(rel, torch.zeros_like(rel), delta=cfg.huber_delta)
        return torch.mean(rel ** 2)

    anchor = [p.detach().clone() for p in model.parameters()] if anchor_weight > 0 else None
    bs = min(_batch_size(cfg, len(xt)), len(xt))
    n = len(xt)
    epochs = max_epochs or cfg.max_epochs

    def val_loss() -> float:
        model.eval()
        with torch.no_grad():
            return float(rel_loss(rv * (model.standardised(xv) - zv)))

    state = {"best": val_loss() if len(xv) else float("inf"), "best_state": copy.deepcopy(model.state_dict()),
             "best_epoch": 0, "steps": 0, "epochs": 0}
    t0 = time.perf_counter()
    bar = progress_bar(epochs, desc, progress, unit="epoch", every=50)

    def optimise(params: list[nn.Parameter], lr_: float, budget: int) -> None:
        """Adam on ``params`` until the validation loss stalls for ``patience`` epochs; keeps the best state."""
        opt = torch.optim.Adam(params, lr=lr_, weight_decay=0.0 if anchor else cfg.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(5, cfg.patience // 4))
        stale, steps0 = 0, state["steps"]
        for _ in range(budget):
            model.train()
            perm = torch.randperm(n, generator=g).to(dev)
            for i in range(0, n, bs):
                idx = perm[i : i + bs]
                loss = rel_loss(rt[idx] * (model.standardised(xt[idx]) - zt[idx]))
                if anchor is not None:
                    loss = loss + anchor_weight * sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                state["steps"] += 1
            state["epochs"] += 1
            v = val_loss() if len(xv) else float(loss)
            sched.step(v)
            if v < state["best"] - 1e-7:
                state.update(best=v, best_epoch=state["epochs"], best_state=copy.deepcopy(model.state_dict()))
                stale = 0
            else:
                stale += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(val=f"{v:.4f}", best=f"{state['best']:.4f}")
            if stale >= cfg.patience or state["steps"] - steps0 >= cfg.max_steps:
                break
        model.load_state_dict(state["best_state"])

    base_lr = lr or cfg.lr
    if staged is None:
        staged = cfg.staged and set_normalisation
    if staged and model.mlp is not None and model.linear is not None:
        # Stage 1: the linear term alone, in closed form (the MLP's last layer starts at zero, so the model is
        # linear); stage 2: everything, from there. The MLP only stays if it beats the linear fit on validation.
        # weighted ridge: exact and instant even at 100K records
        if prior_ridge is None:
            fit_linear_closed_form(model, xt, zt, rt)
        else:
            fit_linear_closed_form(model, xt, zt, rt, ridge=prior_ridge, towards_current=True)
        v = val_loss() if len(xv) else float("inf")
        state.update(best=v, best_state=copy.deepcopy(model.state_dict()))
        if anchor is not None:  # L2-SP pulls towards where the all-parameter stage starts
            anchor = [p.detach().clone() for p in model.parameters()]
        optimise(list(model.parameters()), base_lr, epochs - state["epochs"])
    else:
        optimise(list(model.parameters()), base_lr, epochs)
    if bar is not None:
        bar.close()
    model.eval()
    best, best_epoch, steps, epoch = state["best"], state["best_epoch"], state["steps"], state["epochs"]
    return FitResult(epochs=epoch, best_epoch=best_epoch, steps=steps, best_val_loss=best,
                       fit_s=time.perf_counter() - t0, batch_size=bs)


@torch.no_grad()
def fit_linear_closed_form(model: LPM, x: torch.Tensor, z: torch.Tensor, r: torch.Tensor,
                            ridge: float = 1e-3, towards_current: bool = False, irls_steps: int = 8) -> None:
    """Set the linear term to the ridge solution of z − mlp(x) ≈ linear(features) under the training loss on the
    relative error r·(ẑ − z): weighted least squares, iteratively reweighted for the Huber loss.

    The ridge shrinks towards zero, or (``towards_current``, for transfer) towards the current weights, so that
    directions the few new measurements cannot pin down keep what the source platform learned."""
    cfg = model.config
    model.eval()
    feats = linear_features(model, x)
    resid = z.double() - (model.standardised(x).double() - model.linear(feats).squeeze(-1).double())
    a = torch.cat([feats, torch.ones(len(feats), 1, device=x.device, dtype=feats.dtype)], dim=-1).double()
    lam = ridge * len(a) * float((r.double() ** 2).mean())
    diag = torch.full((a.shape[1],), lam, dtype=torch.float64, device=x.device)
    if not model._lin_pooled_only and cfg.pooled:  # per-edge weights refine the shared per-group costs: shrink more
        diag[:N_FEATURES] = cfg.edge_ridge * len(a) * float((r.double() ** 2).mean())
    diag[-1] = 0.0  # the bias is not shrunk
    reg = torch.diag(diag)
    prior = torch.zeros(a.shape[1], 1, dtype=torch.float64, device=x.device)
    if towards_current:
        prior[:-1, 0] = model.linear.weight.detach().double().ravel()
    r2 = r.double() ** 2
    w = r2.clone()
    for _ in range(irls_steps if cfg.loss == "huber" else 1):
        aw = a * w.sqrt().unsqueeze(-1)
        sol = torch.linalg.solve(aw.T @ aw + reg, aw.T @ (resid * w.sqrt()).unsqueeze(-1) + diag.unsqueeze(-1) * prior)
        rel = (a @ sol).squeeze(-1) - resid
        rel = rel * r.double()
        w = r2 * torch.clamp(cfg.huber_delta / rel.abs().clamp_min(1e-12), max=1.0)
    sol = sol.squeeze(-1)
    model.linear.weight.copy_(sol[:-1].to(model.linear.weight.dtype).unsqueeze(0))
    model.linear.bias.copy_(sol[-1:].to(model.linear.bias.dtype))


def linear_features(model: LPM, x: torch.Tensor) -> torch.Tensor:
    if model.config.pooled:
        pooled = x @ model.pool.to(x.dtype)
        return pooled if model._lin_pooled_only else torch.cat([x, pooled], dim=-1)
    return x
