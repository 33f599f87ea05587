#!/usr/bin/env bash
# Benchmark: submitting a sweep to Slurm with `upcycle run --executor slurm`, against the raw sbatch
# calls it makes, side by side on one local cluster (cluster/local_slurm.sh); and one status pass
# (`upcycle collect`) over every queued job. Jobs are submitted held (--hold) and cancelled after,
# so nothing runs. Prints key=value lines for docs/benchmarks.md.
#   bash scripts/bench_slurm.sh [POINTS]     (default 9 sweep points x 7 jobs = 63 jobs, 54 sbatch calls)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
POINTS="${1:-9}"
WORK="$(mktemp -d)"
export UPCYCLE_SLURM_PORT=17017
eval "$(cluster/local_slurm.sh start "$WORK/cluster")"
trap 'scancel --user="$(id -un)" >/dev/null 2>&1 || true; "$ROOT/cluster/local_slurm.sh" stop "$WORK/cluster"; rm -rf "$WORK"' EXIT
cd "$WORK"
seeds="$(seq -s, 1 "$POINTS")"
now() { date +%s.%N; }

t0=$(now)
"$ROOT/build/bin/upcycle" run "$ROOT/recipes/ci/tiny.yaml" --executor slurm "slurm.extra=[--hold]" \
  "sweep={seed: [$seeds]}" > submit.log 2>&1
t1=$(now)
jobs=$(grep -c "queued as Slurm job" submit.log)
calls=$(ls runs/slurm/*.sbatch | wc -l)

# The same calls by hand: each with the options upcycle passes (name, comment, output, resources,
# signal, requeue) and, like most of upcycle's, a dependency on the job before it.
printf '#!/bin/bash\ntrue\n' > raw.sbatch
t2=$(now)
prev=""
for i in $(seq "$calls"); do
  dep=()
  if [ -n "$prev" ]; then dep=(--dependency=afterok:"$prev" --kill-on-invalid-dep=yes); fi
  prev=$(sbatch --parsable --hold --job-name="raw-$i" --comment="raw:$WORK/$i" --output=/dev/null --nodes=1 \
    --ntasks=1 --cpus-per-task=1 --signal=B:USR2@120 --requeue "${dep[@]}" raw.sbatch)
done
t3=$(now)

t4=$(now)
"$ROOT/build/bin/upcycle" collect > collect.log 2>&1 || true
t5=$(now)
"$ROOT/build/bin/upcycle" --help > /dev/null
t6=$(now)

# The binary's start-up (LibTorch's shared libraries) is a fixed cost; the ratio without it is what
# each submission adds to its sbatch call.
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v e="$t4" -v f="$t5" -v g="$t6" -v jobs="$jobs" -v calls="$calls" 'BEGIN {
  printf "jobs=%d\nsbatch_calls=%d\nupcycle_submit_s=%.3f\nraw_sbatch_s=%.3f\nratio=%.2f\n", jobs, calls, b - a, d - c, (b - a) / (d - c)
  printf "startup_s=%.3f\nratio_without_startup=%.2f\ncollect_pass_s=%.3f\n", g - f, (b - a - (g - f)) / (d - c), f - e }'
