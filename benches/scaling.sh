#!/usr/bin/env bash
# How the default network and the diffusion factor model scale with the number of assets.
# For each width: a synthetic panel (`scengen synthetic`: 4 factors, 20 years of weekdays,
# seed 7), ingested with its own index as the regime signal (windows every STRIDE days), one
# two training epochs of each network, then `scengen bench` on high-vix. One line per width and
# network: training windows, the time to the end of the first epoch (the prior's fit, the set-up
# and one epoch; loss.csv's `seconds` counts from the start), the second epoch's time, training's
# peak RSS, generation time per 10,000 paths (bench's median, scaled from PATHS paths) and its
# peak RSS.
#
#   benches/scaling.sh [OUT_FILE]     (default: reports/scaling.tsv)
#   ASSETS="50 100 250 500" FACTORS=8 PATHS=500 RUNS=3 STRIDE=5 benches/scaling.sh
set -euo pipefail
out=${1:-reports/scaling.tsv}
bin=${SCENGEN:-target/release/scengen}
assets=${ASSETS:-"50 100 250 500"}
factors=${FACTORS:-8}
paths=${PATHS:-500}
runs=${RUNS:-3}
stride=${STRIDE:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$out")"
printf 'assets\tnetwork\twindows\tfirst_epoch_s\tepoch_s\ttrain_rss_mib\tgen_s_per_10k\tgen_rss_mib\n' | tee "$out"
for a in $assets; do
  "$bin" synthetic --assets "$a" --factors 4 --days 5040 --seed 7 \
    --out "$work/panel.parquet" --index-out "$work/index.parquet" >/dev/null
  "$bin" ingest --input "$work/panel.parquet" --kind returns --returns log \
    --index "$work/index.parquet:index" --stride "$stride" --out "$work/windows.parquet" \
    >/dev/null
  for k in 0 "$factors"; do
    network=default; [ "$k" != 0 ] && network="factors-$k"
    rm -rf "$work/model"
    /usr/bin/time -f '%M' -o "$work/train.rss" "$bin" train --data "$work/windows.parquet" \
      --out "$work/model" --epochs 2 --factors "$k" >/dev/null 2>&1
    first_s=$(sed -n 2p "$work/model/loss.csv" | cut -d, -f5)
    epoch_s=$(echo "$(sed -n 3p "$work/model/loss.csv" | cut -d, -f5) - $first_s" | bc)
    windows=$(python3 -c "import json;print(json.load(open('$work/model/config.json'))['training'].get('train_windows','?'))")
    "$bin" bench --model "$work/model" --regime high-vix --n "$paths" --runs "$runs" \
      --out "$work/bench.json" >/dev/null
    read -r gen rss < <(python3 -c "import json;b=json.load(open('$work/bench.json'));print(round(b['seconds_per_10000_paths'],1), round(b['peak_rss_mib']))")
    printf '%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n' "$a" "$network" "$windows" "$first_s" "$epoch_s" \
      "$(( $(cat "$work/train.rss") / 1024 ))" "$gen" "$rss" | tee -a "$out"
  done
done
