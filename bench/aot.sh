#!/bin/sh
# bench/aot.sh [BUILD]: examples/mlp.nn ahead of time against nnc --predict.
# Trains one epoch for weights, compiles the object at x86-64-v3 (the default)
# and at the host's CPU, prints their sizes, then times one-sample latency and
# the t10k set's throughput (bench/aot_predict.c) and nnc --predict's wall time
# on the same set (JIT compilation and reading the file included), and
# PyTorch's forward pass with the same weights if it is installed. Not a test.
set -e
BUILD=${1:-build}
NNC=$BUILD/nnc
T10K=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
"$NNC" examples/mlp.nn --train --epochs 1 --save "$DIR/mlp.st" -q
for march in x86-64-v3 native; do
    "$NNC" examples/mlp.nn -c --march=$march --load "$DIR/mlp.st" -o "$DIR/mlp-$march.o" -H "$DIR/mlp.h"
    cc -O2 -include "$DIR/mlp.h" -DPREDICT=mlp_predict -DIN=MLP_INPUT_SIZE -DOUT=MLP_OUTPUT_SIZE \
        bench/aot_predict.c "$DIR/mlp-$march.o" -lz -lm -o "$DIR/bench-$march"
    echo "--march=$march: object $(stat -c %s "$DIR/mlp-$march.o") bytes"
    "$DIR/bench-$march" "$T10K"
done
cc -O2 -DPOOL=2 -include "$DIR/mlp.h" -DPREDICT=mlp_predict -DIN=MLP_INPUT_SIZE -DOUT=MLP_OUTPUT_SIZE \
    bench/aot_predict.c "$DIR/mlp-native.o" "$BUILD/libnnrt.a" -lz -ljansson -lpthread -lm -o "$DIR/bench-pool"
echo "--march=native on libnnrt's pool of 2 threads:"
"$DIR/bench-pool" "$T10K"
for i in 1 2 3; do
    /usr/bin/time -f "nnc --predict t10k (native, compile and read included): %e s" \
        "$NNC" examples/mlp.nn --load "$DIR/mlp.st" --predict "$T10K" -o "$DIR/p.csv" -q
done
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    OPENBLAS_NUM_THREADS=$(nproc) OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/aot_torch.py "$DIR/mlp.st" "$T10K"
else
    echo "PyTorch: not installed (python3-torch)"
fi
