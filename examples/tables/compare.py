"""nnc's models beside this file against scikit-learn's MLPClassifier
(MLPRegressor for diabetes) on the tables split.py writes: the same train and
test rows, the same hidden layer of 32 relu units, the inputs standardized on
the training set (StandardScaler; nnc --normalize). scikit-learn runs twice:
at its defaults (Adam lr 1e-3, L2 alpha 1e-4, batch min(200, n), up to 200
epochs, stopping when the training loss has not improved by 1e-4 for 10),
and with the nnc model's learning rate, epochs and batch (read from it).
nnc runs twice too: for the model's epochs, and stopping as scikit-learn
does (--early-stop 11 --min-delta 1e-4: it stops once its training loss has
not fallen by tol = 1e-4 for more than n_iter_no_change = 10 epochs).
Each side runs SEEDS seeds (nnc --seed 1..SEEDS, scikit-learn random_state
0..SEEDS-1); the table gives the test accuracy's (diabetes: the test mean
absolute error's, lower is better) mean, standard deviation, min and max.

    python3 compare.py DATA_DIR [SEEDS [NNC [SET...]]]
        (a python3 with scikit-learn: Debian's is /usr/bin/python3; NNC:
        default nnc on the PATH; SET: iris, wine, breast-cancer, digits,
        diabetes, default all)"""
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

data = sys.argv[1]
seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
nnc = sys.argv[3] if len(sys.argv) > 3 else "nnc"
here = os.path.dirname(os.path.abspath(__file__))
# name, label column, regression
sets = [("iris", "species", False), ("wine", "cultivar", False), ("breast-cancer", "diagnosis", False),
        ("digits", "digit", False), ("diabetes", "progression", True)]
sets = [s for s in sets if s[0] in sys.argv[4:]] if len(sys.argv) > 4 else sets
# scikit-learn's stopping rule as nnc options (see the note at the top)
sklearn_stopping = ["--early-stop", "11", "--min-delta", "1e-4"]


def load(name, part):
    with open(os.path.join(data, "%s-%s.csv" % (name, part))) as f:
        rows = [line.rstrip("\n").split(",") for line in f][1:]
    return np.array([[float(v) for v in r[:-1]] for r in rows]), [r[-1] for r in rows]


def run_nnc(name, label, regression, seed, options):
    out = subprocess.run([nnc, os.path.join(here, name + ".nn"), "--train", os.path.join(data, name + "-train.csv"),
                          "--label" if not regression else "--target", label, "--test",
                          os.path.join(data, name + "-test.csv"), "--normalize", "--seed", str(seed)] + options,
                         check=True, capture_output=True, text=True).stdout
    return float(re.search(r"^test .*%s ([0-9.]+)" % ("mae" if regression else "acc"), out, re.M).group(1))


def settings(name):
    """The nnc model's learning rate, epochs and batch."""
    with open(os.path.join(here, name + ".nn")) as f:
        text = f.read()
    lr = float(re.search(r"adam\(lr = ([0-9.e-]+)", text).group(1))
    epochs, batch = re.search(r"epochs = (\d+), batch = (\d+)", text).groups()
    return {"learning_rate_init": lr, "max_iter": int(epochs), "batch_size": int(batch)}


def run_sklearn(name, regression, seed, options):
    (x, y), (xt, yt) = load(name, "train"), load(name, "test")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter epochs end before its tolerance is met
        if regression:
            m = make_pipeline(StandardScaler(), MLPRegressor((32,), random_state=seed, **options))
            m.fit(x, np.array(y, dtype=float))
            return mean_absolute_error(np.array(yt, dtype=float), m.predict(xt))
        m = make_pipeline(StandardScaler(), MLPClassifier((32,), random_state=seed, **options))
        m.fit(x, y)
        return accuracy_score(yt, m.predict(xt))


print("| data set | train/test | nnc's Adam lr, epochs, batch | nnc mean ± sd (min-max) "
      "| nnc, scikit-learn's stopping | scikit-learn, defaults | scikit-learn, nnc's lr, epochs, batch |")
print("|---|---:|---|---|---|---|---|")
for name, label, regression in sets:
    digits = 2 if regression else 4
    f = "%%.%df" % digits
    summary = lambda v: (f + " ± " + f + " (" + f + "-" + f + ")") % (statistics.mean(v), statistics.stdev(v),
                                                                   min(v), max(v))
    a = [run_nnc(name, label, regression, s + 1, []) for s in range(seeds)]
    a2 = [run_nnc(name, label, regression, s + 1, sklearn_stopping) for s in range(seeds)]
    b = [run_sklearn(name, regression, s, {}) for s in range(seeds)]
    c = [run_sklearn(name, regression, s, settings(name)) for s in range(seeds)]
    sizes = "%d/%d" % (len(load(name, "train")[1]), len(load(name, "test")[1]))
    used = settings(name)
    print("| %s%s | %s | %g, %d, %d | %s | %s | %s | %s |" % (
        name, " (mae)" if regression else "", sizes, used["learning_rate_init"], used["max_iter"],
        used["batch_size"], summary(a), summary(a2), summary(b), summary(c)), flush=True)
