# Prints tensors of an nnc checkpoint (safetensors: u64 little-endian header
# length, JSON header, raw little-endian data), one line each, so a test can
# show what training made of a parameter or an optimizer's state:
#   print_tensors.py CKPT NAME...    ->    NAME = [v, ...]   (%.6g)
import json, math, struct, sys

raw = open(sys.argv[1], "rb").read()
(hlen,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + hlen])
data = raw[8 + hlen:]
for name in sys.argv[2:]:
    t = header[name]
    assert t["dtype"] == "F32", t
    b, e = t["data_offsets"]
    n = math.prod(t["shape"])
    values = struct.unpack("<%df" % n, data[b:e])
    print("%s = [%s]" % (name, ", ".join("%.6g" % v for v in values)))
