"""Compiles and trains every file in examples/ for one short epoch, at -O0
and at -O2, and runs the statement-only scripts: the shipped examples must
work as shipped, at whatever vector width NNC_TARGET_FEATURES leaves (the
caller sets it). Each model gets the data it needs, small:
  - its own data block, if it has one;
  - else, with a `target`: raw float32 inputs and targets of its shapes
    (small values, so that no example's exp overflows);
  - else a synthetic classification set of its input's elements (mkidx).
usage: train_examples.py NNC MKIDX EXAMPLES_DIR WORK_DIR
Prints one line per run; exits 1 if any run failed."""
import glob
import os
import re
import subprocess
import sys

SAMPLES = 32


def shape(text, kind):
    m = re.search(r"^\s*" + kind + r"\s+\w+\[([0-9, ]+)\]", text, re.M)
    return [int(d) for d in m.group(1).split(",")] if m else None


def raw(mkidx, path, dims):
    n = 1
    for d in dims:
        n *= d
    values = ",".join("%g" % (0.01 * (i % 17) - 0.08) for i in range(n))
    subprocess.run([mkidx, "--raw", path, "--type", "f32", "--dims", ",".join(map(str, dims)),
                    "--values", values], check=True)


def data_options(mkidx, path, text, work):
    """The options that give the model at path its training data."""
    name = os.path.splitext(os.path.basename(path))[0]
    if re.search(r"^\s*data\s*\{", text, re.M):
        return ["--train"]
    x, y = shape(text, "input"), shape(text, "target")
    if y:
        raw(mkidx, os.path.join(work, name + "-x"), [SAMPLES] + x)
        raw(mkidx, os.path.join(work, name + "-y"), [SAMPLES] + y)
        return ["--train", os.path.join(work, name + "-x"), "--target", os.path.join(work, name + "-y")]
    d = os.path.join(work, name)
    # images [n, H, W] of the input's elements: [1, d] for a vector, [H, W C]
    # for an image of channels (a Fashion-MNIST file feeds [28, 28, 1] too)
    hw = [1] + x if len(x) == 1 else [x[0], x[1] * (x[2] if len(x) == 3 else 1)]
    subprocess.run([mkidx, d, "--n", str(SAMPLES), "--test-n", "0", "--classes", "10",
                    "--shape", "x".join(map(str, hw))], check=True)
    return ["--train", os.path.join(d, "train-images-idx3-ubyte")]


def main():
    nnc, mkidx, examples, work = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    failed = 0
    paths = sorted(glob.glob(os.path.join(examples, "*.nn")))
    for path in paths:
        with open(path) as f:
            text = f.read()
        opts = []
        if re.search(r"^\s*model\s", text, re.M):
            opts = data_options(mkidx, path, text, work) + ["--epochs", "1", "--batch", "8"]
        for level in ("-O0", "-O2"):
            r = subprocess.run([nnc, level, path] + opts, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            print("%s %s: %s" % (os.path.basename(path), level, "ok" if r.returncode == 0
                                 else "exit %d\n%s" % (r.returncode, r.stdout)))
            failed += r.returncode != 0
    print("%d examples, %d runs failed" % (len(paths), failed))
    return 1 if failed or not paths else 0


sys.exit(main())
