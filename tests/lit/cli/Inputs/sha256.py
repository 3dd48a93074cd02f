# sha256.py same|differ FILE...: the files' SHA-256 must all be equal (same)
# or all distinct (differ). Prints the digests.
import hashlib, sys

mode, files = sys.argv[1], sys.argv[2:]
digests = [hashlib.sha256(open(f, "rb").read()).hexdigest() for f in files]
for d, f in zip(digests, files):
    print(d, f.rsplit("/", 1)[-1])
n = len(set(digests))
if (mode == "same" and n != 1) or (mode == "differ" and n != len(files)):
    sys.exit("sha256: expected the files to %s" % ("be identical" if mode == "same" else "differ"))
print("sha256 %s: ok" % mode)
