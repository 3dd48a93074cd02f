"""agree.py A B: two --print-params outputs hold the same tensors, each
element equal to float32 rounding: data-parallel training sums a batch's
gradients in another order than one process, so each step may differ by a
few units in the last place of float32 (2^-23 relative), and a few steps
of SGD compound that to well under rtol + atol below; a rank that trained
on its own slice, or skipped the sum, is off by orders of magnitude more."""
import re
import sys

RTOL, ATOL = 1e-5, 1e-6


def load(path):
    tensors = {}
    for line in open(path):
        m = re.match(r"^([\w.]+) = (\[.*\])$", line.strip())
        if m:
            tensors[m.group(1)] = [float(v) for v in re.findall(r"[-+]?[0-9.]+(?:e[-+]?[0-9]+)?", m.group(2))]
    return tensors


a, b = load(sys.argv[1]), load(sys.argv[2])
if not a or sorted(a) != sorted(b):
    sys.exit(f"agree.py: the tensors differ: {sorted(a)} against {sorted(b)}")
for name in a:
    if len(a[name]) != len(b[name]):
        sys.exit(f"agree.py: {name} has {len(a[name])} elements against {len(b[name])}")
    for i, (x, y) in enumerate(zip(a[name], b[name])):
        if abs(x - y) > ATOL + RTOL * abs(x):
            sys.exit(f"agree.py: {name}[{i}] = {x} against {y}")
print(f"agree.py: {len(a)} tensors agree")
