"""scikit-learn's numbers on the tables split.py writes, for comparison with
the models beside this file: MLPClassifier (and MLPRegressor for diabetes)
with the same hidden layer of 32 relu units, the inputs standardized on the
training set (StandardScaler, as nnc --normalize), Adam at the same learning
rate, batch and epochs as the models, five seeds (nnc: --seed 1 to 5).

    python3 sklearn_baseline.py DATA_DIR    (a python3 with scikit-learn:
                                            Debian's is /usr/bin/python3)"""
import os
import sys

import numpy as np
from sklearn.metrics import accuracy_score, mean_absolute_error
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

data = sys.argv[1]


def load(name, part):
    with open(os.path.join(data, "%s-%s.csv" % (name, part))) as f:
        rows = [line.rstrip("\n").split(",") for line in f][1:]
    return np.array([[float(v) for v in r[:-1]] for r in rows]), [r[-1] for r in rows]


seeds = range(5)
for name in ["iris", "wine", "breast-cancer", "digits", "diabetes"]:
    (x, y), (xt, yt) = load(name, "train"), load(name, "test")
    scores = []
    for seed in seeds:
        if name == "diabetes":
            m = make_pipeline(StandardScaler(), MLPRegressor((32,), learning_rate_init=0.01, batch_size=32,
                                                             max_iter=100, random_state=seed))
            m.fit(x, np.array(y, dtype=float))
            scores.append(mean_absolute_error(np.array(yt, dtype=float), m.predict(xt)))
        else:
            m = make_pipeline(StandardScaler(), MLPClassifier((32,), learning_rate_init=0.01, batch_size=32,
                                                              max_iter=100, random_state=seed))
            m.fit(x, y)
            scores.append(accuracy_score(yt, m.predict(xt)))
    print("%s: test %s %s, mean %.4f" % (name, "mae" if name == "diabetes" else "acc",
                                         " ".join("%.4f" % v for v in scores), sum(scores) / len(scores)))
