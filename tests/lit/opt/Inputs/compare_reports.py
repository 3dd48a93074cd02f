# Compares the per-epoch losses (and test loss) of two --report files:
#   compare_reports.py A.json B.json REL   (REL 0: bit-identical)
import json, sys

a, b = (json.load(open(p)) for p in sys.argv[1:3])
rel = float(sys.argv[3])
la = [e["loss"] for e in a["epochs"]] + [a["test_loss"]]
lb = [e["loss"] for e in b["epochs"]] + [b["test_loss"]]
assert len(la) == len(lb), (la, lb)
for x, y in zip(la, lb):
    if rel == 0:
        assert x == y, f"{x!r} != {y!r}"
    else:
        assert abs(x - y) <= rel * max(abs(x), abs(y)), f"{x} vs {y}: beyond {rel}"
print(f"{len(la)} losses agree within {rel}")
