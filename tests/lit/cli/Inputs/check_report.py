# Checks the --report JSON of a training run: every field there and sane.
import json, sys

r = json.load(open(sys.argv[1]))
epochs = int(sys.argv[2])
assert len(r["epochs"]) == epochs, r["epochs"]
for i, e in enumerate(r["epochs"]):
    assert e["epoch"] == i + 1 and e["seconds"] > 0 and 0 <= e["accuracy"] <= 1, e
if epochs > 1:
    assert r["epochs"][-1]["loss"] < r["epochs"][0]["loss"], "loss did not go down"
assert 0 <= r["test_accuracy"] <= 1 and r["test_loss"] > 0
assert r["compile_seconds"] > 0 and r["peak_rss_bytes"] > 1 << 20
assert r["seed"] >= 0 and r["batch"] > 0 and r["lr"] > 0
print("report ok")
