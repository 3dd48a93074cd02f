"""Writes fixed train/test splits of the data sets Debian's python3-sklearn
ships (sklearn/datasets/data/: the CSV files, read here with the standard
library alone) as CSV tables with a header, for the models beside this file:

    python3 split.py OUT_DIR [SKLEARN_DATA_DIR]

gives OUT_DIR/NAME-train.csv and NAME-test.csv for iris, wine, breast-cancer
(classes by name), digits (classes 0-9) and diabetes (a regression target):
each data set's rows shuffled with random.Random(0), a quarter to the test
set (scikit-learn's train_test_split default), the rest to training."""
import csv
import gzip
import os
import random
import sys

out = sys.argv[1]
data = sys.argv[2] if len(sys.argv) > 2 else "/usr/lib/python3/dist-packages/sklearn/datasets/data"
os.makedirs(out, exist_ok=True)


def write(name, header, rows):
    rows = list(rows)
    random.Random(0).shuffle(rows)
    n_test = (len(rows) + 3) // 4
    for part, chunk in (("test", rows[:n_test]), ("train", rows[n_test:])):
        with open(os.path.join(out, "%s-%s.csv" % (name, part)), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(chunk)
        print("%s-%s.csv: %d rows" % (name, part, len(chunk)))


def named(file, features, label):
    """sklearn's layout: a first row "n,features,class names...", then the
    features and the class index of each sample."""
    with open(os.path.join(data, file)) as f:
        r = csv.reader(f)
        names = next(r)[2:]
        return [features + [label]], [row[:-1] + [names[int(row[-1])]] for row in r]


(h,), rows = named("iris.csv", ["sepal_length", "sepal_width", "petal_length", "petal_width"], "species")
write("iris", h, rows)
(h,), rows = named("wine_data.csv", ["f%d" % i for i in range(13)], "cultivar")
write("wine", h, rows)
(h,), rows = named("breast_cancer.csv", ["f%d" % i for i in range(30)], "diagnosis")
write("breast-cancer", h, rows)
with gzip.open(os.path.join(data, "digits.csv.gz"), "rt") as f:
    write("digits", ["p%d" % i for i in range(64)] + ["digit"], (row for row in csv.reader(f)))
with gzip.open(os.path.join(data, "diabetes_data_raw.csv.gz"), "rt") as fx, \
        gzip.open(os.path.join(data, "diabetes_target.csv.gz"), "rt") as fy:
    x = [line.split() for line in fx]
    y = ["%g" % float(line) for line in fy]
    write("diabetes", ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "progression"],
          (a + [b] for a, b in zip(x, y)))
