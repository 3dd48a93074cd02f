#!/usr/bin/env bash
# Installs what nnc needs (Debian bookworm packages, skipping what is there),
# then configures and builds it in ./build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

# graphviz and tmux are for tests: --emit=dot's output is checked by dot, the REPL is typed into tmux.
packages=(gcc make cmake flex bison zlib1g-dev libjansson-dev libedit-dev llvm-14-dev llvm-14-tools python3
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

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
