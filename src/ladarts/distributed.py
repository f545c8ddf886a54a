"""torch.distributed for search and training: setup from torchrun's environment, the averaging of the α/β
gradients, the cross-rank identity check, DistributedSampler-style shards, and the ``--nproc`` launcher.

The engines are PyTorch's: torchrun starts and supervises the processes (one that dies makes torchrun stop the
others), DDP averages the weight gradients, ``dist.all_reduce`` averages the architecture gradients. This module
knows nothing of models or data; it hands the search and the trainer a :class:`Context` (a plain single process
when not under torchrun, so that one process runs exactly the code it ran before distribution existed).
"""

from __future__ import annotations

import atexit
import datetime
import gc
import hashlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.distributed as dist
from torch import nn

from ladarts.errors import LadartsError, UserInputError

#: Seconds a collective waits for a missing rank before it fails. torchrun already stops every worker as soon as
#: one dies; this bounds the wait where no agent sees the death (a rank on another node that hangs, a lost node).
TIMEOUT_ENV = "LADARTS_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
#: What torchrun sets in each worker's environment.
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class RankMismatch(LadartsError):
    """Tensors that must be bit-identical on every rank (α, β, the weights) differ: the run stops, never drifts."""


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank, the world size, its device, and the process group's backend (None when
    there is no process group: a plain single process, whose every collective below is a no-op)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    @property
    def is_main(self) -> bool:
        """Rank 0: the only writer of the run folder and the only one that prints."""
        return self.rank == 0

    def _comm(self, t: torch.Tensor) -> torch.Tensor:
        # NCCL reduces device tensors only; gloo reduces CPU tensors (and CUDA ones by copying them).
        return t.to(self.device) if self.backend == "nccl" else t.cpu()

    def average_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace each tensor by its mean over the ranks, in place, with one all-reduce. Every rank gets the same
        bits: gloo's and NCCL's ring and tree all-reduces compute each element once and send it to all (and
        :meth:`check_identical` would say so if they did not)."""
        if not self.enabled or not tensors:
            return
        flat = self._comm(torch.cat([t.detach().reshape(-1).float() for t in tensors]))
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.world_size)
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view(t.shape))
            offset += n

    def sum(self, values: Sequence[float]) -> list[float]:
        """Each value summed over the ranks (float64): the epoch's loss and accuracy sums for the log."""
        if not self.enabled:
            return [float(v) for v in values]
        t = self._comm(torch.tensor([float(v) for v in values], dtype=torch.float64))
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.cpu()]

    def gather(self, t: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of a tensor of the same shape and dtype on each rank (e.g. its RNG state), on the CPU."""
        if not self.enabled:
            return [t.clone()]
        local = self._comm(t.contiguous())
        out = [torch.empty_like(local) for _ in range(self.world_size)]
        dist.all_gather(out, local)
        return [o.cpu() for o in out]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def agree(self, error: BaseException | None) -> None:
        """A collective check: if any rank failed (``error``), every rank raises; the failing ranks their own error,
        the others a line naming the ranks that failed. Keeps a refusal on one rank from leaving the others waiting
        in the next collective."""
        if not self.enabled:
            if error is not None:
                raise error
            return
        failed = [r for r, f in enumerate(self.gather(torch.tensor([int(error is not None)]))) if int(f)]
        if error is not None:
            raise error
        if failed:
            raise LadartsError(f"rank{'s' if len(failed) > 1 else ''} {', '.join(map(str, failed))} refused to "
                               "start (see its message)")

    def check_identical(self, groups: dict[str, Sequence[torch.Tensor]], when: str) -> None:
        """Raise :class:`RankMismatch` unless each group of tensors is bit-identical on every rank: one all-gather of a
        sha256-derived int64 per group."""
        if not self.enabled:
            return
        local = torch.tensor([digest(ts) for ts in groups.values()], dtype=torch.int64)
        per_rank = self.gather(local)
        for i, name in enumerate(groups):
            ref = int(per_rank[0][i])
            bad = [r for r in range(1, self.world_size) if int(per_rank[r][i]) != ref]
            if bad:
                raise RankMismatch(f"{name} differ across processes {when}: rank{'s' if len(bad) > 1 else ''} "
                                   f"{', '.join(map(str, bad))} disagree{'' if len(bad) > 1 else 's'} with rank 0; "
                                   "the run stops rather than drift")

    def broadcast_buffers_(self, module: nn.Module) -> None:
        """Make every rank hold rank 0's buffers (BN running statistics), e.g. before evaluating the model rank 0
        checkpoints."""
        if not self.enabled:
            return
        for b in module.buffers():
            dist.broadcast(b.data, src=0)

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's share of an epoch's permutation, as DistributedSampler(drop_last=True) does: the permutation
        is truncated to a multiple of the world size (at most world−1 samples left out this epoch, others the next),
        then every world-th index from this rank's offset. With one process, the permutation itself."""
        if self.world_size == 1:
            return indices
        n = len(indices) - len(indices) % self.world_size
        return indices[:n][self.rank::self.world_size]

    def wrap(self, module: nn.Module, exclude: Sequence[nn.Parameter] = ()) -> nn.Module:
        """``module`` in DistributedDataParallel (the module itself without a process group). ``exclude``: parameters
        DDP must not reduce (α and β, whose gradients are averaged by :meth:`average_` in the α step); DDP registers
        only parameters that require grad when it is built, so they are frozen while it is."""
        if not self.enabled:
            return module
        from torch.nn.parallel import DistributedDataParallel

        flags = [p.requires_grad for p in exclude]
        try:
            for p in exclude:
                p.requires_grad_(False)
            return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda"
                                           else None)
        finally:
            for p, f in zip(exclude, flags):
                p.requires_grad_(f)


def digest(tensors: Sequence[torch.Tensor]) -> int:
    """A signed 64-bit integer from the sha256 of the tensors' bytes (any dtype, any layout, any device)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().reshape(-1).contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "little", signed=True)


def under_torchrun() -> bool:
    return all(v in os.environ for v in TORCHRUN_VARS)


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except (KeyError, ValueError):
        raise UserInputError(f"torchrun environment: {name} is missing or not an integer") from None


def resolve_device(device: str, local_rank: int | None = None) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a torch.device; under torchrun ``cuda`` is ``cuda:LOCAL_RANK``."""
    if device == "cpu":
        return torch.device("cpu")
    if device != "cuda" and not (device.startswith("cuda:") and device[5:].isdigit()):
        raise UserInputError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if not torch.cuda.is_available():
        raise UserInputError(f"--device {device}: no CUDA device is visible to this PyTorch ({torch.__version__})")
    if local_rank is not None:
        if device != "cuda" and int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
            raise UserInputError(f"--device {device}: under torchrun pass --device cuda; each process takes "
                                 "cuda:LOCAL_RANK")
        index = local_rank if device == "cuda" else int(device[5:])
    else:
        index = torch.cuda.current_device() if device == "cuda" else int(device[5:])
    if index >= torch.cuda.device_count():
        raise UserInputError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)


def timeout_s() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UserInputError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return value


def setup(device: str = "cpu") -> Context:
    """The process group from torchrun's environment (gloo on the CPU, NCCL on CUDA, collectives that give up after
    :data:`DEFAULT_TIMEOUT_S`), or a plain single-process context when not under torchrun. Idempotent: a second call
    reuses the group."""
    if not under_torchrun():
        return Context(device=resolve_device(device))
    rank, world, local = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    dev = resolve_device(device, local)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dist.is_initialized():
        if dist.get_backend() != backend:
            raise UserInputError(f"this process group runs {dist.get_backend()}, --device {device} needs {backend}")
    else:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s()))
        atexit.register(_shutdown)
    return Context(rank, world, local, backend, dev)


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()  # frees groups kept by reference cycles: fewer, not no, aborts at exit (see exit_rank)


def exit_rank(code: int) -> None:
    """End this torchrun rank with ``code`` once its work is done, skipping C++ static destruction: with gloo, 2 of
    10 finished 2-rank runs aborted there ("terminate called without an active exception", SIGABRT, no Python frame
    left), which torchrun reports as a failed job; destroying the group and collecting garbage first still left 1 in
    39. The group is destroyed and the output flushed before ``os._exit``. Returns when no group is up."""
    if not dist.is_initialized():
        return
    _shutdown()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def device_count(device: str) -> int:
    """How many processes one node can run: CUDA devices for a CUDA run, CPU cores for gloo on the CPU."""
    if device.startswith("cuda"):
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    return os.cpu_count() or 1


def check_nproc(nproc: int, device: str) -> None:
    if under_torchrun():
        raise UserInputError("--nproc starts torchrun itself; under torchrun leave it out")
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise UserInputError(f"--nproc must be a positive integer, got {nproc!r}")
    available = device_count(device)
    if nproc > available:
        what = "CUDA devices" if device.startswith("cuda") else "CPU cores (gloo runs one process per core)"
        raise UserInputError(f"--nproc {nproc} is more than this machine's {available} {what}")


def without_flag(argv: Sequence[str], flag: str) -> list[str]:
    """``argv`` without ``flag VALUE`` / ``flag=VALUE``: the command line each worker gets."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == flag:
            skip = True
        elif not a.startswith(flag + "="):
            out.append(a)
    return out


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m ladarts ARGV`` in ``nproc`` processes on this node under torchrun (its standalone rendezvous
    picks a free port) and return the exit code; a failed rank's own message is on stderr, and this adds one line
    naming it instead of torchrun's report."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    # torchrun's default is one thread each, with a warning; split the node's cores instead (--threads overrides)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    args = parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "ladarts", *argv])
    try:
        run(args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        how = (f"exit code {failure.exitcode}" if failure.exitcode >= 0
               else f"signal {failure.signal_name()}")
        sys.stderr.write(f"ladarts: error: rank {rank} of {nproc} failed ({how}); the others were stopped\n")
        return failure.exitcode if failure.exitcode > 0 else 1
    return 0
