# keep_tensors.py IN OUT NAME...: a safetensors file of IN's tensors NAME...
# only (no metadata): weights without the optimizer's state.
import json, struct, sys

raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h, data = json.loads(raw[8:8 + n]), raw[8 + n:]
out, body = {}, b""
for k in sys.argv[3:]:
    b, e = h[k]["data_offsets"]
    out[k] = dict(h[k], data_offsets=[len(body), len(body) + e - b])
    body += data[b:e]
head = json.dumps(out).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(head)) + head + body)
