#!/usr/bin/env bash
# GPU figures: wall time and GPU memory of `scengen train` (default model, embedded data) and of
# generating 10,000 paths per regime with DDIM 50 and guidance on CUDA, and with the default
# sampler (SDE-DPM-Solver++ 100, guidance 1; what `scengen generate` runs); determinism of training
# and generation on the device; agreement between the CPU and CUDA for the same model and seed,
# both ways.
# Run on the lent GPU machine (the `device` tool) with a binary built here by .ci/build-cuda and
# a model trained here on the CPU, carried along:
#
#   benches/gpu.sh BIN [OUT_DIR]      BIN: target/cuda/release/scengen or its packed scengen.xz
#
# With the device tool (its working tree is limited to 64 MiB: carry the packed binary):
#   run(command="bash benches/gpu.sh target/cuda/release/scengen.xz $OUT",
#       carry=["target/cuda/release/scengen.xz", "models/default"])
#
# Needs: nvidia-smi, the CUDA 13 libraries (found below), models/default from a CPU
# `scengen train`, python3 with pyarrow and numpy (for the path-by-path comparison).
# DEVICE=cpu runs the same steps on the CPU; with PATHS=500 TRAIN_ARGS="--epochs 1" it is a
# two-minute dry run of the script.
set -euo pipefail
out=${2:-${OUT:-reports/gpu}}
device=${DEVICE:-cuda}
n=${PATHS:-10000}
# Fixes the files' `created` stamp, so the same data gives the same bytes.
export SOURCE_DATE_EPOCH=1700000000
read -r -a train_args <<<"${TRAIN_ARGS:-}"
mkdir -p "$out"
work=$(mktemp -d)
bin=$(realpath "$1")
if [[ "$bin" == *.xz ]]; then
  xz -dc "$bin" >"$work/scengen"
  chmod +x "$work/scengen"
  bin="$work/scengen"
fi
log="$out/gpu.log"
: >"$log"
say() { echo "$*" | tee -a "$log"; }

# The CUDA 13 libraries the binary links: a toolkit's, or the nvidia-* wheels of a CUDA 13 PyTorch.
if [[ "$device" == cuda ]] && ! ldconfig -p | grep -q 'libcublas.so.13'; then
  dirs=$(find / -xdev \( -name 'libcublas.so.13' -o -name 'libcurand.so.10' -o -name 'libnvrtc.so.13' \
    -o -name 'libcudart.so.13' \) -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
  export LD_LIBRARY_PATH="$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if [[ "$device" == cuda ]]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$log"
fi

# Runs a command, timed, while sampling the GPU's used memory every 100 ms; prints
# "<label> <seconds> s, peak GPU memory <MiB> MiB".
timed() {
  local label=$1; shift
  local mem="$work/mem.$label" watcher=""
  if [[ "$device" == cuda ]]; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$mem" &
    watcher=$!
  fi
  local started ended
  started=$(date +%s.%N)
  "$@" >>"$log" 2>&1
  ended=$(date +%s.%N)
  local peak=0
  if [[ -n "$watcher" ]]; then
    kill "$watcher"; wait "$watcher" 2>/dev/null || true
    peak=$(sort -n "$mem" | tail -n 1)
  fi
  say "$label $(python3 -c "print(f'{$ended - $started:.2f}')") s, peak GPU memory ${peak} MiB"
}

# Prints whether two files, from two runs that should agree, are byte for byte the same.
same_bytes() {
  if cmp -s "$2" "$3"; then
    say "determinism($device): $1 gave byte-identical files"
  else
    say "determinism($device): $1 gave DIFFERENT files"
  fi
}

# Path-by-path comparison of two scenario files of the same paths: the largest difference and
# the headline statistics of each.
compare() {
  python3 - "$@" <<'EOF' | tee -a "$log"
import sys
import numpy as np
import pyarrow.parquet as pq
a, b = (pq.read_table(p) for p in sys.argv[1:3])
assets = [c for c in a.column_names if c not in ("regime", "path", "step")]
x = np.column_stack([a[c].to_numpy() for c in assets])
y = np.column_stack([b[c].to_numpy() for c in assets])
scale = x.std()
ew_x, ew_y = x.mean(axis=1), y.mean(axis=1)
corr = lambda m: np.corrcoef(m.T)[np.triu_indices(m.shape[1], 1)].mean()
print(f"{sys.argv[3]}: max |diff| {np.abs(x - y).max():.3e} ({np.abs(x - y).max() / scale:.2e} of the "
      f"returns' std), daily std {x.std():.6f} / {y.std():.6f}, EW 1% quantile "
      f"{np.quantile(ew_x, 0.01):.6f} / {np.quantile(ew_y, 0.01):.6f}, mean corr {corr(x):.4f} / {corr(y):.4f}")
EOF
}

"$bin" ingest --out "$work/windows.parquet" >>"$log" 2>&1
timed "train($device)" "$bin" train --data "$work/windows.parquet" --out "$work/model-$device" --device "$device" "${train_args[@]}"
# Training determinism on the device: two 2-epoch runs with the same seed, weights byte for byte.
for run in a b; do
  "$bin" train --data "$work/windows.parquet" --out "$work/model-$device-2epochs-$run" \
    --device "$device" --epochs 2 >>"$log" 2>&1
done
same_bytes "two 2-epoch trainings with the same seed" \
  "$work/model-$device-2epochs-"{a,b}/model.safetensors

ddim=(--sampler ddim --steps 50 --spacing uniform --guidance 1.5 --seed 7 --n "$n")
for regime in low-vix normal high-vix; do
  timed "generate($device,$regime,ddim50)" "$bin" generate --model "$work/model-$device" \
    --regime "$regime" "${ddim[@]}" --device "$device" --out "$work/$device-$regime.parquet"
done
for regime in low-vix normal high-vix; do
  timed "generate($device,$regime,default-sampler)" "$bin" generate --model "$work/model-$device" \
    --regime "$regime" --seed 7 --n "$n" --device "$device" --out "$work/$device-$regime-default.parquet"
done
# Determinism on the device: the same seed again, byte for byte; and with another batch size,
# which changes the shapes the kernels see but not any path's noise.
"$bin" generate --model "$work/model-$device" --regime high-vix "${ddim[@]}" --device "$device" \
  --out "$work/$device-high-vix-again.parquet" >>"$log" 2>&1
same_bytes "the same seed, generated twice" "$work/$device-high-vix.parquet" \
  "$work/$device-high-vix-again.parquet"
"$bin" generate --model "$work/model-$device" --regime high-vix "${ddim[@]}" --device "$device" \
  --batch-size 2000 --out "$work/$device-high-vix-batch2000.parquet" >>"$log" 2>&1
compare "$work/$device-high-vix.parquet" "$work/$device-high-vix-batch2000.parquet" \
  "determinism($device): default batch vs --batch-size 2000"

# Throughput against batch size (the JSON of `scengen bench`: medians of 3 runs, forward-pass
# GFLOP/s with the device synchronised after every forward pass).
for batch in 1000 5000 10000; do
  "$bin" bench --model "$work/model-$device" --regime high-vix --sampler ddim --steps 50 \
    --spacing uniform --n "$n" --batch-size "$batch" --runs 3 --device "$device" \
    --out "$out/bench-$device-batch$batch.json" >>"$log" 2>&1
  say "bench($device,batch $batch): $(python3 -c "import json; r = json.load(open('$out/bench-$device-batch$batch.json')); print(f\"{r['seconds_per_10000_paths']:.2f} s per 10,000 paths, forward {r['forward_gflops']:.1f} GFLOP/s\")")"
done

# Agreement: the CPU-trained model on the device against the CPU (the candle engine and the fast
# engine), and the device-trained model on the CPU against the device. Same seed, same noise.
# On 2,000 paths: the candle engine on the CPU is the slow side (81 s for 2,000 paths on the
# H100 machine's 16 cores), and the whole script must end inside the device tool's 10 minutes.
cross_ddim=(--sampler ddim --steps 50 --spacing uniform --guidance 1.5 --seed 7 --n "${CROSS_PATHS:-2000}")
cross() {
  local model=$1 a=$2 b=$3 name=$4
  for side in "$a" "$b"; do
    local dev=${side%%:*} engine=${side##*:}
    local file="$work/$name-$dev-$engine.parquet"
    # A side compared twice is generated once.
    [[ -f "$file" ]] || "$bin" generate --model "$model" --regime high-vix "${cross_ddim[@]}" \
      --device "$dev" --engine "$engine" --out "$file" >>"$log" 2>&1
  done
  compare "$work/$name-${a%%:*}-${a##*:}.parquet" "$work/$name-${b%%:*}-${b##*:}.parquet" \
    "$name: $a vs $b"
}
if [[ -f models/default/model.safetensors ]]; then
  cross models/default "cpu:candle" "$device:auto" cpu-trained-model
  cross models/default "cpu:fast" "$device:auto" cpu-trained-model
fi
cross "$work/model-$device" "$device:auto" "cpu:auto" "model-trained-by-this-script-on-$device"

# The headline statistics of the device's sets against the held-out real windows.
"$bin" evaluate --real "$work/windows.parquet" --regime high-vix \
  --synthetic "$work/$device-high-vix.parquet" --label "$device-ddim50" \
  --synthetic "$work/$device-high-vix-default.parquet" --label "$device-default-sampler" \
  --out "$out/evaluate-high-vix" >>"$log" 2>&1 || say "evaluate failed (see the log)"
cp "$work/model-$device/loss.csv" "$out/loss-$device.csv"
cp "$work/model-$device/config.json" "$out/config-$device.json"
rm -rf "$work"
say "done"
