#!/usr/bin/env bash
# Downloads the Debian packages a GPU machine without our Debian libraries needs to build upcycle
# (headers, CMake configs and shared libraries of yaml-cpp, SQLiteCpp and SQLite, Boost's
# program_options, nlohmann-json, SentencePiece, GoogleTest and the Gloo headers), about 14 MB,
# into gpu/debs/. scripts/gpu_check.sh unpacks them into gpu/prefix/ (scripts/unpack_debs.py).
# Also copies the Python peer (../shared/bench/ref_train.py, which lies outside the repository and
# does not travel) to gpu/ref_train.py. Run on a Debian 12 machine that reaches Debian's archive;
# gpu/debs and gpu/ref_train.py travel as carried paths.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(
  libyaml-cpp-dev libyaml-cpp0.7 libsqlitecpp-dev libsqlite3-dev libsqlite3-0
  libboost-program-options1.74-dev libboost-program-options1.74.0 libboost1.74-dev
  nlohmann-json3-dev libsentencepiece-dev libsentencepiece0 libgtest-dev libgloo-dev
)
mkdir -p gpu/debs
cp ../shared/bench/ref_train.py gpu/ref_train.py
cd gpu/debs
rm -f ./*.deb
apt-get download "${PACKAGES[@]}"
echo "[gpu_deps] $(ls ./*.deb | wc -l) packages, $(du -sh . | cut -f1) in gpu/debs"
