#!/usr/bin/env bash
# nnc against its peers, measured in the same run on this machine (never run
# by ctest; ratios, not absolute times, are what to compare):
#   - training epochs: nnc vs PyTorch (../shared/bench/peer_torch.py) on the
#     benchmark MLPs and the convolutional network of examples/cnn.nn (at
#     the peer's batch of 128, adam), median epoch seconds of epochs 2..N,
#     JIT compile seconds, peak RSS;
#   - the matmul kernel vs OpenBLAS sgemm (../shared/bench/peer_sgemm.py), 1 and
#     2 threads.
# Usage: bench/run.sh [EPOCHS]   (default 3; needs ./setup.sh's build, and
# python3-torch + python3-numpy for the peers, and OpenBLAS under them:
# apt-get install python3-torch libopenblas0-pthread)
set -euo pipefail
cd "$(dirname "$0")/.."
epochs=${1:-3}
peers=../shared/bench
nnc=build/nnc
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
have_torch=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && have_torch=1
# Debian's torch and numpy take whichever libblas.so.3 is selected; the
# reference BLAS alone (what python3-torch pulls in) is 30x slower than
# OpenBLAS and would make any ratio meaningless.
if [ $have_torch = 1 ] && ! update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep -q '^Value:.*openblas'; then
    echo "bench/run.sh: the peers would run on the reference BLAS: apt-get install libopenblas0-pthread" >&2
    exit 1
fi

median_epoch() { # report.json -> median seconds of epochs 2..N
    python3 - "$1" <<'PY'
import json, statistics, sys
r = json.load(open(sys.argv[1]))
s = [e["seconds"] for e in r["epochs"][1:]] or [r["epochs"][0]["seconds"]]
print(f'{statistics.median(s):.3f} {r["compile_seconds"]:.3f} {r["peak_rss_bytes"] / 2**20:.0f} {r["test_accuracy"]:.4f}')
PY
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(build/nnc --version)"
printf '%-22s %10s %10s %8s %10s %10s %8s %9s %9s\n' model nnc_epoch_s torch_s ratio compile_s nnc_rss_mb torch_mb nnc_acc torch_acc
row() { # name, our model file, the peer's arguments
    "$nnc" "$2" --train --seed 1 --report "$tmp/r.json" > /dev/null
    read -r ours compile rss acc < <(median_epoch "$tmp/r.json")
    theirs=- ratio=- trss=- tacc=-
    if [ $have_torch = 1 ]; then
        line=$(/usr/bin/python3 $peers/peer_torch.py $3 --epochs "$epochs" | tail -1)
        theirs=$(sed -n 's/.*epoch_s=\([0-9.]*\).*/\1/p' <<<"$line")
        trss=$(sed -n 's/.*max_rss_mb=\([0-9.]*\).*/\1/p' <<<"$line")
        tacc=$(sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p' <<<"$line")
        ratio=$(python3 -c "print(f'{$ours / $theirs:.2f}')")
    fi
    printf '%-22s %10s %10s %8s %10s %10s %8s %9s %9s\n' "$1" "$ours" "$theirs" "$ratio" \
        "$compile" "$rss" "$trss" "$acc" "$tacc"
}
for cfg in "512 128" "128 32"; do
    set -- $cfg
    hidden=$1 batch=$2
    cat > "$tmp/m.nn" <<NN
model bench {
    input  x[28, 28]
    flatten
    dense  $hidden, relu
    dense  10, softmax
    loss   crossentropy
    optimizer sgd(lr = 0.1)
    train  epochs = $epochs, batch = $batch
}
NN
    row "784-$hidden-10 b$batch" "$tmp/m.nn" "--hidden $hidden --batch $batch --opt sgd"
done
cat > "$tmp/cnn.nn" <<NN
model cnn {
    input  x[28, 28, 1]
    conv2d 32, 3, relu
    maxpool 2
    conv2d 64, 3, relu
    maxpool 2
    flatten
    dense  128, relu
    dense  10, softmax
    loss   crossentropy
    optimizer adam
    train  epochs = $epochs, batch = 128
}
NN
row "cnn b128 adam" "$tmp/cnn.nn" "--arch cnn --batch 128 --opt adam"

echo
printf '%-18s %8s %12s %12s %8s\n' shape threads nnc_gflops blas_gflops ratio
for threads in 1 2; do
    # One after the other: run side by side (as process substitutions would),
    # the two would share the cores.
    build/nnc-bench-matmul --threads $threads > "$tmp/ours"
    /usr/bin/python3 $peers/peer_sgemm.py --threads $threads > "$tmp/theirs" 2>/dev/null || true
    paste "$tmp/ours" "$tmp/theirs" |
    while read -r _ _ m k n ours _ _ _ _ _ theirs; do
        ours=${ours#gflops=} theirs=${theirs#gflops=}
        ratio=-
        [ -n "$theirs" ] && ratio=$(python3 -c "print(f'{$ours / $theirs:.2f}')")
        printf '%-18s %8s %12s %12s %8s\n' "${m}x${k}x${n}" "$threads" "$ours" "${theirs:--}" "$ratio"
    done
done
