# dropout.py model N RATE OUT.nn OUT.idx: a model whose output is dropout(x * w) on
# one sample of N ones, w [N] starting at ones, mae against -1 (below every
# output of the first two steps), plain SGD with lr = N (1 - RATE): a step
# moves a kept element of w by exactly lr (1 / (1 - RATE)) / N = 1 and
# leaves a dropped one where it was. OUT.idx: that sample, as float32 IDX.
#
# dropout.py check CKPT PREDICTIONS.csv RATE STEPS: the checkpoint's w after
# STEPS such steps, each element 1 - (the steps that kept it), so
#   - the fraction of steps dropping an element is RATE within 5 standard
#     deviations (binomial), and every kept element moved by exactly 1: the
#     1 / (1 - RATE) scale;
#   - after two steps, the elements kept once are 2 RATE (1 - RATE) of them:
#     each step draws its own mask;
#   - the predictions (the evaluation step on x = ones) are w itself: no
#     element dropped, none scaled.
import csv, json, math, struct, sys

if sys.argv[1] == "model":
    n, rate, out, idx = int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
    ones, targets = ", ".join(["1"] * n), ", ".join(["-1"] * n)
    open(out, "w").write(f"""model drop {{
    input  x[{n}]
    target y[{n}]
    param  w[{n}] = ones
    h = dropout(x * w, {rate})
    loss   mae(h, y)
    optimizer sgd(lr = {n * (1 - rate):g})
    train  epochs = 1, batch = 1
    data {{ x = [[{ones}]], y = [[{targets}]] }}
}}
""")
    open(idx, "wb").write(struct.pack(">BBBBII", 0, 0, 0x0D, 2, 1, n) + struct.pack(">%df" % n, *[1.0] * n))
    sys.exit(0)

ckpt, preds, rate, steps = sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
raw = open(ckpt, "rb").read()
(hlen,) = struct.unpack("<Q", raw[:8])
t = json.loads(raw[8:8 + hlen])["w"]
b, e = t["data_offsets"]
w = struct.unpack("<%df" % (t["shape"][0]), raw[8 + hlen + b:8 + hlen + e])
n = len(w)
kept = [round(1 - v) for v in w]
bad = [v for v in w if abs(v - round(v)) > 1e-5 or not 0 <= 1 - round(v) <= steps]
assert not bad, "elements not moved by a whole number of steps (the scale is not 1 / (1 - rate)): %s" % bad[:5]
dropped = sum(steps - k for k in kept) / (n * steps)
sd = math.sqrt(rate * (1 - rate) / (n * steps))
assert abs(dropped - rate) <= 5 * sd, "dropped %.4f of the elements, expected %.2f +- %.4f" % (dropped, rate, 5 * sd)
print("dropped %.2f of the elements; kept ones scaled by 1 / (1 - rate)" % round(dropped, 2))
if steps == 2:
    once = kept.count(1) / n
    want = 2 * rate * (1 - rate)
    assert abs(once - want) < 5 * math.sqrt(want * (1 - want) / n), "kept once: %.4f, expected %.4f" % (once, want)
    print("kept by one step of two: %.2f" % round(once, 2))
rows = list(csv.reader(open(preds)))
got = [float(v) for v in rows[1][1:]]
assert len(got) == n and all(abs(g - v) <= 1e-6 * max(1, abs(v)) for g, v in zip(got, w)), "predictions are not w"
print("evaluation: the identity")
