#!/usr/bin/env bash
# Quality against cost of the samplers. For high-vix and low-vix: PATHS paths of the default
# model with DDPM over all 1,000 steps under two seeds (the reference, and its seed-to-seed
# noise), and at 5, 10, 20, 50 and 100 network evaluations per path DDIM (deterministic, uniform
# spacing), DDIM with η = 1 (stochastic), DPM-Solver++(2M) (log-SNR, and at 10 and 20 also
# uniform and quadratic spacing; at 5, 10 and 20 over the log-SNR band) and its SDE form
# (log-SNR), all guided at the default weight;
# then one evaluation per regime against the held-out windows, whose headline table is the
# quality-vs-cost table, with every set's energy distance to the DDPM set of seed 7 (the seed-8
# DDPM set's is the floor).
# Heun's method (10 evaluations, uniform) and the posterior draws (5, 10 and 20 evaluations over
# the log-SNR band) run on the same model; when the model folder
# $DISTILLED (default models/distilled, from `scengen distill`) exists, its own few-step
# sampler runs on it too.
# Files already present are kept, so an interrupted sweep resumes.
#
#   benches/quality_vs_cost.sh [OUT_DIR] [PATHS]      (defaults: reports/sampler-sweep, 2000)
#
# Needs `scengen ingest` and `scengen train` outputs (data/windows.parquet, models/default).
set -euo pipefail
out=${1:-reports/sampler-sweep}
n=${2:-2000}
bin=${SCENGEN:-target/release/scengen}
distilled=${DISTILLED:-models/distilled}
mkdir -p "$out/scenarios"
for regime in high-vix low-vix; do
  files=() labels=()
  run() {
    local label=$1; shift
    local file="$out/scenarios/$regime-$label.parquet"
    if [ ! -f "$file" ]; then
      local started
      started=$(date +%s.%N)
      "$bin" generate --regime "$regime" --n "$n" --out "$file" "$@" >/dev/null
      echo "$regime $label $(echo "$(date +%s.%N) - $started" | bc) s" | tee -a "$out/timings.txt"
    fi
    files+=(--synthetic "$file") labels+=(--label "$label")
  }
  run ddpm-s7 --sampler ddpm --seed 7
  run ddpm-s8 --sampler ddpm --seed 8
  for steps in 5 10 20 50 100; do
    run "ddim-$steps" --sampler ddim --steps "$steps" --spacing uniform
    run "ddim-eta1-$steps" --sampler ddim --steps "$steps" --eta 1 --spacing uniform
    run "dpm-$steps" --sampler dpm-solver++ --steps "$steps" --spacing logsnr
    run "sde-dpm-$steps" --sampler sde-dpm-solver++ --steps "$steps" --spacing logsnr
  done
  for steps in 10 20; do
    run "dpm-uni-$steps" --sampler dpm-solver++ --steps "$steps" --spacing uniform
    run "dpm-quad-$steps" --sampler dpm-solver++ --steps "$steps" --spacing quadratic
  done
  for steps in 5 10 20; do
    run "dpm-band-$steps" --sampler dpm-solver++ --steps "$steps" --spacing logsnr-band
  done
  run heun-10 --sampler heun --steps 10 --spacing uniform
  for steps in 5 10 20; do
    run "posterior-draw-$steps" --sampler posterior-draw --steps "$steps" --spacing logsnr-band
  done
  if [ -d "$distilled" ]; then
    run distilled --model "$distilled"
  fi
  "$bin" evaluate --regime "$regime" "${files[@]}" "${labels[@]}" --distance-to ddpm-s7 \
    --out "$out/$regime" \
    | tee "$out/$regime.txt"
done
