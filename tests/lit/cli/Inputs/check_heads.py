"""check_heads.py FILE: every epoch line of a two-heads.nn run (progress on
stdin, or FILE) has loss = logits_loss + 0.5 reg_loss (the weighted sum of
the heads' unweighted losses) and reg_mse = reg_loss (that head's loss is
the mse), to the 4 decimals printed, for training and validation."""
import re
import sys

text = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
lines = 0
for line in text.splitlines():
    for pre in ("", "val_"):
        v = dict(re.findall(r"\b(" + pre + r"[a-z_]+) (-?[0-9.]+)", line))
        if pre + "logits_loss" not in v:
            continue
        f = {k[len(pre):]: float(x) for k, x in v.items() if k.startswith(pre)}
        assert abs(f["loss"] - (f["logits_loss"] + 0.5 * f["reg_loss"])) <= 2e-4, line
        assert abs(f["reg_mse"] - f["reg_loss"]) <= 1e-4, line
        assert 0 <= f["logits_acc"] <= 1 and f["reg_mae"] >= 0, line
        lines += 1
assert lines, "no line with the heads' values"
print("heads ok:", lines)
