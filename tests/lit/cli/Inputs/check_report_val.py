# Checks the validation metrics of a --report JSON: with a validation set
# every epoch has val_loss and val_accuracy (Keras' history names), equal to
# the lines printed (given as a second file); without one, neither key.
import json, re, sys

r = json.load(open(sys.argv[1]))
printed = [tuple(float(v) for v in m) for m in
           re.findall(r"val_loss ([0-9.]+)  val_acc ([0-9.]+)", open(sys.argv[2]).read())] if len(sys.argv) > 2 else []
for i, e in enumerate(r["epochs"]):
    if printed:
        assert abs(e["val_loss"] - printed[i][0]) < 1e-4 and abs(e["val_accuracy"] - printed[i][1]) < 1e-4, (e, printed[i])
    else:
        assert "val_loss" not in e and "val_accuracy" not in e, e
print("val ok", len(printed))
