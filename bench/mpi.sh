#!/usr/bin/env bash
# bench/mpi.sh [BUILD] [SAMPLES]: data-parallel training on this machine.
# Trains examples/mlp.nn and examples/cnn.nn for 2 epochs on the first
# SAMPLES (default 12000) Fashion-MNIST training images, four ways: 1 rank
# of 1 thread, 2 ranks of 1 thread each (mpirun) with the gradients in
# buckets (the default) and with one all-reduce per gradient (NNC_BUCKET=0),
# 1 rank of 2 threads; prints
# the second epoch's seconds (the first warms up) and the per-step compute
# time, then bench/mpi_model.py's ring all-reduce model at 8, 64 and 512 ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
samples=${2:-12000}
data=/usr/share/datasets/fashion-mnist
mpirun=(mpirun --oversubscribe --allow-run-as-root)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$data" "$samples" "$tmp" <<'PY'
import gzip, struct, sys
src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for kind, item in (("images-idx3", 28 * 28), ("labels-idx1", 1)):
    raw = gzip.open(f"{src}/train-{kind}-ubyte.gz").read()
    ndim = raw[3]
    dims = list(struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim]))
    dims[0] = min(n, dims[0])
    head = raw[:4] + struct.pack(f">{ndim}I", *dims)
    open(f"{out}/train-{kind}-ubyte", "wb").write(head + raw[4 + 4 * ndim:4 + 4 * ndim + dims[0] * item])
PY
epoch2() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["epochs"][1]["seconds"])' "$1"; }
printf '%-4s %-30s %10s %12s\n' model run "epoch 2 s" "step ms"
for model in mlp cnn; do
    nn=examples/$model.nn
    params=$("$build/nnc" "$nn" | sed -n 's/^model [a-z0-9_]*: \([0-9]*\) parameters.*/\1/p')
    batch=$(sed -n 's/.*batch = \([0-9]*\).*/\1/p' "$nn")
    steps=$(( (samples + batch - 1) / batch ))
    for run in "1x1" "2x1" "2x1e" "1x2"; do
        ranks=${run%x*} threads=${run#*x} bucket=
        [ "$run" = 2x1e ] && threads=1 bucket=0
        if [ "$ranks" = 1 ]; then
            NNC_THREADS=$threads "$build/nnc" "$nn" --train "$tmp/train-images-idx3-ubyte" --epochs 2 -q \
                --report "$tmp/r.json" >/dev/null
        else
            NNC_BUCKET=$bucket "${mpirun[@]}" -np "$ranks" -x NNC_THREADS="$threads" -x NNC_BUCKET "$build/nnc" "$nn" \
                --train "$tmp/train-images-idx3-ubyte" --epochs 2 -q --report "$tmp/r.json" >/dev/null
        fi
        s=$(epoch2 "$tmp/r.json")
        printf '%-4s %-30s %10.3f %12.3f\n' "$model" "${ranks} rank x ${threads} thr${bucket:+, per gradient}" "$s" \
            "$(python3 -c "print($s / $steps * 1e3)")"
        [ "$run" = 1x1 ] && eval "step_$model=$(python3 -c "print($s / $steps)") params_$model=$params batch_$model=$batch"
    done
done
echo
python3 bench/mpi_model.py mlp "$params_mlp" "$batch_mlp" "$step_mlp" cnn "$params_cnn" "$batch_cnn" "$step_cnn"
