# ulimit_f.py BYTES CMD...: runs CMD with the size of the files it writes
# limited to BYTES (ulimit -f, which lit's internal shell does not have): a
# disk that fills up. SIGXFSZ gets its default action back (Python ignores
# it, and an ignored signal stays ignored across exec): what CMD does about
# it is its own business.
import os, resource, signal, sys

limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
os.execvp(sys.argv[2], sys.argv[2:])
