"""The run folder that search and training share: checkpoints, resume, the JSONL log, seeding, progress, guards.

A run folder holds ``config.json`` (resolved), ``log.jsonl`` (one record per epoch) and ``checkpoint.pt`` (after
every epoch), plus what the job leaves at the end (``genotype.json`` for a search, ``report.json`` and the weights
for a training run). A checkpoint loads with ``torch.load(weights_only=True)``: tensors and plain containers only.
Each epoch draws its shuffling and augmentation from a generator seeded by (seed, epoch), and the global RNG state
is checkpointed, so a resumed run on the CPU replays exactly what the uninterrupted run would have done.

Under torchrun (:mod:`ladarts.distributed`) every rank checks the folder, only rank 0 writes to it, every rank
loads the checkpoint on resume, and the checkpoint holds each rank's RNG state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F

from ladarts.distributed import Context
from ladarts.errors import LadartsError, UserInputError
from ladarts.io import atomic_write, atomic_write_json, atomic_write_text

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
CHECKPOINT_VERSION = 1
#: Config fields that may differ between a run and its resumption: they change how a run is watched or where it
#: runs, never what it computes.
RESUME_FREE = frozenset({"resume", "progress", "threads", "out", "device", "workers"})
#: The value a config field added in a later version implicitly had in a run started before it existed.
LEGACY_DEFAULTS: dict[str, Any] = {"world_size": 1, "amp": None, "sync_bn": False, "label_smoothing": 0.0,
                                   "lr_schedule": "cosine", "warmup_epochs": 0, "protocol": None}


class NonFiniteLoss(LadartsError):
    """A loss or gradient became NaN or inf; the run stops (exit code 1) and keeps its last good checkpoint."""


def check_finite(value: torch.Tensor | float, what: str) -> None:
    v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if not math.isfinite(v):
        raise NonFiniteLoss(f"{what} is {v}")


class RunFolder:
    """One run's folder: where it checkpoints, logs, and how it refuses to be started twice or resumed wrongly.

    ``final`` names the file a finished run leaves (``genotype.json``, ``report.json``): a folder holding it, or
    a checkpoint, is a run, and starting it again without ``resume`` is refused. With ``require_empty`` any
    non-empty folder is refused unless resuming (training writes weights that must not mix with other files).
    ``ctx``: the process group; only its rank 0 writes here.
    """

    def __init__(self, out: str | Path, kind: str, final: str, require_empty: bool = False,
                 ctx: Context | None = None):
        self.out = Path(out)
        self.kind = kind
        self.final = final
        self.require_empty = require_empty
        self.ctx = ctx or Context()

    @property
    def checkpoint_path(self) -> Path:
        return self.out / CHECKPOINT

    @property
    def log_path(self) -> Path:
        return self.out / LOG

    def start(self, config: dict[str, Any], resume: bool) -> dict[str, Any] | None:
        """Check the folder against ``config`` and return the checkpoint to resume from (None: start afresh).

        Every rank checks (and loads the checkpoint); if one refuses, all stop. Then rank 0 creates the folder and
        removes temporary files an interrupted checkpoint write left behind."""
        error: LadartsError | None = None
        ckpt = None
        try:
            ckpt = self._check(config, resume)
        except LadartsError as e:
            error = e
        self.ctx.agree(error)
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            self._remove_stale_temporaries()
        return ckpt

    def _check(self, config: dict[str, Any], resume: bool) -> dict[str, Any] | None:
        if self.out.exists() and not self.out.is_dir():
            raise UserInputError(f"{self.out}: exists and is not a folder")
        has_run = self.checkpoint_path.exists() or (self.out / self.final).exists()
        if has_run and not resume:
            raise UserInputError(f"{self.out} already holds a {self.kind} run; pass --resume or choose another --out")
        if self.require_empty and not resume and self.out.is_dir() and any(self.out.iterdir()):
            raise UserInputError(f"{self.out}: folder exists and is not empty; pass --resume to continue it or a "
                                 "new --out")
        if not (resume and self.checkpoint_path.exists()):
            return None
        ckpt = load_checkpoint(self.checkpoint_path, self.kind)
        old = checkpoint_config(ckpt, self.checkpoint_path)
        check_world_size(old, config.get("world_size", 1), self.kind, self.out)
        diff = resume_diff(old, config)
        if diff:
            raise UserInputError(f"--resume: the {self.kind} run in {self.out} was started with different settings "
                                 f"({', '.join(diff)}); use a new --out")
        return ckpt

    def _remove_stale_temporaries(self) -> None:
        # atomic_write names its temp files ".<target>.<random>.tmp"; one left behind means a kill mid-write.
        for tmp in self.out.glob(".*.tmp"):
            try:
                tmp.unlink()
            except OSError:
                pass

    def save_checkpoint(self, epoch: int, config: dict[str, Any], state: dict[str, Any]) -> None:
        """Write ``state`` (model and optimiser state dicts...) with the epochs completed, the RNG and the config.

        A collective under torchrun: every rank's RNG state is gathered (``rng_ranks``), rank 0 writes."""
        rng = torch.get_rng_state()
        extra: dict[str, Any] = {}
        if self.ctx.enabled:
            extra["rng_ranks"] = self.ctx.gather(rng)
        if self.ctx.device.type == "cuda":  # drop path draws from the device's generator
            extra["rng_cuda_ranks"] = self.ctx.gather(torch.cuda.get_rng_state(self.ctx.device))
        if not self.ctx.is_main:
            return
        full = {"version": CHECKPOINT_VERSION, "epoch": epoch, "rng_torch": rng,
                "config_json": json.dumps(config, sort_keys=True), **extra, **state}
        atomic_write(self.checkpoint_path, lambda tmp: torch.save(full, tmp))

    def restore_rng(self, ckpt: dict[str, Any]) -> None:
        """This rank's RNG state from a checkpoint (rank 0's is ``rng_torch``, the only one a single process has)."""
        ranks = ckpt.get("rng_ranks")
        torch.set_rng_state(ranks[self.ctx.rank] if ranks is not None else ckpt["rng_torch"])
        cuda = ckpt.get("rng_cuda_ranks")
        if cuda is not None and self.ctx.device.type == "cuda":
            torch.cuda.set_rng_state(cuda[self.ctx.rank], self.ctx.device)

    def read_log(self, upto_epoch: int) -> list[dict[str, Any]]:
        """The log records of the epochs a checkpoint covers (a later, unsaved epoch's record is dropped)."""
        if not self.log_path.exists():
            return []
        try:
            records = [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]
        except ValueError:
            raise UserInputError(f"{self.log_path}: not a JSON-lines log") from None
        return [r for r in records if r.get("epoch", upto_epoch) < upto_epoch]

    def write_log(self, records: Iterable[dict[str, Any]]) -> None:
        if self.ctx.is_main:
            atomic_write_text(self.log_path, "".join(json.dumps(r) + "\n" for r in records))

    def write_json(self, name: str, obj: Any) -> None:
        """A JSON artefact of the run (config.json, genotype.json, report.json), written by rank 0 alone."""
        if self.ctx.is_main:
            atomic_write_json(self.out / name, obj)


def load_checkpoint(path: str | Path, kind: str = "search") -> dict[str, Any]:
    """A checkpoint, loaded without unpickling anything but tensors and plain containers; its version checked."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure here means an unusable file
        raise UserInputError(f"{path}: not a loadable {kind} checkpoint ({e.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("version") != CHECKPOINT_VERSION:
        found = ckpt.get("version") if isinstance(ckpt, dict) else None
        raise UserInputError(f"{path}: {kind} checkpoint version {found}, this ladarts reads {CHECKPOINT_VERSION}")
    return ckpt


def checkpoint_config(ckpt: dict[str, Any], path: str | Path) -> dict[str, Any]:
    try:
        return json.loads(ckpt["config_json"])
    except (KeyError, TypeError, ValueError):
        raise UserInputError(f"{path}: has no readable config") from None


def check_world_size(old: dict[str, Any], world_size: int, kind: str, out: str | Path) -> None:
    """A run resumes with the number of processes it started with: the data shards, the per-process batch and the
    per-rank random streams all depend on it."""
    was = old.get("world_size", LEGACY_DEFAULTS["world_size"])
    if was != world_size:
        how = f"torchrun --nproc_per_node {was} (or --nproc {was})" if was > 1 else "one process (no torchrun)"
        raise UserInputError(f"--resume: the {kind} run in {out} ran on {was} process{'es' if was > 1 else ''}, "
                             f"not {world_size}; resume it with {how}")


def recorded_world_size_check(out: str | Path, world_size: int, kind: str) -> None:
    """The world-size check of a resume, before any process is started (the ``--nproc`` launcher's)."""
    path = Path(out) / CHECKPOINT
    if path.exists():
        check_world_size(checkpoint_config(load_checkpoint(path, kind), path), world_size, kind, out)


def resume_diff(old: dict[str, Any], new: dict[str, Any], free: frozenset[str] = RESUME_FREE) -> list[str]:
    """The fields of the new config (outside ``free``) whose values differ from the run's original config."""
    return [k for k in new if k not in free and old.get(k, LEGACY_DEFAULTS.get(k)) != new[k]]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """Each epoch's shuffling and augmentation draw from their own seeded stream, so a resumed run replays them."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def _derived_seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


def rank_generator(seed: int, epoch: int, rank: int, epoch_gen: torch.Generator) -> torch.Generator:
    """The stream a rank draws its augmentation from once the epoch's shared permutations are drawn: rank 0
    continues the epoch's own stream (one process draws exactly what it drew before distribution existed), every
    other rank its own seeded stream (so two ranks never crop their different images alike)."""
    return epoch_gen if rank == 0 else torch.Generator().manual_seed(_derived_seed(seed, epoch, rank))


def seed_rank(seed: int, rank: int) -> None:
    """After the model is built (identically on every rank), give ranks other than 0 their own global stream (drop
    path); rank 0 keeps the one seeded by ``seed``."""
    if rank:
        torch.manual_seed(_derived_seed(seed, "rank", rank))


def is_terminal() -> bool:
    return sys.stderr.isatty()


class LineProgress:
    """tqdm's interface for a log file, nohup, CI or a notebook: one line every ``every`` units (and at the end),
    with the rate and the time left, instead of a bar redrawn in place that such outputs garble or never show."""

    def __init__(self, total: int, desc: str, initial: int = 0, unit: str = "it", every: int = 1):
        self.total, self.desc, self.unit, self.every = total, desc, unit, max(1, every)
        self.n = self.start = initial
        self.t0 = time.monotonic()
        self.postfix = ""

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in kw.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        if (self.n - self.start) % self.every == 0 or self.n >= self.total:
            self._line()

    def _line(self) -> None:
        elapsed = time.monotonic() - self.t0
        done = self.n - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.n) / rate if rate > 0 else float("nan")
        sys.stderr.write(f"{self.desc}: {self.n}/{self.total} {self.unit}s, {_duration(elapsed)} elapsed, "
                         f"ETA {_duration(eta)}{'; ' + self.postfix if self.postfix else ''}\n")
        sys.stderr.flush()

    def close(self) -> None:
        pass


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def progress_bar(total: int, desc: str, enabled: bool, initial: int = 0, unit: str = "it", every: int = 1,
                 lines: bool | None = None) -> Any:
    """A tqdm bar on a terminal, lines (:class:`LineProgress`, one per ``every`` units) elsewhere, None when not
    ``enabled``. ``lines`` forces one form."""
    if not enabled:
        return None
    if lines if lines is not None else not is_terminal():
        return LineProgress(total, desc, initial, unit, every)
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True, file=sys.stderr)


def evaluate_classifier(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                        batch_size: int = 256, ctx: Context | None = None) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a classifier in eval mode (its train/eval mode is restored after), on the
    model's device. Under torchrun each rank evaluates every world-th sample and the sums are all-reduced."""
    ctx = ctx or Context()
    if ctx.world_size > 1:
        x, y = x[ctx.rank::ctx.world_size], y[ctx.rank::ctx.world_size]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    try:
        with torch.no_grad():
            for i in range(0, len(y), batch_size):
                yb = y[i:i + batch_size].to(device)
                logits = model(x[i:i + batch_size].to(device))
                loss += float(F.cross_entropy(logits, yb, reduction="sum"))
                correct += int((logits.argmax(1) == yb).sum())
    finally:
        model.train(was_training)
    if not ctx.enabled:
        return loss / len(y), correct / len(y)
    loss, correct, n = ctx.sum([loss, correct, len(y)])
    return loss / n, correct / n


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(amp: str | None, sync_bn: bool, device: str, order: int = 1) -> None:
    """The checks of ``--amp`` and ``--sync-bn`` (search and train share them)."""
    if amp is not None and amp not in AMP_DTYPES:
        raise UserInputError(f"--amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
    if amp is not None and order == 2:
        raise UserInputError("--amp works with the first-order search only: the second-order step's finite-difference "
                             "Hessian-vector product needs fp32 activations")
    if sync_bn and not device.startswith("cuda"):
        raise UserInputError("--sync-bn needs --device cuda: PyTorch's SyncBatchNorm has no CPU (gloo) kernel; on the "
                             "CPU each process keeps its own batch statistics")


class Precision:
    """A run's arithmetic: fp32 (``amp`` None), or autocast to bf16 or fp16; fp16 adds a GradScaler, since its
    small gradients would underflow (a step whose scaled gradients overflow is skipped and the scale lowered)."""

    def __init__(self, amp: str | None, device: torch.device):
        if amp is not None and amp not in AMP_DTYPES:
            raise UserInputError(f"--amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
        self.amp = amp
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None

    def autocast(self) -> Any:
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=AMP_DTYPES[self.amp])

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()

    def update(self) -> None:
        """Once per iteration, after every optimiser of the iteration has stepped."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A batch on the run's device; on CUDA through pinned memory, so that the copy overlaps the host's next work
    (a DataLoader's batches are pinned already)."""
    if device.type == "cpu":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def use_fast_kernels(device: torch.device) -> None:
    """On CUDA, let cuDNN time its convolution algorithms once and keep the fastest for the run's fixed shapes, as the
    references do (``cudnn.benchmark = True`` in DARTS and PC-DARTS train_search.py and train_imagenet.py)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def set_threads(threads: int | None) -> None:
    """Torch's intra-op threads for this run; None keeps torch's default."""
    if threads is not None:
        if threads < 1:
            raise UserInputError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)

