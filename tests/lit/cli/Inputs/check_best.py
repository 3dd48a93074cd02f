# check_best.py LOG.csv BEST.safetensors COLUMN min|max: the --save-best
# checkpoint is from the first epoch with the best value of COLUMN in the
# --log, and the log ends 2 epochs (the patience) after that epoch.
import csv, json, struct, sys

log, best, column, how = sys.argv[1:5]
rows = list(csv.DictReader(open(log)))
values = [float(r[column]) for r in rows]
target = max(values) if how == "max" else min(values)
epoch = next(int(r["epoch"]) for r, v in zip(rows, values) if v == target)
raw = open(best, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
meta = json.loads(raw[8:8 + n])["__metadata__"]
assert int(meta["epoch"]) == epoch, (meta["epoch"], epoch)
assert int(rows[-1]["epoch"]) == epoch + 2, (rows[-1]["epoch"], epoch)
print("best checkpoint from epoch %d of %d" % (epoch, len(rows)))
