#!/usr/bin/env bash
# A separate venv for the NNI 3.0 peer benchmark (never a dependency of ladarts).
#   bash benchmarks/peers/setup_nni.sh [VENV]      # default /tmp/nni-venv
# torch 2.13 requires setuptools>=77 and NNI 3.0 requires setuptools<70, so a resolver refuses the pair (or pulls a
# CUDA build of another torch). torch goes in first, then NNI's pinned closure with --no-deps; torch only needs
# setuptools for building C++ extensions, which this benchmark never does.
set -euo pipefail
venv=${1:-/tmp/nni-venv}
here=$(cd "$(dirname "$0")" && pwd)
python3 -m venv "$venv"
"$venv/bin/pip" install -q torch==2.13.0
"$venv/bin/pip" install -q --no-deps -r "$here/nni-3.0-requirements.txt"
"$venv/bin/python" -c "import torch, nni; print('torch', torch.__version__, 'nni', nni.__version__)"
