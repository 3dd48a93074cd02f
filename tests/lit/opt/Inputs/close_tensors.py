# close_tensors.py A.safetensors B.safetensors REL: every float32 tensor of A
# (but nnc's history) is in B with the same shape, and each element differs
# by at most REL times the tensor's largest magnitude; prints the largest
# such difference seen.
import json, struct, sys


def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n:]
    out = {}
    for k, v in header.items():
        if v["dtype"] == "F32":
            lo, hi = v["data_offsets"]
            out[k] = (v["shape"], struct.unpack("<%df" % ((hi - lo) // 4), body[lo:hi]))
    return out


a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
rel, worst = float(sys.argv[3]), 0.0
for name, (shape, x) in sorted(a.items()):
    if name == "nnc:history":
        continue
    if name not in b or b[name][0] != shape:
        sys.exit("%s: not in both files alike" % name)
    scale = max(abs(v) for v in x) or 1.0
    d = max(abs(u - v) for u, v in zip(x, b[name][1])) / scale
    if d > rel:
        sys.exit("%s: differs by %.3g of its largest element (more than %g)" % (name, d, rel))
    worst = max(worst, d)
print("tensors agree within %g" % rel)
