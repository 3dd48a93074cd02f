#!/usr/bin/env bash
# Installs what nnc needs (Debian bookworm packages, skipping what is there),
# then configures and builds it in ./build with the newest LLVM installed.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

# graphviz and tmux are for tests: --emit=dot's output is checked by dot, the REPL is typed into tmux.
# nnc builds with LLVM 19 and 14 (.ci/run tests both): both are installed.
# Open MPI: data-parallel training (mpirun -np N nnc ...); nnc builds without it too.
packages=(gcc make cmake flex bison zlib1g-dev libjansson-dev libedit-dev llvm-19-dev llvm-19-tools
          llvm-14-dev llvm-14-tools python3 libopenmpi-dev openmpi-bin
          dataset-fashion-mnist graphviz tmux)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# -U: CMake finds the newest LLVM again, even if build/ was configured with another,
# and MPI again, even if build/ was configured before it was installed.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -UNNC_LLVM_CONFIG -UNNC_MPI >/dev/null
cmake --build build -j"$(nproc)"
