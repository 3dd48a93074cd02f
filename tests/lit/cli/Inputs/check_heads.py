"""check_heads.py FILE: every epoch of a two-heads.nn run, as FILE gives it
(the progress lines, the --log CSV or the --report JSON, by its extension),
has loss = logits_loss + 0.5 reg_loss (the total is the weighted sum of the
heads' unweighted losses) and reg_mse = reg_loss (that head's loss is its
mse), for training and validation; prints how many records it checked."""
import csv
import json
import re
import sys

path = sys.argv[1]
if path.endswith(".csv"):
    rows = [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(open(path))]
elif path.endswith(".json"):
    rows = [{k: v for k, v in e.items() if v is not None} for e in json.load(open(path))["epochs"]]
else:  # the progress lines: "name value" pairs
    rows = [{k: float(v) for k, v in re.findall(r"\b([a-z_]+) (-?[0-9.]+)", line)}
            for line in open(path) if "logits_loss" in line]
checked = 0
for r in rows:
    for pre in ("", "val_"):
        if pre + "logits_loss" not in r:
            continue
        tol = 2e-4 if path.endswith(".txt") else 1e-5  # 4 decimals printed, else 6 or 10 digits
        f = {k[len(pre):]: v for k, v in r.items() if k.startswith(pre)}
        assert abs(f["loss"] - (f["logits_loss"] + 0.5 * f["reg_loss"])) <= tol, (pre, r)
        assert abs(f["reg_mse"] - f["reg_loss"]) <= tol, (pre, r)
        assert 0 <= f["logits_acc" if "logits_acc" in f else "logits_accuracy"] <= 1 and f["reg_mae"] >= 0, r
        checked += 1
assert checked, "no record with the heads' values"
print("heads ok:", checked)
