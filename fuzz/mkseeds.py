#!/usr/bin/env python3
"""Writes the hand-made seeds of the plot and eval targets, and the resume-*
seeds of the checkpoint target (fuzz/README.md says what each is for).

    fuzz/mkseeds.py [BUILD]     (BUILD: the build directory, default build)

The plot and eval seeds are binary records (the layouts are at the top of
fuzz_plot.c and fuzz_eval.c), so they are made here rather than by hand. The
resume seeds are checkpoints that `BUILD/nnc --save` writes from
fuzz_checkpoint.c's MODEL_TEXT, edited by tests/lit/cli/Inputs/mkckpt.py.
Python 3 standard library only.
"""
import os
import re
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
NAN, INF = float("nan"), float("inf")


def write(target, name, data):
    os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    with open(os.path.join(CORPUS, target, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- plot

def epochs(rows):
    """rows of (epoch, loss, acc, val_loss, val_acc, secs)."""
    return b"".join(struct.pack("<I5d", *r) for r in rows)


def plot_seeds():
    write("plot", "typical", epochs((e, 1 / e, 1 - 0.5 / e, -1, -1, 0.25) for e in range(1, 6)))
    write("plot", "validation", epochs((e, 1 / e, 0.5 + e / 20, 1.2 / e, 0.45 + e / 20, 0.5) for e in range(1, 8)))
    write("plot", "one-epoch", epochs([(1, 0.75, 0.5, -1, -1, 1)]))
    write("plot", "equal", epochs((e, 0.5, 0.5, 0.5, 0.5, 0) for e in range(1, 4)))
    write("plot", "not-measured", epochs((e, -1, -1, -1, -1, -1) for e in range(1, 4)))
    write("plot", "non-finite", epochs([(1, NAN, 0.5, INF, -INF, NAN), (2, 0.25, NAN, 0.5, 0.75, INF),
                                        (3, 0.125, 0.75, NAN, 0.5, 1)]))
    write("plot", "many", epochs((e, 2 ** -(e / 10), e / 80, -1, -1, 0.01) for e in range(1, 71)))
    write("plot", "gaps", epochs([(1, 3, 0.1, -1, -1, 1), (5, 2, 0.2, -1, -1, 1), (1000, 1, 0.3, -1, -1, 1)]))
    write("plot", "large", epochs([(0, 1e300, 1, -1, -1, 0), (2147483646, 1e-300, 0, -1, -1, 0),
                                   (2147483647, 1e10, 0.5, -1, -1, 0)]))


# ---------------------------------------------------------------- eval

def eval_input(k, classify, double, label_type, batch, labels, outputs):
    """label_type: (index in fuzz_eval.c's table, struct code)."""
    n = len(labels)
    head = bytes([(k - 1) | (8 if classify else 0) | (16 if double else 0), label_type[0], n - 1, batch - 1])
    body = b"".join(struct.pack(">" + label_type[1], v) for v in labels)
    return head + body + b"".join(struct.pack("<d", v) for v in outputs)


U8, I8, I16, I32, F32, F64 = (0, "B"), (1, "b"), (2, "h"), (3, "i"), (4, "f"), (5, "d")


def eval_seeds():
    six = [0.1, 0.7, 0.2, 0.8, 0.1, 0.1, 0.3, 0.3, 0.4, 0.2, 0.2, 0.6, 0.9, 0.05, 0.05, 0.1, 0.1, 0.8]
    write("eval", "classifier-u8", eval_input(3, True, False, U8, 4, [1, 0, 2, 2, 0, 2], six))
    write("eval", "classifier-f64-double", eval_input(3, True, True, F64, 1, [1.0, 0.0, 2.0, 2.0, 0.0, 2.0], six))
    write("eval", "classifier-i16-batch5", eval_input(3, True, False, I16, 5, [1, 0, 2, 2, 0, 1], six))
    write("eval", "label-too-large", eval_input(3, True, False, U8, 4, [1, 0, 200, 2, 0, 2], six))
    write("eval", "label-negative", eval_input(3, True, False, I8, 4, [1, 0, -1, 2, 0, 2], six))
    write("eval", "label-huge", eval_input(3, True, False, I32, 4, [1, 0, 100000000, 2, 0, 2], six))
    write("eval", "label-nan", eval_input(3, True, False, F32, 4, [1, 0, NAN, 2, 0, 2], six))
    write("eval", "label-fraction", eval_input(3, True, True, F64, 4, [1, 0, 2.5, 2, 0, 2], six))
    write("eval", "regression-labels", eval_input(1, False, False, F32, 2, [NAN, INF, -1e30, 0.5], [0.1, 0.2, 0.3, 0.4]))
    write("eval", "outputs-hostile", eval_input(2, True, False, U8, 3, [0, 1, 1, 0],
                                                [0.5, NAN, NAN, NAN, 1, 1, -INF, INF]))
    write("eval", "loss-nan", eval_input(2, True, False, U8, 2, [0, 1], [NAN, 0.5, 0.5, 0.25]))
    write("eval", "largest", eval_input(8, True, True, U8, 8, [i % 8 for i in range(64)],
                                        [((i * 37) % 101) / 100 for i in range(64 * 8)]))


# ---------------------------------------------------------------- checkpoint

def checkpoint_seeds(build):
    src = open(os.path.join(ROOT, "fuzz", "fuzz_checkpoint.c")).read()
    literal = re.search(r"MODEL_TEXT\[\] = (.*?);\n", src, re.S).group(1)
    text = "".join(bytes(p, "ascii").decode("unicode_escape") for p in re.findall(r'"((?:[^"\\]|\\.)*)"', literal))
    nnc, mkidx = os.path.join(build, "nnc"), os.path.join(build, "tests", "mkidx")
    mkckpt = os.path.join(ROOT, "tests", "lit", "cli", "Inputs", "mkckpt.py")
    with tempfile.TemporaryDirectory() as tmp:
        model, data = os.path.join(tmp, "tiny.nn"), os.path.join(tmp, "d")
        with open(model, "w") as f:
            f.write(text)
        run = lambda *a: subprocess.run(a, check=True, stdout=subprocess.DEVNULL)
        run(mkidx, data, "--n", "8", "--test-n", "0", "--shape", "2x2", "--classes", "2")
        images = os.path.join(data, "train-images-idx3-ubyte")
        good = os.path.join(tmp, "epoch3")
        run(nnc, model, "--train", images, "--epochs", "3", "--seed", "7", "--save", good)

        def variant(name, *edits):
            """good with metadata KEY VALUE edits, as corpus/checkpoint/resume-NAME."""
            out = os.path.join(tmp, name)
            run("python3", mkckpt, "meta", good, out, *edits[0])
            for edit in edits[1:]:
                run("python3", mkckpt, "meta", out, out, *edit)
            write("checkpoint", "resume-" + name, open(out, "rb").read())

        variant("mid-epoch", ("step", "1"), ("seen", "4"), ("correct", "2"), ("loss_sum", "0x1.8p+1"))
        variant("history-nan", ("history", r"1 nan -0x1p+0 nan -0x1p+0\n2 0x1p-1 nan inf -inf\n"
                                           r"3 -nan 0x1p-1 0x1p-2 0x1p-1\n"))
        variant("validation", ("history", r"1 0x1p+0 0x1p-1 0x1.8p+0 0x1p-2\n2 0x1p-1 0x1.8p-1 0x1p+0 0x1p-1\n"
                                          r"3 0x1p-2 0x1.cp-1 0x1.8p-1 0x1.8p-1\n"))
        variant("early-stop", ("best_epoch_bad_epochs", "2 1"), ("best", "0x1p-8"))
        variant("last-epoch", ("epoch", "999999"))
        variant("past-max", ("epoch", "1000000"))
        history = "".join(r"%d 0x1.%03xp-1 0x1p-1 -0x1p+0 -0x1p+0\n" % (e, (e * 37) % 4096) for e in range(1, 65))
        variant("history-64", ("history", history), ("epoch", "64"))
        write("checkpoint", "resume-epoch3", open(good, "rb").read())


if __name__ == "__main__":
    plot_seeds()
    eval_seeds()
    checkpoint_seeds(os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")))
