"""Starts the REPL on a terminal (a pty), waits for its prompt, types Ctrl-D
and prints "exit N" with the REPL's status, and any sanitizer report.
Ctrl-D is typed once libedit has put the terminal in raw mode (ICANON off,
as the master side reads the terminal's settings): typed before, in canonical
mode, it was sometimes lost and the REPL waited forever.

usage: ctrl_d.py NNC WORKDIR
"""
import os
import pty
import select
import shutil
import sys
import termios
import time

nnc, work = sys.argv[1:3]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
pid, fd = pty.fork()
if pid == 0:
    os.environ.update(HOME=work, TERM="xterm")
    os.execv(nnc, [nnc])
out, typed, end = b"", False, time.time() + 60
while time.time() < end:
    if not typed and b"nnc> " in out and not termios.tcgetattr(fd)[3] & termios.ICANON:
        os.write(fd, b"\x04")
        typed = True
    if select.select([fd], [], [], 0.1)[0]:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the other side closed: the REPL has exited
            break
        if not data:
            break
        out += data
else:
    sys.exit("no exit within 60 s; the terminal:\n" + out.decode("utf-8", "replace"))
_, status = os.waitpid(pid, 0)
text = out.decode("utf-8", "replace")
print("exit", os.waitstatus_to_exitcode(status))
for line in text.splitlines():
    if "Sanitizer" in line:
        print(line)
