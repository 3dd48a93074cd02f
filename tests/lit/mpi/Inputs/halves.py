"""halves.py A B C: C/train-{images,labels}-* = the first half of A's samples, then the second half of B's."""
import os, struct, sys

a, b, c = sys.argv[1:4]
os.makedirs(c, exist_ok=True)
for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
    x, y = open(os.path.join(a, name), "rb").read(), open(os.path.join(b, name), "rb").read()
    rank = x[3]
    dims = struct.unpack(f">{rank}I", x[4:4 + 4 * rank])
    head = 4 + 4 * rank
    per = (len(x) - head) // dims[0]
    half = dims[0] // 2 * per
    open(os.path.join(c, name), "wb").write(x[:head] + x[head:head + half] + y[head + half:])
