#!/usr/bin/env python3
"""predict.py: a model compiled by `nnc -c -o libMODEL.so -H MODEL.h`,
called from Python through ctypes (the standard library only).

    python3 predict.py libmlp.so mlp.h IMAGES [N]

reads an IDX file of images (uint8, scaled to [0, 1] as nnc scales them,
or float32; raw or gzip), predicts the first N samples (default all) in one
call of MODEL_predict, and prints the CSV `nnc --predict` prints.
"""
import ctypes
import gzip
import re
import struct
import sys


def header_constants(path):
    """The model's name and its #define'd integer constants."""
    text = open(path).read()
    name = re.search(r"^int (\w+)_predict\(", text, re.M).group(1)
    consts = {k: int(v) for k, v in re.findall(r"^#define \w+?_([A-Z_]+) (\d+)$", text, re.M)}
    return name, consts


def read_idx(path, sample_size, limit):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    kind, rank = data[2], data[3]
    dims = struct.unpack(">%dI" % rank, data[4:4 + 4 * rank])
    n = dims[0] if limit is None else min(limit, dims[0])
    if sample_size != len(data[4 + 4 * rank:]) // (dims[0] * (1 if kind == 0x08 else 4)):
        sys.exit("%s: samples of another size than the model's input" % path)
    body = data[4 + 4 * rank:]
    x = (ctypes.c_float * (n * sample_size))()
    if kind == 0x08:  # uint8 times the float nearest 1/255, in float32
        scale = ctypes.c_float(1.0 / 255).value
        for i in range(n * sample_size):
            x[i] = ctypes.c_float(body[i] * scale).value
    elif kind == 0x0D:
        x[:] = struct.unpack(">%df" % (n * sample_size), body[:4 * n * sample_size])
    else:
        sys.exit("%s: uint8 or float32 images expected" % path)
    return x, n


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    lib = ctypes.CDLL(sys.argv[1])
    name, c = header_constants(sys.argv[2])
    predict = getattr(lib, name + "_predict")
    predict.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_size_t, ctypes.POINTER(ctypes.c_float)]
    predict.restype = ctypes.c_int
    x, n = read_idx(sys.argv[3], c["INPUT_SIZE"], int(sys.argv[4]) if len(sys.argv) > 4 else None)
    k = c["OUTPUT_SIZE"]
    out = (ctypes.c_float * (n * k))()
    status = predict(x, n, out)
    if status != 0:
        sys.exit("%s_predict: status %d" % (name, status))
    print("index,class" + "".join(",p%d" % j for j in range(k)))
    for s in range(n):
        row = out[s * k:(s + 1) * k]
        best = max(range(k), key=lambda j: (row[j], -j))
        print("%d,%d" % (s, best) + "".join(",%.9g" % v for v in row))


if __name__ == "__main__":
    main()
