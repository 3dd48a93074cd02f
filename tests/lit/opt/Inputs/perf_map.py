"""Runs NNC with NNC_PERF_MAP=1 on its arguments and prints the names of
the functions the JIT compiled (its perf map, then removed), sorted.

usage: perf_map.py NNC ARGS...
"""
import os
import subprocess
import sys

env = dict(os.environ, NNC_PERF_MAP="1")
# nnc appends to the map (a REPL writes it once per compile): a stale map of
# an earlier process with the same pid is removed first, by a shell that
# then becomes nnc (exec keeps its pid).
p = subprocess.Popen(["sh", "-c", 'rm -f /tmp/perf-$$.map && exec "$@"', "sh"] + sys.argv[1:], env=env,
                     stdout=subprocess.DEVNULL)
if p.wait() != 0:
    sys.exit("%s exited with %d" % (sys.argv[1], p.returncode))
path = "/tmp/perf-%d.map" % p.pid
names = sorted(line.split()[2] for line in open(path))
os.remove(path)
print("\n".join(names))
