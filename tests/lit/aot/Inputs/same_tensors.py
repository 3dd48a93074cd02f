# same_tensors.py A.safetensors B.safetensors [NAME...]: the tensors named
# (default: every tensor of A but nnc's history of the run, which a state
# saved by C has not) are in both files with the same shape and the same
# bytes; prints how many were compared.
import json, struct, sys


def tensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n:]
    return {k: (v["shape"], body[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
names = sys.argv[3:] or sorted(k for k in a if k != "nnc:history")
for name in names:
    if name not in a or name not in b:
        sys.exit("%s: not in both files" % name)
    if a[name] != b[name]:
        sys.exit("%s differs" % name)
print("%d tensors identical" % len(names))
