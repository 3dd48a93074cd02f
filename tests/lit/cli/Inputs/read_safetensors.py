# A safetensors reader in the Python standard library only, to show that
# nnc's checkpoints are safetensors: it parses the file by the format's
# definition (u64 little-endian header length, JSON header, raw data),
# checks the tensors of model `small` (tests/lit/cli/Inputs/small.nn) and
# the run's history (float64, a row per epoch: epoch, loss, acc, val_loss,
# val_acc, mse, val_mse; -1 for what was not measured), then
# runs the model's forward pass with those weights on raw uint8 IDX images
# and compares the probabilities with the CSV written by nnc --predict.
#   read_safetensors.py CKPT IMAGES PREDICTIONS.csv
import csv, json, math, struct, sys

ckpt, images, preds = sys.argv[1:4]
raw = open(ckpt, "rb").read()
(hlen,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + hlen])
data = raw[8 + hlen:]
meta = header.pop("__metadata__")
assert meta["format"] == "nnc-checkpoint-1" and meta["model"] == "small", meta


def tensor(name, dtype="F32"):
    t = header[name]
    assert t["dtype"] == dtype, t
    b, e = t["data_offsets"]
    n = math.prod(t["shape"])
    size = 8 if dtype == "F64" else 4
    assert e - b == size * n, t
    return t["shape"], struct.unpack("<%d%s" % (n, "d" if dtype == "F64" else "f"), data[b:e])


want = {"dense1.W": [36, 16], "dense1.b": [16], "dense2.W": [16, 3], "dense2.b": [3],
        "dense1.W.velocity": [36, 16], "dense1.b.velocity": [16],
        "dense2.W.velocity": [16, 3], "dense2.b.velocity": [3], "nnc:history": [2, 7]}
assert {k: v["shape"] for k, v in header.items()} == want, header
ends = sorted(v["data_offsets"] for v in header.values())
assert ends[0][0] == 0 and ends[-1][1] == len(data)
assert all(a[1] == b[0] for a, b in zip(ends, ends[1:])), "offsets do not tile the data"
(_, W1), (_, b1), (_, W2), (_, b2) = (tensor(n) for n in ("dense1.W", "dense1.b", "dense2.W", "dense2.b"))
_, hist = tensor("nnc:history", "F64")
rows = [hist[i * 7:(i + 1) * 7] for i in range(2)]
assert [r[0] for r in rows] == [1, 2] and all(r[1] > 0 and 0 <= r[2] <= 1 for r in rows), rows
assert all(r[3:] == (-1, -1, -1, -1) for r in rows), rows  # no validation set, not a regression
print("history: epoch 2 loss %.4f acc %.4f" % rows[1][1:3])

img = open(images, "rb").read()
assert img[:4] == b"\x00\x00\x08\x03", "expected raw uint8 rank-3 IDX"
n, rows, cols = struct.unpack(">3I", img[4:16])
size = rows * cols
rows_csv = list(csv.reader(open(preds)))
assert rows_csv[0] == ["index", "class", "p0", "p1", "p2"], rows_csv[0]
assert len(rows_csv) == n + 1
worst = 0.0
for s in range(n):
    x = [v / 255.0 for v in img[16 + s * size:16 + (s + 1) * size]]
    h = [max(0.0, b1[j] + sum(x[i] * W1[i * 16 + j] for i in range(size))) for j in range(16)]
    z = [b2[k] + sum(h[j] * W2[j * 3 + k] for j in range(16)) for k in range(3)]
    m = max(z)
    e = [math.exp(v - m) for v in z]
    p = [v / sum(e) for v in e]
    got = [float(v) for v in rows_csv[s + 1][2:]]
    assert int(rows_csv[s + 1][1]) == max(range(3), key=lambda k: got[k])
    worst = max(worst, max(abs(a - b) for a, b in zip(p, got)))
assert worst < 1e-4, worst
print("read %d tensors; %d predictions match within %.1e" % (len(header), n, worst))
