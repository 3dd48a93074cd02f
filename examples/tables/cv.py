"""factors.py's variants by k-fold cross-validation inside each training
table split.py writes, so that a model's settings can be chosen without the
test table: the training rows shuffled with random.Random(0) and cut into
FOLDS folds; each fold in turn is the held-out table, the other rows the
training table (standardized on those, as --normalize does). The table
pools the folds: FOLDS x SEEDS accuracies (diabetes: maes) a variant, each
difference paired by fold and seed.

    python3 cv.py DATA_DIR [FOLDS [SEEDS [NNC [SET...]]]]
        (FOLDS default 5, SEEDS default 20; SET: iris, wine, breast-cancer,
        digits, diabetes, default all)"""
import os
import random
import sys
import tempfile

import compare
import factors


def folds(data, name, k, tmp):
    """Writes k directories under TMP, each with NAME-train.csv and
    NAME-test.csv cut from DATA's NAME-train.csv, and returns them."""
    with open(os.path.join(data, name + "-train.csv"), newline="") as f:
        header, *rows = f.readlines()
    random.Random(0).shuffle(rows)
    dirs = []
    for i in range(k):
        d = os.path.join(tmp, "%s-fold%d" % (name, i))
        os.makedirs(d)
        for part, chunk in (("test", rows[i::k]), ("train", [r for j, r in enumerate(rows) if j % k != i])):
            with open(os.path.join(d, "%s-%s.csv" % (name, part)), "w", newline="") as f:
                f.writelines([header] + chunk)
        dirs.append(d)
    return dirs


def main():
    data = sys.argv[1]
    k = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    nnc = sys.argv[4] if len(sys.argv) > 4 else "nnc"
    sets = [s for s in compare.SETS if len(sys.argv) <= 5 or s[0] in sys.argv[5:]]
    with tempfile.TemporaryDirectory() as tmp:
        for name, label, regression in sets:
            pooled = None
            for d in folds(data, name, k, tmp):
                results = factors.measure(d, name, label, regression, seeds, nnc, tmp)
                pooled = results if pooled is None else [p + r for p, r in zip(pooled, results)]
            factors.table("%s, %d-fold cross-validation on the training table" % (name, k), name, regression,
                          pooled)


if __name__ == "__main__":
    main()
