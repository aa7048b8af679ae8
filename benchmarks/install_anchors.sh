#!/usr/bin/env bash
# Install the libraries that benchmarks/maml_throughput.py compares with, into the active
# environment, without letting them replace the CPU torch. They are benchmark-only: fastadapt
# never imports them.
#   higher, torchopt: from PyPI (torchopt's compiled op does not load with torch 2.13; its Python
#   path, which the benchmark uses, does).
#   learn2learn 0.2.0: its shipped C files do not build on Python 3.11, so they are regenerated
#   with Cython 3 from its .pyx sources; its runtime dependencies (torchvision, gym, qpth, ...)
#   are not installed: benchmarks/anchors.py stands in for them inside the benchmark process.
set -euo pipefail
torch_version="$(python -c 'import torch; print(torch.__version__.split("+")[0])')"
constraint="$(mktemp)"
echo "torch==${torch_version}" > "$constraint"
python -m pip install --quiet higher torchopt requests scipy "cython>=3" -c "$constraint"

work="$(mktemp -d)"
trap 'rm -rf "$work" "$constraint"' EXIT
python -m pip download --quiet --no-deps --no-binary :all: learn2learn==0.2.0 -d "$work"
tar -xzf "$work"/learn2learn-0.2.0.tar.gz -C "$work"
(
  cd "$work/learn2learn-0.2.0"
  cython -3 learn2learn/data/meta_dataset.pyx learn2learn/data/task_dataset.pyx learn2learn/data/transforms.pyx
  python -m pip install --quiet --no-build-isolation --no-deps .
)
python -c "import sys; sys.path.insert(0, sys.argv[1]); import anchors; print('learn2learn', anchors.load('learn2learn').__version__)" "$(dirname "$0")"
