#!/usr/bin/env bash
# The GPU figures of docs/PERFORMANCE.md in one go: MAML meta-training throughput and memory of
# fastadapt (per-task loop and vmap) against the installed anchors in both settings, then a
# time-boxed meta-training run of the maml-omniglot-5w1s preset (stopped by SIGTERM, which saves a
# checkpoint) evaluated on 600 test tasks.
#   benchmarks/gpu_suite.sh OUT_DIR [DATA_DIR] [TRAIN_SECONDS]
# DEVICE (default cuda) and ROUNDS (default 3) may be set in the environment.
set -uo pipefail
out=$1
data=${2:-$(dirname "$0")/../../shared/data}
seconds=${3:-180}
device=${DEVICE:-cuda}
here=$(dirname "$0")
mkdir -p "$out"
{ nvidia-smi -L 2>/dev/null; python -c 'import torch; print("torch", torch.__version__)'; } | tee "$out/machine.txt"
for setting in 5w1s 20w1s; do
  python "$here/maml_throughput.py" --device "$device" --vmap --setting "$setting" --rounds "${ROUNDS:-3}" \
    --data-dir "$data" --json > "$out/maml_throughput_${setting}_gpu.json"
done
run=$(mktemp -d)/run
start=$(date +%s)
FASTADAPT_DATA=$data timeout -s TERM "$seconds" python -m fastadapt train --preset maml-omniglot-5w1s \
  device="$device" --run-dir "$run" --no-progress
echo "train exit $?, $(( $(date +%s) - start )) s" | tee -a "$out/machine.txt"
cp "$run/metrics.jsonl" "$out/train_metrics.jsonl"
python -m fastadapt eval "$run" --episodes 600 --data-dir "$data" --json > "$out/eval.json"
