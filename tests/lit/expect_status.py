# Runs a command and fails unless it exits with the given status (lit's
# internal shell has no $?): %status 2 %nnc bad.nn
import subprocess, sys

want = int(sys.argv[1])
got = subprocess.call(sys.argv[2:])
if got != want:
    sys.exit(f"expected exit status {want}, got {got}: {' '.join(sys.argv[2:])}")
