# mkckpt.py KIND GOOD OUT [ARGS]: a broken variant of the checkpoint GOOD.
#   truncated  the file cut in half          overlap  two tensors share bytes
#   gap        bytes skipped between tensors  cap      header length over the limit
#   dtype      a tensor declared F16          shape    a parameter of another shape
#   missing    dense2.b left out              extra    one more tensor
#   json       the header is not JSON         weights-only  no optimizer state, no metadata
#   meta KEY VALUE  metadata KEY set to VALUE (\n in it: a newline); for
#              KEY history, as nnc saved it before the tensor nnc:history,
#              which is left out
#   meta-long KEY N TAIL  metadata KEY set to N x's and TAIL (as meta's VALUE)
#   unmeta KEY  metadata KEY left out (as nnc saved it before it had KEY)
#   history DTYPE ROWS  the tensor nnc:history of DTYPE (F64, F32) with
#              ROWS (rows of 7 numbers, ';' between rows, ',' between numbers)
#   sparse     one more tensor of 2 GiB, a hole in a sparse file
#   nan        dense1.W's element 1 a NaN
#   old-history  as nnc saved GOOD before the tensor nnc:history: its rows as
#              metadata text, a line "epoch loss acc val_loss val_acc" each
#   long-history    a history (metadata) of 420,000 good epochs (16 MB, under
#                   the header cap) and a broken one after them
#   no-heads   as nnc saved a model of several loss terms before it reported
#              each head: the history's 7 first columns alone, no metadata
#              history_columns and head_sums
import json, struct, sys

kind, good, out, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
raw = open(good, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n])
data = raw[8 + n:]
by_off = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][0])


def write(header, body, length=None):
    text = json.dumps(header).encode() if isinstance(header, dict) else header
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(text) if length is None else length) + text + body)


def drop(name):
    """The tensor NAME left out, the data after it moved up."""
    global data
    b, e = h.pop(name)["data_offsets"]
    for k in h:
        if k != "__metadata__" and h[k]["data_offsets"][0] >= e:
            h[k]["data_offsets"] = [o - (e - b) for o in h[k]["data_offsets"]]
    data = data[:b] + data[e:]


if kind == "truncated":
    open(out, "wb").write(raw[:len(raw) // 2])
elif kind == "overlap":
    b, e = h[by_off[1]]["data_offsets"]
    h[by_off[1]]["data_offsets"] = [b - 4, e - 4]
    write(h, data)
elif kind == "gap":
    for k in by_off[1:]:
        b, e = h[k]["data_offsets"]
        h[k]["data_offsets"] = [b + 4, e + 4]
    first_end = h[by_off[0]]["data_offsets"][1]
    write(h, data[:first_end] + b"\0" * 4 + data[first_end:])
elif kind == "cap":
    write(h, data, length=1 << 40)
elif kind == "dtype":
    h["dense1.b"]["dtype"] = "F16"
    write(h, data)
elif kind == "shape":
    h["dense1.W"]["shape"] = [16, 36]
    write(h, data)
elif kind == "missing":
    drop("dense2.b")
    write(h, data)
elif kind == "extra":
    h["dense9.W"] = {"dtype": "F32", "shape": [1], "data_offsets": [len(data), len(data) + 4]}
    write(h, data + b"\0" * 4)
elif kind == "sparse":
    size = 1 << 31
    h["dense9.W"] = {"dtype": "F32", "shape": [size // 4], "data_offsets": [len(data), len(data) + size]}
    write(h, data)
    with open(out, "r+b") as f:
        f.truncate(f.seek(0, 2) + size)
elif kind == "nan":
    b = h["dense1.W"]["data_offsets"][0] + 4
    write(h, data[:b] + struct.pack("<f", float("nan")) + data[b + 4:])
elif kind == "json":
    write(b'{"dense1.W": {"dtype": "F32",', data)
elif kind == "weights-only":
    keep = [k for k in by_off if not k.endswith(".velocity") and k != "nnc:history"]
    hh, body = {}, b""
    for k in keep:
        b, e = h[k]["data_offsets"]
        hh[k] = dict(h[k], data_offsets=[len(body), len(body) + e - b])
        body += data[b:e]
    write(hh, body)
elif kind == "meta":
    h["__metadata__"][args[0]] = args[1].replace("\\n", "\n")
    if args[0] == "history":
        drop("nnc:history")
    write(h, data)
elif kind == "meta-long":
    h["__metadata__"][args[0]] = "x" * int(args[1]) + args[2].replace("\\n", "\n")
    write(h, data)
elif kind == "unmeta":
    del h["__metadata__"][args[0]]
    write(h, data)
elif kind == "history":
    drop("nnc:history")
    rows = [[float(v) for v in r.split(",")] for r in args[1].split(";")] if args[1] else []
    code, size = ("d", 8) if args[0] == "F64" else ("f", 4)
    body = b"".join(struct.pack("<%d%s" % (len(r), code), *r) for r in rows)
    h["nnc:history"] = {"dtype": args[0], "shape": [len(rows), len(rows[0]) if rows else 7],
                        "data_offsets": [len(data), len(data) + len(body)]}
    write(h, data + body)
elif kind == "old-history":
    b, e = h["nnc:history"]["data_offsets"]
    v = struct.unpack("<%dd" % ((e - b) // 8), data[b:e])
    rows = [v[i:i + 7] for i in range(0, len(v), 7)]
    h["__metadata__"]["history"] = "".join("%d %s\n" % (r[0], " ".join(x.hex() for x in r[1:5])) for r in rows)
    drop("nnc:history")
    write(h, data)
elif kind == "no-heads":
    b, e = h["nnc:history"]["data_offsets"]
    rows, cols = h["nnc:history"]["shape"]
    v = struct.unpack("<%dd" % (rows * cols), data[b:e])
    body = b"".join(struct.pack("<7d", *v[i * cols:i * cols + 7]) for i in range(rows))
    drop("nnc:history")
    h["nnc:history"] = {"dtype": "F64", "shape": [rows, 7], "data_offsets": [len(data), len(data) + len(body)]}
    del h["__metadata__"]["history_columns"], h["__metadata__"]["head_sums"]
    write(h, data + body)
elif kind == "long-history":
    drop("nnc:history")
    n = 420000
    h["__metadata__"]["epoch"] = str(n + 1)
    h["__metadata__"]["history"] = "".join(f"{e} 0x1p+0 0x1p-1 -0x1p+0 -0x1p+0\n" for e in range(1, n + 1)) + f"{n + 1} 0x1p+0\n"
    write(h, data)
else:
    sys.exit("mkckpt: unknown kind " + kind)
