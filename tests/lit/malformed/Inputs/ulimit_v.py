# ulimit_v.py BYTES CMD...: runs CMD with its address space limited to BYTES
# (ulimit -v, which lit's internal shell does not have).
import os, resource, sys

limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
os.execvp(sys.argv[2], sys.argv[2:])
