#!/usr/bin/env bash
# The dress rehearsal of the 590M paper recipe at its real width, vocabulary and experts
# (`upcycle run --rehearse`, docs/scale.md "Rehearsal"): every stage once, one optimizer step per
# train stage, at seq_len 256 and micro-batch 1, into runs/rehearsal/. About 20 minutes and 40 GB
# of disk on 2 cores and 24 GB. Its table is recorded in docs/scale.md; CI runs the same path at a
# narrow width (tests/e2e/rehearsal_test.cpp).
#
#   scripts/rehearse.sh [local|slurm] [BUILD_DIR]
#
# slurm: on the local Slurm of the tests (cluster/local_slurm.sh, started and stopped here), one
# job per stage; that cluster has no GPUs and as many CPUs as this machine, so the recipe's GPU and
# CPU requests (and threads per job) are set to what it has.
set -euo pipefail
cd "$(dirname "$0")/.."
executor="${1:-local}"
build="${2:-build}"
upcycle="$build/bin/upcycle"
args=(run recipes/paper/bam_590m.yaml --rehearse model.seq_len=256 train.micro_batch=1)

case "$executor" in
  local)
    exec "$upcycle" "${args[@]}" executor=local
    ;;
  slurm)
    dir="$(mktemp -d /tmp/upcycle-rehearse-slurm.XXXXXX)"
    trap 'cluster/local_slurm.sh stop "$dir" >/dev/null 2>&1 || true' EXIT
    eval "$(cluster/local_slurm.sh start "$dir")"
    "$upcycle" "${args[@]}" executor=slurm root=runs/rehearsal-slurm \
      threads="$(nproc)" slurm.gpus_per_node=0 slurm.cpus_per_task="$(nproc)" stages.eval.slurm.gpus_per_node=0
    ;;
  *)
    echo "usage: scripts/rehearse.sh [local|slurm] [BUILD_DIR]" >&2
    exit 1
    ;;
esac
