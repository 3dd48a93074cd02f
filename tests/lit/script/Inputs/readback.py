"""Printed math must read back as the value printed next to it.
usage: readback.py NNC SCRIPT OUT_SCRIPT
Runs SCRIPT (its `let` lines, then `print` statements), takes each printed
line `[LABEL = ]EXPR = VALUE` and its `where t1 = ...` lines, writes a
script of the same lets that assigns the temporaries (renamed per print)
and prints each EXPR, runs that, and compares the values: equal to the
6 significant digits printed (a gradient that is the same along an axis
prints that axis once: the value read back is broadcast to the printed
one's shape, as NumPy would). Prints one line per expression; exits 1 on
any mismatch."""
import ast
import re
import subprocess
import sys

import itertools


def value(text):
    return ast.literal_eval(text.strip())


def shape(v):
    return [len(v)] + shape(v[0]) if isinstance(v, list) else []


def broadcast(v, s):
    """v (nested lists or a number) broadcast to shape s."""
    vs = shape(v)
    if len(vs) < len(s):
        return broadcast([v], s) if len(vs) + 1 <= len(s) else v
    if not s:
        return v
    if len(v) == 1 and s[0] != 1:
        v = v * s[0]
    return [broadcast(x, s[1:]) for x in v]


def flat(v):
    return list(itertools.chain.from_iterable(flat(x) for x in v)) if isinstance(v, list) else [v]


def close(a, b):
    return abs(a - b) <= 1e-5 * max(abs(a), abs(b), 1e-30)


def main():
    nnc, script, out = sys.argv[1:4]
    lines = open(script).read().splitlines()
    lets = [l for l in lines if l.startswith("let ")]
    printed = subprocess.run([nnc, script], stdout=subprocess.PIPE, check=True, text=True).stdout.splitlines()
    exprs = []  # (expr, value, temporaries)
    for line in printed:
        if line.startswith("  where "):
            exprs[-1][2].extend(d.strip() for d in re.split(r", (?=t\d+ = )", line[len("  where "):]))
            continue
        parts = line.split(" = ")
        exprs.append((parts[-2], parts[-1], []))
    body = list(lets)
    for k, (expr, _, temps) in enumerate(exprs):
        rename = lambda s: re.sub(r"\bt(\d+)\b", lambda m: "t%s_%d" % (m.group(1), k), s)
        body += [rename(t) for t in temps] + ["print " + rename(expr)]
    open(out, "w").write("\n".join(body) + "\n")
    again = subprocess.run([nnc, out], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if again.returncode != 0:
        print(again.stdout)
        return 1
    bad = 0
    for (expr, want, _), line in zip(exprs, again.stdout.splitlines()):
        w, g = value(want), value(line.split(" = ")[-1])
        gb = broadcast(g, shape(w))
        ok = shape(gb) == shape(w) and all(close(a, b) for a, b in zip(flat(gb), flat(w)))
        print("%s: %s reads back as %s%s" % ("ok" if ok else "WRONG", expr, line.split(" = ")[-1],
                                             "" if ok else ", printed " + want))
        bad += not ok
    print("%d expressions, %d read back wrong" % (len(exprs), bad))
    return 1 if bad or len(exprs) != len(again.stdout.splitlines()) else 0


sys.exit(main())
