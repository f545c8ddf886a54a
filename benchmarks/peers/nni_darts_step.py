"""One first-order DARTS search step of NNI 3.0 on the CPU: time per step and peak RSS of the process.

Runs inside the NNI venv (``benchmarks/peers/setup_nni.sh``), never inside ladarts' own. NNI's own pipeline is used
as its tutorial does: the ``DARTS`` model space (width C, ``num_cells`` cells, CIFAR stem), mutated into a supernet
by ``DartsStrategy``, trained by its Lightning module (α step on a validation batch, then w step on a training
batch), timed per training step by a Lightning callback. Prints one JSON line.

    /tmp/nni-venv/bin/python benchmarks/peers/nni_darts_step.py --channels 16 --cells 8 --batch-size 64 --steps 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
import warnings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--cells", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    import logging

    import nni
    import pytorch_lightning as pl
    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.hub.pytorch import DARTS as DartsSpace
    from nni.nas.strategy import DARTS as DartsStrategy
    from torch.utils.data import TensorDataset

    logging.getLogger("nni").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    n = args.batch_size * args.steps
    s = args.input_size
    train = TensorDataset(torch.randn(n, 3, s, s), torch.randint(0, 10, (n,)))
    valid = TensorDataset(torch.randn(n, 3, s, s), torch.randint(0, 10, (n,)))

    class StepTimer(pl.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t0 = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
            self._t0 = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
            self.times.append(time.perf_counter() - self._t0)

    timer = StepTimer()
    space = DartsSpace(width=args.channels, num_cells=args.cells, dataset="cifar")
    evaluator = Classification(
        learning_rate=0.025, weight_decay=3e-4, optimizer=torch.optim.SGD,
        train_dataloaders=DataLoader(train, batch_size=args.batch_size, shuffle=False),
        val_dataloaders=DataLoader(valid, batch_size=args.batch_size, shuffle=False),
        max_epochs=1, limit_train_batches=args.steps, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
        callbacks=[timer], num_classes=10)
    strategy = DartsStrategy()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model = strategy.mutate_model(space)
    n_params = sum(p.numel() for p in model.parameters())
    evaluator = strategy.mutate_evaluator(evaluator)
    evaluator.evaluate(model)
    measured = timer.times[1:] if len(timer.times) > 1 else timer.times
    print(json.dumps({
        "peer": f"nni {nni.__version__}", "torch": torch.__version__, "channels": args.channels, "cells": args.cells,
        "batch_size": args.batch_size, "input_size": s, "threads": args.threads, "params": n_params,
        "steps": timer.times, "step_s_median": statistics.median(measured),
        "rss_before_mb": rss_before, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
