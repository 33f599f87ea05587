#!/usr/bin/env bash
# Installs everything upcycle needs on Debian 12, by package name. Idempotent and non-interactive:
# a second run installs nothing. Run as root, or as a user with sudo.
#   apt: compilers (gcc; clang for the libFuzzer harnesses), CMake, ccache, yaml-cpp, SQLiteCpp, Boost.Program_options, nlohmann-json,
#        SentencePiece, PCRE2 and utf8proc (byte-level BPE), zlib and zstd, GoogleTest, Gloo headers (c10d data parallel), Slurm and munge (a local test cluster),
#        gnuplot, Chromium and pdflatex with booktabs (plots, the report's browser test, LaTeX tables),
#        and the packages whose documents the prepare stage reads.
#   pip: PyPI's torch wheel (its bundled LibTorch is what we link) into ./.venv, which sees the
#        system site-packages, so an already installed torch is reused; and the outside referees of
#        the interop tests: transformers and lm-evaluation-harness (pinned: a test compares their
#        numbers with ours), with sentencepiece and protobuf for our tokenizer files; tensorboard
#        (its event reader checks our event files, and `tensorboard --logdir runs/`); and real
#        byte-level BPE vocabularies converted from a pinned PyPI sdist (scripts/hf_vocabs.py).
# Environment: UPCYCLE_PYTHON (default python3) picks the interpreter the venv is made from.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  build-essential cmake pkg-config git ccache python3 python3-venv python3-pip
  libyaml-cpp-dev libsqlitecpp-dev libsqlite3-dev sqlite3 libboost-program-options-dev
  nlohmann-json3-dev libsentencepiece-dev libgtest-dev libgloo-dev
  # the byte-level BPE tokenizer (tokenizer.json): its pre-tokenizer regexes and NFC
  libpcre2-dev libutf8proc-dev
  # compressed JSONL corpora (.jsonl.gz, .jsonl.zst) and the zstd tool the tests compress with
  zlib1g-dev libzstd-dev zstd
  # clang and its libFuzzer runtime: the fuzz harnesses (tests/fuzz/, scripts/fuzz.sh)
  clang libclang-rt-dev
  # the format and lint checks (scripts/check_format.sh, scripts/check_tidy.sh; .clang-format, .clang-tidy)
  clang-format clang-tidy
  # plots (analysis/plots.h), the report's browser test, and a LaTeX table (booktabs) compiled by a test
  gnuplot-nox chromium texlive-latex-base texlive-latex-recommended
  # a real single-node Slurm for the slurm-labelled tests and for trying the Slurm executor (cluster/local_slurm.sh)
  slurmctld slurmd slurm-client munge
  # documents for the prepare stage's built-in domains (general: fortunes, docs incl. the Python manual's sources; law: licenses)
  fortunes fortunes-min base-files python3.11-doc
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "[setup] Debian packages: all present"
fi

PYTHON="${UPCYCLE_PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv from $($PYTHON -c 'import sys; print(sys.executable)')"
  "$PYTHON" -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import torch, numpy" 2>/dev/null; then
  echo "[setup] pip install torch numpy (PyPI wheel; a few minutes)"
  .venv/bin/python -m pip install -q --disable-pip-version-check torch numpy
fi
REFEREES=(transformers==5.24.0 "lm-eval[hf]==0.4.13" sentencepiece protobuf tensorboard==2.20.0)
if ! .venv/bin/python -c "import transformers, lm_eval, accelerate, sentencepiece, google.protobuf, tensorboard; assert transformers.__version__ == '5.24.0' and tensorboard.__version__ == '2.20.0'" 2>/dev/null; then
  echo "[setup] pip install ${REFEREES[*]} (the interop tests' referees)"
  .venv/bin/python -m pip install -q --disable-pip-version-check "${REFEREES[@]}"
fi
# Real byte-level BPE vocabularies (GPT-2, Llama 3, Qwen2, Command-R) as tokenizer.json, for the
# tokenizer's referee tests and benchmark: from llama.cpp's GGUF files in a pinned PyPI sdist.
.venv/bin/python scripts/hf_vocabs.py .venv/share/upcycle-vocabs
echo "[setup] torch $(.venv/bin/python -c 'import torch; print(torch.__version__)') ready"
