# same_tensors.py A.safetensors B.safetensors [--within REL] [NAME...]: the
# tensors named (default: every tensor of A but nnc's history of the run,
# which a state saved by C has not) are in both files with the same shape
# and the same bytes; with --within, float32 tensors whose elements differ
# by at most REL times the tensor's largest magnitude. Prints how many were
# compared.
import json, struct, sys


def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n:]
    return {k: (v["shape"], v["dtype"], body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def floats(raw):
    return struct.unpack("<%df" % (len(raw) // 4), raw)


args = sys.argv[1:]
a, b = tensors(args[0]), tensors(args[1])
rel = float(args[3]) if args[2:3] == ["--within"] else None
names = args[4 if rel is not None else 2:] or sorted(k for k in a if k != "nnc:history")
for name in names:
    if name not in a or name not in b or a[name][:2] != b[name][:2]:
        sys.exit("%s: not in both files alike" % name)
    if rel is None or a[name][1] != "F32":
        if a[name] != b[name]:
            sys.exit("%s differs" % name)
        continue
    x, y = floats(a[name][2]), floats(b[name][2])
    d = max(abs(u - v) for u, v in zip(x, y)) / (max(abs(v) for v in x) or 1.0)
    if d > rel:
        sys.exit("%s: differs by %.3g of its largest element (more than %g)" % (name, d, rel))
print("%d tensors %s" % (len(names), "identical" if rel is None else "within %g" % rel))
