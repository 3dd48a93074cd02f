# The malformed-input suite's check: %error STATUS REGEX CMD... runs CMD and
# fails unless it
#   - exits normally (no signal) with exactly STATUS (1 or 2 for bad input),
#   - says on stderr something matching REGEX (a Python regex, searched),
#     which the tests make name the file and the place: line:col, the byte
#     offset or the field,
#   - prints no sanitizer report and no internal error (in the sanitizer
#     build a report exits 66, but a report is checked for by its text too,
#     so the test also fails should a status ever coincide),
#   - ends within 5 minutes (a hang is a failure too).
# stderr is passed on, for FileCheck or for reading a failure.
import re, subprocess, sys

status, pattern, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
try:
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
except subprocess.TimeoutExpired:
    sys.exit(f"hung (no exit within 300 s): {' '.join(cmd)}")
err = p.stderr.decode("utf-8", "replace")
sys.stderr.write(err)
problems = []
if p.returncode < 0:
    problems.append(f"killed by signal {-p.returncode}")
elif p.returncode != status:
    problems.append(f"exit status {p.returncode}, expected {status}")
for marker in ("Sanitizer", "runtime error:", "internal error"):
    if marker in err:
        problems.append(f"'{marker}' on stderr")
if not re.search(pattern, err):
    problems.append(f"stderr does not match {pattern!r}")
if problems:
    sys.exit(f"{'; '.join(problems)}: {' '.join(cmd)}")
