#!/usr/bin/env bash
# The GPU checks (issue 17) on a machine with an NVIDIA GPU, its own PyTorch (python3), cmake, ninja
# and nvcc, but none of our Debian libraries:
#   build   unpack gpu/debs (scripts/gpu_deps.sh) into gpu/prefix; configure against python3's LibTorch
#           (torch.utils.cmake_prefix_path) with CUDA and NCCL required; build upcycle, upcycle-job and
#           gpu_tests into build-gpu (kept between calls)
#   tests   build-info, nvidia-smi, and the gpu-labelled tests (*_CUDA) with their XML report
#   bench   training tokens/s and MFU at gpu-small's shape: the dense seed, its BTX, its BAM with expert
#           K/V and with shared K/V (upcycle bench train), and the Python peer (shared/bench/ref_train.py
#           through scripts/peer_on_device.py) on the dense and the MoE config, with this PyTorch
#   recipe  recipes/gpu-small/gpu_small.yaml (its prepared data travels in runs/gpu-small)
# usage: scripts/gpu_check.sh OUTDIR [--steps build,tests,bench,recipe] [--rehearse]
# --rehearse runs everything but the GPU here on the CPU: the same build from the unpacked packages,
# the tests (skipped without CUDA), the bench at toy size on the CPU, and recipes/gpu-small/rehearse.yaml,
# which also prepares the data the GPU run reuses. Each step's output goes to OUTDIR/<step>.log and a
# line to OUTDIR/summary.txt; a failed step does not stop the next.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
[ $# -ge 1 ] || { echo "usage: scripts/gpu_check.sh OUTDIR [--steps build,tests,bench,recipe] [--rehearse]"; exit 1; }
mkdir -p "$1" && OUT="$(cd "$1" && pwd)"
shift
STEPS="build,tests,bench,recipe"
REHEARSE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    --rehearse) REHEARSE=1; shift ;;
    *) echo "gpu_check: unknown argument $1"; exit 1 ;;
  esac
done
PY="${UPCYCLE_GPU_PYTHON:-python3}"
PEER=../shared/bench/ref_train.py  # outside the repository; scripts/gpu_deps.sh copies it to gpu/
[ -f "$PEER" ] || PEER=gpu/ref_train.py
[ "$REHEARSE" = 1 ] && [ -x .venv/bin/python ] && PY="$ROOT/.venv/bin/python"
BUILD="$ROOT/build-gpu"
PREFIX="$ROOT/gpu/prefix"
export LD_LIBRARY_PATH="$PREFIX/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
FAILED=0

note() { echo "[gpu_check] $*" | tee -a "$OUT/summary.txt"; }
# step NAME COMMAND...: runs COMMAND with its output in OUT/NAME.log, timed, recorded in the summary.
step() {
  local name="$1"; shift
  local t0=$SECONDS
  "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  note "$name: exit $rc, $((SECONDS - t0)) s (log: $name.log)"
  [ $rc -eq 0 ] || FAILED=1
  return $rc
}
wants() { [[ ",$STEPS," == *",$1,"* ]]; }

do_build() {
  "$PY" scripts/unpack_debs.py gpu/debs "$PREFIX" || return 1
  local torch_prefix generator=()
  torch_prefix="$("$PY" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')" || return 1
  command -v ninja >/dev/null && generator=(-G Ninja)
  # Our .deb prefix first, then LibTorch; pkg-config is bypassed so SentencePiece comes from the prefix.
  cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$PREFIX/usr;$PREFIX/usr/lib/x86_64-linux-gnu/cmake;$torch_prefix" \
    -DTorch_DIR="$torch_prefix/Torch" -DUPCYCLE_PYTHON="$PY" -DPKG_CONFIG_EXECUTABLE=/nonexistent \
    -DUPCYCLE_REQUIRE_CUDA=ON || return 1
  cmake --build "$BUILD" -j "$(nproc)" --target upcycle upcycle-job gpu_tests || return 1
  # What CMake took from outside the prefix and LibTorch (a rehearsal on a Debian machine would
  # otherwise hide a package missing from gpu/debs): listed, for the log.
  echo "--- found outside $PREFIX:"
  grep -E '^(UPCYCLE_|SQLite|yaml|Boost|GTest|nlohmann|SQLITE)[^#]*:(PATH|FILEPATH)=/usr' "$BUILD/CMakeCache.txt" || echo "(nothing)"
  echo "--- runtime libraries of upcycle and upcycle-job:"
  ldd "$BUILD/bin/upcycle" "$BUILD/bin/upcycle-job" | grep -E 'yaml|sqlite|boost|sentencepiece|not found' || true
  ! ldd "$BUILD/bin/upcycle" "$BUILD/bin/upcycle-job" | grep -q 'not found'
}

do_tests() {
  nvidia-smi || true
  "$BUILD/bin/upcycle-job" build-info | tee "$OUT/build_info.json"
  "$BUILD/bin/gpu_tests" --gtest_output=xml:"$OUT/gpu_tests.xml"
}

# bench NAME ARGS...: one `upcycle bench train` line into bench.txt
bench_ours() {
  local name="$1"; shift
  echo "== $name: upcycle bench train $*"
  local out
  out="$("$BUILD/bin/upcycle" bench train "$@" 2>&1)" || { echo "$out"; return 1; }
  echo "$out"
  echo "$name $(echo "$out" | grep -E '^(active_params|mfu_6n|mfu|train_flops_per_token|tokens_per_s)=' | tr '\n' ' ')" >>"$OUT/bench.txt"
}

bench_peer() {
  local name="$1"; shift
  echo "== $name: ref_train.py $*"
  local out
  if [ "$REHEARSE" = 1 ]; then
    out="$("$PY" "$PEER" "$@" 2>&1)" || { echo "$out"; return 1; }
  else
    out="$("$PY" scripts/peer_on_device.py "$PEER" "$@" 2>&1)" || { echo "$out"; return 1; }
  fi
  echo "$out"
  echo "$name $(echo "$out" | tail -1)" >>"$OUT/bench.txt"
}

do_bench() {
  : >"$OUT/bench.txt"
  local shape=(--d 768 --layers 12 --heads 12 --ffn 2048 --seq 1024 --vocab 8192 --batch 32 --steps 20)
  local where=(--device cuda --precision bf16)
  if [ "$REHEARSE" = 1 ]; then
    shape=(--d 64 --layers 2 --heads 4 --ffn 128 --seq 64 --vocab 512 --batch 4 --steps 3)
    where=(--device cpu --precision fp32)
  fi
  local rc=0
  bench_ours dense "${shape[@]}" "${where[@]}" || rc=1
  bench_ours btx "${shape[@]}" "${where[@]}" --experts 4 --topk 1 || rc=1
  bench_ours bam_expert_kv "${shape[@]}" "${where[@]}" --experts 4 --topk 1 --attn-experts 4 --attn-kv expert || rc=1
  bench_ours bam_shared_kv "${shape[@]}" "${where[@]}" --experts 4 --topk 1 --attn-experts 4 --attn-kv shared || rc=1
  bench_peer peer_dense "${shape[@]}" || rc=1
  bench_peer peer_moe "${shape[@]}" --experts 4 --topk 1 || rc=1
  cat "$OUT/bench.txt"
  return $rc
}

# What a GPU run must carry (the device's `run` tool, `carry`): the packages, the peer, and the
# prepared data's job directory (found by its spec's kind), which gpu_small.yaml reuses by its key.
carry_list() {
  local prep
  prep="$(grep -l '"kind": *"prepare"' runs/gpu-small/jobs/*/spec.json | head -n 1)"
  [ -n "$prep" ] || { echo "no prepare job under runs/gpu-small/jobs"; return 1; }
  prep="$(dirname "$prep")"
  { echo "carry: gpu/debs gpu/ref_train.py $prep"; du -shc gpu/debs gpu/ref_train.py "$prep"; } | tee "$OUT/carry.txt"
}

do_recipe() {
  local recipe=recipes/gpu-small/gpu_small.yaml
  [ "$REHEARSE" = 1 ] && recipe=recipes/gpu-small/rehearse.yaml
  "$BUILD/bin/upcycle" run "$recipe" --no-report || return 1
  [ "$REHEARSE" = 1 ] && carry_list
  cp runs/gpu-small/store.sqlite "$OUT/store.sqlite"
  # Each train job's steady-state tokens/s (its last logged value), with Python's sqlite3.
  "$PY" - runs/gpu-small/store.sqlite <<'PYEOF' | tee "$OUT/recipe_throughput.txt"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for stage, kind, tps in db.execute(
    "SELECT j.stage, j.kind, m.value FROM jobs j JOIN metrics m ON m.job_id = j.id "
    "WHERE m.key = 'tokens_per_s' AND m.step = (SELECT MAX(step) FROM metrics "
    "WHERE job_id = j.id AND key = 'tokens_per_s') ORDER BY j.id"):
    print(f"{stage:24s} {kind:8s} {tps:12.0f} tokens/s")
PYEOF
}

note "$(date -u +%FT%TZ) steps $STEPS$([ "$REHEARSE" = 1 ] && echo ' (rehearsal on the CPU)') with $("$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1)"
wants build && step build do_build
wants tests && step tests do_tests
wants bench && step bench do_bench
wants recipe && step recipe do_recipe
note "done: $([ $FAILED = 0 ] && echo 'every step passed' || echo 'a step failed')"
exit $FAILED
