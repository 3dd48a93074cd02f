"""What differs between nnc's model and scikit-learn's MLPClassifier
(MLPRegressor for diabetes) at the same learning rate, epochs and batch,
one factor at a time, on the tables split.py writes (compare.py runs the
two as they are):

  nnc's model with Keras' initialization (he_normal kernels before the
  relu, glorot_uniform after, zero biases: the initializers the model names
  removed) changed towards scikit-learn, one factor each, then all:
    - Glorot-uniform kernels (kernel_initializer = glorot_uniform);
    - scikit-learn's initialization: Glorot-uniform kernels AND biases
      uniform in the same +-sqrt(6 / (fan_in + fan_out)) (bias_initializer);
    - scikit-learn's L2 penalty: it adds 0.5 alpha sum(W^2) / n to each
      batch's mean loss (n the batch's size, kernels only, alpha 1e-4), so
      kernel_regularizer = l2(alpha / (2 batch)); a regression's loss is
      half the mean squared error there, so l2(alpha / batch) beside nnc's
      mse;
    - Adam's epsilon 1e-8 (Keras' and nnc's default is 1e-7);
    - stopping as it does (compare.py's --early-stop 11 --min-delta 1e-4
      --stop-rule sklearn);
    - all of these;
  scikit-learn changed towards nnc: no L2 penalty (alpha 0); Keras'
    initialization; both; and no stopping before max_iter.

Both shuffle every epoch and train on an epoch's last, partial batch; the
batch is the model's on both sides. Each variant runs SEEDS seeds; the table
gives the test accuracy's (diabetes: the test mae's) mean ± sd and its
difference from nnc with Keras' initialization and from scikit-learn at
nnc's settings, with the standard errors (paired by seed).

    python3 factors.py DATA_DIR [SEEDS [NNC [SET...]]]
        (SEEDS default 100; SET: iris, wine, breast-cancer, digits, diabetes,
        default all; cv.py runs the same variants on folds of the training
        table)"""
import math
import os
import re
import sys
import tempfile

import numpy as np
from scipy.stats import truncnorm
from sklearn.neural_network import MLPClassifier, MLPRegressor

import compare

ALPHA = 1e-4  # scikit-learn's default L2 penalty


class KerasInit:
    """Mixed into scikit-learn's MLPs: initialized as Keras' (and nnc's, by
    default) dense layers are: he_normal kernels before the relu (a normal truncated at two
    standard deviations, scaled so that its std is sqrt(2 / fan_in)),
    glorot_uniform for the output layer, zero biases."""

    def _init_coef(self, fan_in, fan_out, dtype):
        if len(self.coefs_) < self.n_layers_ - 2:  # a hidden layer: the coefficients before it are appended
            std = math.sqrt(2 / fan_in) / 0.87962566103423978
            w = truncnorm.rvs(-2, 2, scale=std, size=(fan_in, fan_out), random_state=self._random_state)
        else:
            bound = math.sqrt(6 / (fan_in + fan_out))
            w = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
        return w.astype(dtype, copy=False), np.zeros(fan_out, dtype=dtype)


class KerasInitClassifier(KerasInit, MLPClassifier):
    """MLPClassifier with Keras' initialization."""


class KerasInitRegressor(KerasInit, MLPRegressor):
    """MLPRegressor with Keras' initialization."""


def nnc_model(text, glorot=False, biases=False, l2=None, epsilon=None):
    """The model TEXT (a sequential model) with Keras' initialization (its
    dense layers' initializers removed), or with their kernels Glorot-uniform,
    their biases uniform in the same bound, an L2 penalty on the kernels, or
    Adam's epsilon given."""
    text = re.sub(r",\s*(?:kernel|bias)_initializer\s*=\s*\w+(?:\([^)]*\))?", "", text)
    fan_in = int(re.search(r"^\s*input\s+\w+\[(\d+)\]", text, re.M).group(1))

    def dense(m):
        nonlocal fan_in
        units = int(m.group(2))
        bound = math.sqrt(6 / (fan_in + units))
        fan_in = units
        return m.group(1) + "".join(
            (", kernel_initializer = glorot_uniform" if glorot else "",
             ", bias_initializer = uniform(%.6g, %.6g)" % (-bound, bound) if biases else "",
             ", kernel_regularizer = l2(%g)" % l2 if l2 is not None else ""))

    text = re.sub(r"^(\s*dense\s+(\d+)\b.*)$", dense, text, flags=re.M)
    return re.sub(r"adam\(([^)]*)\)", r"adam(\1, epsilon = %g)" % epsilon, text) if epsilon is not None else text


def variants(name, regression):
    """(title, nnc model text and options) and (title, scikit-learn options and class)."""
    with open(compare.model_path(name)) as f:
        text = f.read()
    used = compare.settings(compare.model_path(name))
    l2 = ALPHA / ((1 if regression else 2) * used["batch_size"])
    every = dict(glorot=True, biases=True, l2=l2, epsilon=1e-8)
    keras = nnc_model(text)
    nnc = [("nnc, Keras' initialization (he_normal kernels, zero biases)", keras, []),
           ("nnc, Glorot-uniform kernels", nnc_model(text, glorot=True), []),
           ("nnc, scikit-learn's initialization", nnc_model(text, glorot=True, biases=True), []),
           ("nnc, L2 %g (alpha %g)" % (l2, ALPHA), nnc_model(text, l2=l2), []),
           ("nnc, Adam epsilon 1e-8", nnc_model(text, epsilon=1e-8), []),
           ("nnc, stopping as scikit-learn does", keras, compare.SKLEARN_STOPPING),
           ("nnc, all of these", nnc_model(text, **every), compare.SKLEARN_STOPPING)]
    never = {"n_iter_no_change": used["max_iter"]}
    mlp, keras_mlp = (MLPRegressor, KerasInitRegressor) if regression else (MLPClassifier, KerasInitClassifier)
    sklearn = [("scikit-learn, nnc's lr, epochs, batch", dict(used), mlp),
               ("scikit-learn, alpha 0", dict(used, alpha=0), mlp),
               ("scikit-learn, Keras' initialization", dict(used), keras_mlp),
               ("scikit-learn, alpha 0 and Keras' initialization", dict(used, alpha=0), keras_mlp),
               ("scikit-learn, no stopping", dict(used, **never), mlp)]
    return nnc, sklearn


def measure(data, name, label, regression, seeds, nnc, tmp):
    """Each variant's test accuracies (a regression: maes) on DATA's NAME
    tables, seeds 1..SEEDS (scikit-learn 0..SEEDS-1), in variants' order;
    model files go to TMP."""
    nnc_variants, sklearn_variants = variants(name, regression)
    results = []
    for i, (_, text, options) in enumerate(nnc_variants):
        model = os.path.join(tmp, "%s-%d.nn" % (name, i))
        with open(model, "w") as f:
            f.write(text)
        results.append([compare.run_nnc(nnc, model, data, name, label, regression, s + 1, options)
                        for s in range(seeds)])
    for _, options, estimator in sklearn_variants:
        results.append([compare.run_sklearn(data, name, regression, s, options, estimator) for s in range(seeds)])
    return results


def table(title, name, regression, results):
    """Under TITLE, NAME's variants' mean ± sd and their differences from nnc
    with Keras' initialization and from scikit-learn at nnc's settings (the
    first of each side)."""
    nnc_variants, sklearn_variants = variants(name, regression)
    digits = 2 if regression else 4
    titles = [v[0] for v in nnc_variants + sklearn_variants]
    base, reference = results[0], results[len(nnc_variants)]
    print("| %s | mean ± sd (min-max) | - nnc, Keras' initialization | - scikit-learn, nnc's settings |" % title)
    print("|---|---|---|---|")
    for title, r in zip(titles, results):
        print("| %s | %s | %s | %s |" % (title, compare.summary(r, digits), compare.difference(r, base, digits),
                                        compare.difference(r, reference, digits)), flush=True)
    print()


def main():
    data = sys.argv[1]
    seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    nnc = sys.argv[3] if len(sys.argv) > 3 else "nnc"
    sets = [s for s in compare.SETS if len(sys.argv) <= 4 or s[0] in sys.argv[4:]]
    with tempfile.TemporaryDirectory() as tmp:
        for name, label, regression in sets:
            table(name + (", test mae" if regression else ", test accuracy"), name, regression,
                  measure(data, name, label, regression, seeds, nnc, tmp))


if __name__ == "__main__":
    main()
