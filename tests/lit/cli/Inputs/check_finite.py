# check_finite.py CKPT: every value of every tensor of a safetensors file is
# finite, and its metadata says where training was (epoch, step).
import json, math, struct, sys

raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n])
meta = h.pop("__metadata__")
data = raw[8 + n:]
for name, t in h.items():
    b, e = t["data_offsets"]
    size, code = (8, "d") if t["dtype"] == "F64" else (4, "f")  # the history's, the weights'
    vals = struct.unpack("<%d%s" % ((e - b) // size, code), data[b:e])
    assert all(math.isfinite(v) for v in vals), name
print("all %d tensors finite; saved at epoch %s, step %s" % (len(h), meta["epoch"], meta["step"]))
