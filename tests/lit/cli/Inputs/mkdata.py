"""Writes the data files of csv.test and npy.test with the standard library
alone (no numpy): CSV tables in their variants, .npy arrays of every dtype in
either byte order and layout, .npz archives stored and deflated.

    mkdata.py DIR
"""
import gzip, os, struct, sys, zipfile

out = sys.argv[1]
os.makedirs(out, exist_ok=True)

# 24 rows of 4 features whose class is which of the first three is largest.
rows = []
for i in range(24):
    f = [((i * 7 + k * 5) % 11) / 10 for k in range(4)]
    c = max(range(3), key=lambda k: f[k])
    rows.append((f, c))
names = ["setosa", "versicolor", "virginica"]


def write(name, text, gz=False):
    data = text.encode()
    with open(os.path.join(out, name), "wb") as fh:
        fh.write(gzip.compress(data) if gz else data)


table = "a,b,c,d,species\n" + "".join(
    ",".join("%g" % v for v in f) + ",%s\n" % names[c] for f, c in rows)
write("names.csv", table)
write("names.csv.gz", table, gz=True)  # a .gz by content: the name says csv.gz
write("renamed.data", table, gz=True)  # and by content alone
ints = "id;a;b;c;d;class\r\n\r\n" + "".join(  # a blank line too
    "row%d;" % i + ";".join("%g" % v for v in f) + ";%d\r\n" % c for i, (f, c) in enumerate(rows))
write("semicolon-crlf.csv", ints)
quoted = 'a,b,"c, the third",d,species\n' + "".join(
    ",".join('"%g"' % v for v in f) + ',"%s"\n' % names[c] for f, c in rows)
write("quoted.csv", quoted)
write("first-crlf.csv", "species,a,b,c,d\r\n" + "".join(  # numbers last, before "\r\n"
    "%s," % names[c] + ",".join("%g" % v for v in f) + "\r\n" for f, c in rows))
write("noheader.csv", "".join(",".join("%g" % v for v in f) + ",%d\n" % c for f, c in rows))
write("reordered.csv", "species,d,c,b,a\n" + "".join(
    "%s," % names[c] + ",".join("%g" % v for v in reversed(f)) + "\n" for f, c in rows))
# Regression: y = a + 2b, z = c - d.
write("reg.csv", "a,b,c,d,y,z\n" + "".join(
    ",".join("%g" % v for v in f) + ",%g,%g\n" % (f[0] + 2 * f[1], f[2] - f[3]) for f, _ in rows))
regs = [(f, f[0] + 2 * f[1], f[2] - f[3]) for f, _ in rows]
write("reg-noheader.csv", "".join(",".join("%g" % v for v in f) + ",%g,%g\n" % (y, z) for f, y, z in regs))
# Target columns a checkpoint could not name the predictions after: a name
# with a line break, a column with no name.
write("reg-linebreak.csv", 'a,b,c,d,"y\nq",z\n' + "".join(
    ",".join("%g" % v for v in f) + ",%g,%g\n" % (y, z) for f, y, z in regs))
write("reg-unnamed.csv", "a,b,c,d,,z\n" + "".join(
    ",".join("%g" % v for v in f) + ",%g,%g\n" % (y, z) for f, y, z in regs))
# Class names a CSV writer must quote: a comma, a quote.
odd = ["plain", "comma, inside", 'a "quoted" word']
write("odd-classes.csv", "a,b,c,d,species\n" + "".join(
    ",".join("%g" % v for v in f) + ',"%s"\n' % odd[c].replace('"', '""') for f, c in rows))

# Malformed tables, one problem each.
write("bad-number.csv", "a,b,c,d,species\n1,2,3,4,setosa\n1,2,x3,4,setosa\n")
write("bad-missing.csv", "a,b,c,d,species\n1,2,3,4,setosa\n1,,3,4,setosa\n")
write("bad-short.csv", "a,b,c,d,species\n1,2,3,4,setosa\n1,2,3\n")
write("bad-long.csv", "a,b,c,d,species\n1,2,3,4,setosa,9\n")
write("bad-quote.csv", 'a,b,c,d,species\n1,2,3,4,"setosa\n')
write("bad-after-quote.csv", 'a,b,c,d,species\n1,2,3,"4"x,setosa\n')
write("bad-class.csv", "a,b,c,d,species\n1,2,3,4,setosa\n1,2,3,4,daisy\n")
write("bad-empty.csv", "a,b,c,d,species\n")
write("bad-inf.csv", "a,b,c,d,species\n1,2,3,1e39,setosa\n")


def npy(dtype, shape, values, fortran=False):
    """An .npy file's bytes: dtype like '<f4'."""
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
        dtype, fortran, "".join("%d, " % d for d in shape))
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    fmt = {"f": "d", "i": "q", "u": "Q", "b": "?"}
    code = {("f", 2): "e", ("f", 4): "f", ("f", 8): "d", ("i", 1): "b", ("i", 2): "h", ("i", 4): "i",
            ("i", 8): "q", ("u", 1): "B", ("u", 2): "H", ("u", 4): "I", ("u", 8): "Q", ("b", 1): "?"}
    c = code[(dtype[1], int(dtype[2:]))]
    order = ">" if dtype[0] == ">" else "<"
    if fortran:  # the same values, stored column by column
        n, k = shape
        values = [values[i * k + j] for j in range(k) for i in range(n)]
    body = struct.pack(order + c * len(values), *values)
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + body


x = [v for f, _ in rows for v in f]
y = [c for _, c in rows]
for dt in ["<f4", ">f4", "<f8", ">f8", "<f2"]:
    with open(os.path.join(out, "x%s.npy" % dt[1:]), "wb") as fh:
        fh.write(npy(dt, (24, 4), x))
with open(os.path.join(out, "xF.npy"), "wb") as fh:
    fh.write(npy(">f8", (24, 4), x, fortran=True))
xi = [int(v * 10) for v in x]
for dt in ["|i1", "<i2", ">i4", "<i8", "<u2", ">u4", "<u8", "|b1"]:
    with open(os.path.join(out, "xi%s.npy" % dt[1:]), "wb") as fh:
        fh.write(npy(dt, (24, 4), [bool(v) for v in xi] if dt[1] == "b" else xi))
for dt in ["|u1", "<i8", ">i2"]:
    with open(os.path.join(out, "y%s.npy" % dt[1:]), "wb") as fh:
        fh.write(npy(dt, (24,), y))
for name, method in [("stored.npz", zipfile.ZIP_STORED), ("deflated.npz", zipfile.ZIP_DEFLATED)]:
    with zipfile.ZipFile(os.path.join(out, name), "w", method) as z:
        with z.open("x.npy", "w", force_zip64=True) as m:  # as numpy's savez writes them
            m.write(npy("<f4", (24, 4), x))
        with z.open("labels.npy", "w", force_zip64=True) as m:
            m.write(npy("<i8", (24,), y))

# Malformed arrays.
with open(os.path.join(out, "bad-shape.npy"), "wb") as fh:  # the header says 24 x 4, the data is short
    fh.write(npy("<f4", (24, 4), x)[:-8])
with open(os.path.join(out, "bad-dtype.npy"), "wb") as fh:
    fh.write(npy("<f4", (24, 4), x).replace(b"<f4", b"<c8"))
with open(os.path.join(out, "bad-huge.npy"), "wb") as fh:
    fh.write(npy("<f4", (24, 4), x).replace(b"(24, 4, )", b"(9999999999999, 4, )"))
with open(os.path.join(out, "x5.npy"), "wb") as fh:
    fh.write(npy("<f4", (24, 5), x + y))
with open(os.path.join(out, "bad-truncated.npz"), "wb") as fh:
    fh.write(open(os.path.join(out, "deflated.npz"), "rb").read()[:200])
with open(os.path.join(out, "bad-longfield.csv"), "w") as fh:  # a field over 1 MiB
    fh.write("a,species\n" + "1" * ((1 << 20) + 10) + ",setosa\n")
with open(os.path.join(out, "bad-header-size.npy"), "wb") as fh:  # version 2: a 4-byte header length
    fh.write(b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 20) + b"{" * 100)
with open(os.path.join(out, "x-v2.npy"), "wb") as fh:
    v1 = npy("<f4", (24, 4), x)
    fh.write(b"\x93NUMPY\x02\x00" + struct.pack("<I", struct.unpack("<H", v1[8:10])[0]) + v1[10:])
with open(os.path.join(out, "bad-16g.npy"), "wb") as fh:
    fh.write(npy("<f4", (24, 4), x).replace(b"(24, 4, )", b"(100000, 100000, )"))
with open(os.path.join(out, "x-rank3F.npy"), "wb") as fh:  # [24, 2, 2] in Fortran order
    header = "{'descr': '<f4', 'fortran_order': True, 'shape': (24, 2, 2), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    body = [x[i * 4 + j * 2 + k] for k in range(2) for j in range(2) for i in range(24)]
    fh.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
             + struct.pack("<%df" % len(body), *body))
stored = open(os.path.join(out, "stored.npz"), "rb").read()
with open(os.path.join(out, "bad-descriptor.npz"), "wb") as fh:  # flag bit 3: sizes after the data
    fh.write(stored[:6] + bytes([stored[6] | 8]) + stored[7:])
with open(os.path.join(out, "bad-method.npz"), "wb") as fh:  # bzip2
    fh.write(stored[:8] + bytes([12, 0]) + stored[10:])
with open(os.path.join(out, "bad-gzip.csv"), "wb") as fh:
    fh.write(gzip.compress(table.encode())[:60])
if len(sys.argv) > 2 and sys.argv[2] == "big":
    # Over the 1 MiB csv.c reads at a time, numbers of every length cut at
    # chunk boundaries: the table and a float32 .npy of the same values.
    bx, by = [], []
    for i in range(3000):
        bx += [((i * 7919 + k * 104729) % 1000003) / 10 ** (k % 6) for k in range(100)]
        by.append(i * 31 % 3)
    with open(os.path.join(out, "big.csv"), "w") as fh:
        fh.write(",".join("c%d" % k for k in range(100)) + ",label\n")
        for i in range(3000):
            fh.write(",".join(repr(v) for v in bx[i * 100:(i + 1) * 100]) + ",%d\n" % by[i])
    with open(os.path.join(out, "big.npy"), "wb") as fh:
        fh.write(npy("<f8", (3000, 100), bx))
    with open(os.path.join(out, "big-y.npy"), "wb") as fh:
        fh.write(npy("<i4", (3000,), by))

# One file per remaining error of the readers (csv-errors.test, npy-errors.test).
write("bad-noclass.csv", "a,b,c,d,species\n1,2,3,4,setosa\n1,2,3,4,\n")
write("bad-linebreak.csv", 'a,b,c,d,species\n1,2,3,4,"set\nosa"\n')
write("bad-nofeatures.csv", "name,species\nx,setosa\n")
write("bad-wide.csv", "," * (1 << 20) + "\n")  # a header of 1048577 empty names
write("bad-4classes.csv", "a,b,c,d,species\n" + "".join("1,2,3,4,%s\n" % n for n in ["a", "b", "c", "d"]))
good = npy("<f4", (24, 4), x)
binary = {
    "bad-magic-only.npy": b"\x93NUMPY",
    "bad-version.npy": b"\x93NUMPY\x04\x00" + good[8:],
    "bad-truncated-header.npy": good[:40],
    "bad-dict.npy": good.replace(b"'descr'", b"'dtype'"),
    "bad-structured.npy": good.replace(b"'<f4'", b"[('a', '<f4')]"[:5]),
    "bad-fortran.npy": good.replace(b"False", b"Maybe"),
    "bad-notuple.npy": good.replace(b"(24, 4, )", b"[24, 4, ]"),
    "bad-rank9.npy": good.replace(b"(24, 4, )", b"(1,1,1,1,1,1,1,1,1)"),
    "bad-overflow.npy": good.replace(b"(24, 4, )", b"(4294967295, 4294967295, 4294967295)"),
    "bad-scalar.npy": good.replace(b"(24, 4, )", b"()       "),
}
for name, data in binary.items():
    with open(os.path.join(out, name), "wb") as fh:
        fh.write(data)
deflated = open(os.path.join(out, "deflated.npz"), "rb").read()
with open(os.path.join(out, "bad-header-past-end.npz"), "wb") as fh:
    fh.write(deflated[:32])
with open(os.path.join(out, "bad-encrypted.npz"), "wb") as fh:
    fh.write(stored[:6] + bytes([stored[6] | 1]) + stored[7:])
with open(os.path.join(out, "bad-deflate.npz"), "wb") as fh:  # the first member's data corrupted
    start = 30 + struct.unpack("<H", deflated[26:28])[0] + struct.unpack("<H", deflated[28:30])[0]
    fh.write(deflated[:start] + b"\xff" * 8 + deflated[start + 8:])
with open(os.path.join(out, "bad-after-deflate.npz"), "wb") as fh:  # 4 bytes more than the deflate stream
    nlen = struct.unpack("<H", deflated[26:28])[0]
    ext = 30 + nlen  # the zip64 extra field: id, length, uncompressed size, compressed size
    cs = struct.unpack("<Q", deflated[ext + 12:ext + 20])[0]
    start = ext + struct.unpack("<H", deflated[28:30])[0]
    fh.write(deflated[:ext + 12] + struct.pack("<Q", cs + 4) + deflated[ext + 20:start + cs] + b"junk"
             + deflated[start + cs:])
