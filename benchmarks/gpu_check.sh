#!/usr/bin/env bash
# The GPU check: one script, under 8 minutes on one GPU, ending in one markdown table.
#
#   benchmarks/gpu_check.sh                  # on cuda:0
#   DEVICE=cpu benchmarks/gpu_check.sh       # a dry run of the script on the CPU, tiny sizes (checks the script only)
#   COMPILE=1 benchmarks/gpu_check.sh        # also eager vs torch.compile on a training step (adds minutes)
#
# Rows of the table:
#   1. the CUDA timing noise floor: 100 architectures x 2 independent runs of the C=36 x 20 network at batch 1
#      (ladarts measure --run a; measure --from-run a --run b; ladarts db noise);
#   2. an LPM fitted on 300 architectures of that platform, scored on the other 100 (ladarts fit; ladarts evaluate);
#   3. search step time and peak GPU memory, DARTS and PC-DARTS supernets (C=16 x 8 cells, 32 px, first order), at
#      batch 64 and 256, fp32 and bf16 autocast;
#   4. a 1-process torchrun search against the plain search (genotype, largest |alpha difference|).
# Environment: DEVICE (cuda:0), PY (.venv/bin/python if present, else python3), WORK (a new temp folder; kept, it
# holds every JSON the table is made from), PAIRS (timed pairs per architecture, 20).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda:0}
if [[ -z "${PY:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
WORK=${WORK:-$(mktemp -d -t ladarts-gpu-check.XXXXXX)}
mkdir -p "$WORK"
DB="$WORK/latency.db"
START=$SECONDS
if [[ "$DEVICE" == cpu ]]; then
  N_NOISE=6; N_LPM=24; NET=(--channels 8 --cells 5 --threads 1); PAIRS=${PAIRS:-3}
  STEP=(4 3 16 "8,16"); SEARCH_NET=(--channels 4 --cells 3 --threads 1)
else
  N_NOISE=100; N_LPM=400; NET=(); PAIRS=${PAIRS:-20}
  STEP=(16 8 32 "64,256"); SEARCH_NET=(--channels 8 --cells 5)
fi
export PYTHONWARNINGS=ignore
ladarts() { "$PY" -m ladarts "$@"; }
stage() { echo "[gpu_check $(( SECONDS - START ))s] $*" >&2; }

"$PY" - "$DEVICE" <<'EOF'
import sys, torch
dev = sys.argv[1]
if dev != "cpu" and not torch.cuda.is_available():
    sys.exit(f"gpu_check: {dev} asked for, but this PyTorch ({torch.__version__}) sees no CUDA device; "
             "DEVICE=cpu runs the dry mode")
EOF

stage "noise floor: $N_NOISE architectures, run a"
ladarts measure --db "$DB" --device "$DEVICE" "${NET[@]}" --n "$N_NOISE" --run a --pairs "$PAIRS" --no-progress \
  --json > "$WORK/measure_a.json"
stage "noise floor: the same architectures again, run b"
ladarts measure --db "$DB" --device "$DEVICE" "${NET[@]}" --from-run a --run b --pairs "$PAIRS" --no-progress \
  --json > "$WORK/measure_b.json"
ladarts db noise "$DB" --run-a a --run-b b --json > "$WORK/noise.json"

stage "LPM: run a extended to $N_LPM architectures"
ladarts measure --db "$DB" --device "$DEVICE" "${NET[@]}" --n "$N_LPM" --run a --pairs "$PAIRS" --no-progress \
  --json > "$WORK/measure_lpm.json"
FIT_DEVICE=$DEVICE
stage "LPM: fit on $(( N_LPM * 3 / 4 )), hold out $(( N_LPM / 4 ))"
# a refused fit (ladarts checks the LPM it writes) is a row of the table, not the end of the check
if ladarts fit --db "$DB" --run a --train-size $(( N_LPM * 3 / 4 )) --test-fraction 0.25 --out "$WORK/lpm" \
     --device "$FIT_DEVICE" --no-progress --json > "$WORK/fit.json" 2> "$WORK/fit.err"; then
  ladarts evaluate --lpm "$WORK/lpm" --db "$DB" --run a --json > "$WORK/evaluate.json"
else
  cat "$WORK/fit.err" >&2
fi

stage "search steps: ${STEP[*]}"
"$PY" - "$DEVICE" "${STEP[@]}" > "$WORK/steps.json" <<'EOF'
import json, sys, time
import torch
from ladarts.runs import Precision, use_fast_kernels
from ladarts.search import Architect, weight_step
from ladarts.space.supernet import Supernet

dev = torch.device(sys.argv[1])
channels, cells, size = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
batches = [int(b) for b in sys.argv[5].split(",")]
warmup, steps = 3, 5
cuda = dev.type == "cuda"
use_fast_kernels(dev)
if not cuda:
    torch.set_num_threads(1)  # the dry run: spinning OpenMP threads on a busy machine would time the machine


def sync():
    if cuda:
        torch.cuda.synchronize(dev)


rows = []
for method in ("darts", "pc-darts"):
    for b in batches:
        for amp in (None, "bf16"):
            torch.manual_seed(0)
            net = Supernet(channels, 10, cells, 3, method=method).to(dev)
            prec = Precision(amp, dev)
            prec.prepare(net)
            w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
            arch = Architect(net, order=1, precision=prec)
            xw, xa = (torch.randn(b, 3, size, size, device=dev) for _ in range(2))
            yw, ya = (torch.randint(0, 10, (b,), device=dev) for _ in range(2))
            if cuda:
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(dev)
            row = {"method": method, "batch": b, "amp": amp or "fp32"}
            try:
                for i in range(warmup + steps):
                    if i == warmup:
                        sync()
                        t0 = time.perf_counter()
                    arch.step(xa, ya)
                    weight_step(net, w_opt, xw, yw, 5.0, precision=prec)
                sync()
                row["step_s"] = (time.perf_counter() - t0) / steps
                row["peak_gib"] = torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else None
            except torch.OutOfMemoryError:
                row["step_s"], row["peak_gib"] = None, "OOM"
            rows.append(row)
            del net, arch, w_opt, xw, xa
print(json.dumps(rows))
EOF

stage "a 1-process torchrun search against the plain search"
SEARCH=(search --dataset synthetic --epochs 2 "${SEARCH_NET[@]}" --batch-size 32 --seed 3 --device "$DEVICE"
        --no-progress --json)
ladarts "${SEARCH[@]}" --out "$WORK/search_plain" > /dev/null
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 \
  -m ladarts "${SEARCH[@]}" --out "$WORK/search_torchrun" > /dev/null

if [[ "${COMPILE:-0}" == 1 ]]; then
  stage "eager vs torch.compile, one training step of DARTS_V2 (CIFAR network)"
  "$PY" - "$DEVICE" > "$WORK/compile.json" <<'EOF'
import json, sys, time
import torch
import torch.nn.functional as F
from ladarts.runs import use_fast_kernels
from ladarts.space import ZOO, build_network, network_config

dev = torch.device(sys.argv[1])
small = dev.type == "cpu"
use_fast_kernels(dev)
if small:
    torch.set_num_threads(1)
cfg = network_config("cifar", channels=16 if small else 36, cells=8 if small else 20, input_size=16 if small else 32)
b = 16 if small else 96
out = {}
for mode in ("eager", "compiled"):
    torch.manual_seed(0)
    net = build_network(ZOO["DARTS_V2"], cfg).to(dev, memory_format=torch.channels_last)
    x = torch.randn(b, 3, cfg.input_size, cfg.input_size, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (b,), device=dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9)
    f = torch.compile(net) if mode == "compiled" else net

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(f(x), y).backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(10):
        step()
    out[mode] = {"first_step_s": first, "step_s": (time.perf_counter() - t0) / 10, "batch": b}
print(json.dumps(out))
EOF
fi

stage "done; the table"
"$PY" - "$WORK" "$DEVICE" "$(( SECONDS - START ))" <<'EOF'
import json, os, sys
from datetime import datetime, timezone
from pathlib import Path

import torch

work, dev, seconds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
load = lambda name: json.loads((work / name).read_text())
noise, steps = load("noise.json"), load("steps.json")
name = torch.cuda.get_device_name(torch.device(dev)) if dev != "cpu" else "CPU (dry run)"
print(f"\n## ladarts GPU check: {name}, torch {torch.__version__}, "
      f"{datetime.now(timezone.utc).isoformat(timespec='seconds')}, {seconds} s; files in {work}\n")
print("| check | figure |")
print("|---|---|")
r = noise["latency_ms"]
print(f"| noise floor: {r['n']} architectures x 2 runs, batch 1 | MAPE {r['mape_sym_pct']:.2f}%, "
      f"Kendall τ-b {r['kendall_tau_b']:.3f} (raw median: MAPE {noise['median_ms']['mape_sym_pct']:.2f}%) |")
if (work / "evaluate.json").exists():
    m, fit = load("evaluate.json")["metrics"], load("fit.json")
    print(f"| LPM fitted on {fit['n_train']} architectures, scored on the {m['n']} it never saw | Kendall τ-b "
          f"{m['kendall_tau_b']:.3f}, MAPE {m['mape_pct']:.2f}% |")
else:
    print(f"| LPM | fit refused: {(work / 'fit.err').read_text().strip()} |")
for s in steps:
    t = "n/a" if s["step_s"] is None else f"{1000 * s['step_s']:.1f} ms"
    mem = s["peak_gib"] if isinstance(s["peak_gib"], str) else ("n/a" if s["peak_gib"] is None
                                                                 else f"{s['peak_gib']:.2f} GiB")
    print(f"| search step {s['method']}, batch {s['batch']}, {s['amp']} | {t} per step (α + w), peak {mem} |")


def alphas(run):
    from ladarts.runs import load_checkpoint
    model = load_checkpoint(work / run / "checkpoint.pt")["model"]
    return {k: v for k, v in model.items() if k.startswith(("alphas", "betas"))}, model


(a, ma), (b, mb) = alphas("search_plain"), alphas("search_torchrun")
same_g = (work / "search_plain" / "genotype.json").read_text() == (work / "search_torchrun" / "genotype.json").read_text()
diff = max(float((a[k] - b[k]).abs().max()) for k in a)
bitwise = all(torch.equal(ma[k], mb[k]) for k in ma)
print(f"| 1-process torchrun vs plain search | genotype {'identical' if same_g else 'DIFFERENT'}, "
      f"max |Δα| {diff:.2e}, every tensor bit-identical: {'yes' if bitwise else 'no'} |")
if (work / "compile.json").exists():
    c = load("compile.json")
    print(f"| torch.compile, training step (batch {c['eager']['batch']}) | eager {1000 * c['eager']['step_s']:.1f} ms; "
          f"compiled {1000 * c['compiled']['step_s']:.1f} ms after a {c['compiled']['first_step_s']:.0f} s first "
          "step |")
EOF
