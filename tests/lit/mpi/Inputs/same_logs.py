"""same_logs.py ONE OTHER...: the --log CSV files hold the same columns and
rows, every value equal to ONE's within a relative 1e-5 (float32 rounding;
empty cells alike), the seconds aside; prints "same logs"."""
import csv
import sys


def rows(path):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(path))]


one = rows(sys.argv[1])
for path in sys.argv[2:]:
    other = rows(path)
    if len(other) != len(one) or any(sorted(a) != sorted(b) for a, b in zip(one, other)):
        sys.exit("%s: not the same rows and columns as %s" % (path, sys.argv[1]))
    for a, b in zip(one, other):
        for k in a:
            x, y = float(a[k] or -1), float(b[k] or -1)
            if (a[k] == "") != (b[k] == "") or abs(x - y) > 1e-5 * max(1, abs(x)):
                sys.exit("%s: epoch %s: %s is %s, not %s" % (path, a["epoch"], k, b[k], a[k]))
print("same logs")
