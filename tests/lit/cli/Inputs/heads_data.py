"""heads_data.py N DIR: N samples for two-heads.nn as .npy files: DIR/x.npy
float32 [N, 5] (its inputs a and b side by side), DIR/y.npy float32 [N, 3]
(its targets side by side: a class in 0..3, then two values); and both as
the members x and y of DIR/d.npz."""
import struct
import sys
import zipfile

n, out = int(sys.argv[1]), sys.argv[2]
x = [((i * 7 + k) % 17) / 16 for i in range(n) for k in range(5)]
y = [v for i in range(n) for v in (i % 4, x[5 * i] * 2, 1 - x[5 * i + 1])]


def npy(path, shape, v):
    header = ("{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % (shape,)).ljust(117) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00\x76\x00" + header.encode() + struct.pack("<%df" % len(v), *v))


npy(out + "/x.npy", (n, 5), x)
npy(out + "/y.npy", (n, 3), y)
with zipfile.ZipFile(out + "/d.npz", "w") as z:
    z.write(out + "/x.npy", "x.npy")
    z.write(out + "/y.npy", "y.npy")
