# close.py A.csv B.csv TOL: two --predict CSVs of the same samples agree
# value by value within TOL (absolute: the outputs are probabilities).
import csv, sys

a, b = (list(csv.reader(open(p))) for p in sys.argv[1:3])
tol = float(sys.argv[3])
assert a[0] == b[0] and len(a) == len(b), "different headers or row counts"
worst = max(abs(float(x) - float(y)) for ra, rb in zip(a[1:], b[1:]) for x, y in zip(ra[2:], rb[2:]))
print("max difference %.3g" % worst)
sys.exit(0 if worst <= tol else 1)
