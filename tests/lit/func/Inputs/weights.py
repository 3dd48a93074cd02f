# weights.py OUT NAME=SHAPE=V,V,... ...: a safetensors file of float32
# parameters (the format: u64 little-endian header length, JSON header,
# raw little-endian data), to start a worked example from the notes'
# weights with --load. E.g. weights.py w.safetensors w=1x2=1,2
import json, struct, sys

out, specs = sys.argv[1], sys.argv[2:]
header, body = {}, b""
for spec in specs:
    name, shape, values = spec.split("=")
    v = [float(x) for x in values.split(",")]
    header[name] = {"dtype": "F32", "shape": [int(d) for d in shape.split("x")],
                    "data_offsets": [len(body), len(body) + 4 * len(v)]}
    body += struct.pack("<%df" % len(v), *v)
text = json.dumps(header).encode()
open(out, "wb").write(struct.pack("<Q", len(text)) + text + body)
