"""check_named.py PRED TABLE: the predictions' columns (after index) name
TABLE's columns, and each column of predictions is close to the one it
names, row by row (a model trained to a small loss): prints the names, or
says which column is far from the values it names."""
import csv, sys

pred = list(csv.reader(open(sys.argv[1], newline="")))
table = list(csv.reader(open(sys.argv[2], newline="")))
names = pred[0][1:]
for name in names:
    j, k = pred[0].index(name), table[0].index(name)
    worst = max(abs(float(p[j]) - float(t[k])) for p, t in zip(pred[1:], table[1:]))
    if worst > 0.1:
        sys.exit("column %s is %g from the values of %s" % (name, worst, name))
print("named after:", ",".join(names), "rows:", len(pred) - 1)
