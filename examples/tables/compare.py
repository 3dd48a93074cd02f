"""nnc's models beside this file against scikit-learn's MLPClassifier
(MLPRegressor for diabetes) on the tables split.py writes: the same train and
test rows, the same hidden layer of 32 relu units, the inputs standardized on
the training set (StandardScaler; nnc --normalize). scikit-learn runs twice:
at its defaults (Adam lr 1e-3, L2 alpha 1e-4, batch min(200, n), up to 200
epochs, stopping when the training loss has not improved by 1e-4 for 10),
and with the nnc model's learning rate, epochs and batch (read from it).
nnc runs twice too: for the model's epochs, and stopping on its training
loss as scikit-learn does (--early-stop 11 --min-delta 1e-4 --stop-rule
sklearn: tol 1e-4, more than n_iter_no_change = 10 epochs, and
scikit-learn's rule, which moves the best loss to any lower loss where
Keras' moves it only by more than min_delta).
Each side runs SEEDS seeds (nnc --seed 1..SEEDS, scikit-learn random_state
0..SEEDS-1); the table gives the test accuracy's (diabetes: the test mean
absolute error's, lower is better) mean, standard deviation, min and max,
and nnc's means (for its epochs, and stopping as scikit-learn does) less
scikit-learn's, with the standard error of each difference (seed i+1 of nnc paired with random_state i of scikit-learn,
independent draws).

    python3 compare.py DATA_DIR [SEEDS [NNC [SET...]]]
        (a python3 with scikit-learn: Debian's is /usr/bin/python3; SEEDS:
        default 100, as the README's table; NNC: default nnc on the PATH;
        SET: iris, wine, breast-cancer, digits, diabetes, default all)

factors.py and cv.py use its functions."""
import math
import os
import re
import statistics
import subprocess
import sys
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, mean_absolute_error
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

here = os.path.dirname(os.path.abspath(__file__))
# name, label column, regression
SETS = [("iris", "species", False), ("wine", "cultivar", False), ("breast-cancer", "diagnosis", False),
        ("digits", "digit", False), ("diabetes", "progression", True)]
# scikit-learn's stopping, its numbers and its rule, as nnc options
SKLEARN_STOPPING = ["--early-stop", "11", "--min-delta", "1e-4", "--stop-rule", "sklearn"]


def load(data, name, part):
    with open(os.path.join(data, "%s-%s.csv" % (name, part))) as f:
        rows = [line.rstrip("\r\n").split(",") for line in f][1:]
    return np.array([[float(v) for v in r[:-1]] for r in rows]), [r[-1] for r in rows]


def model_path(name):
    return os.path.join(here, name + ".nn")


def run_nnc(nnc, model, data, name, label, regression, seed, options):
    """The test accuracy (a regression: mae) of nnc's MODEL file trained on DATA's NAME tables."""
    out = subprocess.run([nnc, model, "--train", os.path.join(data, name + "-train.csv"),
                          "--label" if not regression else "--target", label, "--test",
                          os.path.join(data, name + "-test.csv"), "--normalize", "--seed", str(seed)] + options,
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"^test .*%s ([0-9.]+)" % ("mae" if regression else "acc"), out, re.M).group(1))


def settings(model):
    """The nnc MODEL file's learning rate, epochs and batch, as scikit-learn's options."""
    with open(model) as f:
        text = f.read()
    lr = float(re.search(r"adam\(lr = ([0-9.e-]+)", text).group(1))
    epochs, batch = re.search(r"epochs = (\d+), batch = (\d+)", text).groups()
    return {"learning_rate_init": lr, "max_iter": int(epochs), "batch_size": int(batch)}


def run_sklearn(data, name, regression, seed, options, estimator=None):
    """The test accuracy (a regression: mae) of scikit-learn's MLPClassifier
    (MLPRegressor), or of ESTIMATOR, a subclass of it, with OPTIONS on DATA's
    NAME tables."""
    (x, y), (xt, yt) = load(data, name, "train"), load(data, name, "test")
    estimator = estimator or (MLPRegressor if regression else MLPClassifier)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter epochs end before its tolerance is met
        m = make_pipeline(StandardScaler(), estimator((32,), random_state=seed, **options))
        if regression:
            m.fit(x, np.array(y, dtype=float))
            return mean_absolute_error(np.array(yt, dtype=float), m.predict(xt))
        m.fit(x, y)
        return accuracy_score(yt, m.predict(xt))


def summary(v, digits):
    """Mean ± sd (min-max)."""
    f = "%%.%df" % digits
    return (f + " ± " + f + " (" + f + "-" + f + ")") % (statistics.mean(v), statistics.stdev(v), min(v), max(v))


def difference(a, b, digits):
    """The mean of a[i] - b[i] and its standard error. The pairs are
    independent draws: runs with independent seeds (whose difference's
    variance is then var(a) + var(b)), or runs on the same fold (cv.py)."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    return "%+.*f (SE %.*f)" % (digits, statistics.mean(d), digits, statistics.stdev(d) / math.sqrt(len(d)))


def main():
    data = sys.argv[1]
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    nnc = sys.argv[3] if len(sys.argv) > 3 else "nnc"
    sets = [s for s in SETS if s[0] in sys.argv[4:]] if len(sys.argv) > 4 else SETS
    print("| data set | train/test | nnc's Adam lr, epochs, batch | nnc mean ± sd (min-max) "
          "| nnc, stopping as scikit-learn does | scikit-learn, defaults "
          "| scikit-learn, nnc's lr, epochs, batch | nnc - scikit-learn defaults "
          "| nnc - scikit-learn, nnc's settings | nnc stopping as scikit-learn - scikit-learn defaults "
          "| nnc stopping as scikit-learn - scikit-learn, nnc's settings |")
    print("|---|---:|---|---|---|---|---|---|---|---|---|")
    for name, label, regression in sets:
        digits = 2 if regression else 4
        used = settings(model_path(name))
        a = [run_nnc(nnc, model_path(name), data, name, label, regression, s + 1, []) for s in range(seeds)]
        a2 = [run_nnc(nnc, model_path(name), data, name, label, regression, s + 1, SKLEARN_STOPPING)
              for s in range(seeds)]
        b = [run_sklearn(data, name, regression, s, {}) for s in range(seeds)]
        c = [run_sklearn(data, name, regression, s, used) for s in range(seeds)]
        sizes = "%d/%d" % (len(load(data, name, "train")[1]), len(load(data, name, "test")[1]))
        print("| %s%s | %s | %g, %d, %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, " (mae)" if regression else "", sizes, used["learning_rate_init"], used["max_iter"],
            used["batch_size"], summary(a, digits), summary(a2, digits), summary(b, digits), summary(c, digits),
            difference(a, b, digits), difference(a, c, digits), difference(a2, b, digits),
            difference(a2, c, digits)), flush=True)


if __name__ == "__main__":
    main()
