"""Types into the REPL in a real terminal (tmux) and reads the screen:
line editing, completion, history recall, a multi-line model, Ctrl-C during
training, during a computation, during a compilation and at the prompt,
Ctrl-D, and the history file.

usage: terminal.py NNC MKIDX WORKDIR
"""
import os
import shutil
import subprocess
import sys
import time

nnc, mkidx, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
data = os.path.join(work, "data")
# Enough samples and epochs that Ctrl-C lands mid-training (an epoch takes
# milliseconds: the signal may come during an epoch or between two).
subprocess.run([mkidx, data, "--n", "20000", "--test-n", "10", "--shape", "8x8", "--classes", "3"], check=True)
home = os.path.join(work, "home")
os.makedirs(home)
sock = "nnc-test-%d" % os.getpid()


def tmux(*args, check=True):
    return subprocess.run(["tmux", "-L", sock] + list(args), check=check, capture_output=True, text=True).stdout


def screen():
    return tmux("capture-pane", "-p", "-t", "t")


def wait_for(text, count=1, timeout=30):
    """Until `text` is on the screen `count` times; fails with the screen."""
    end = time.time() + timeout
    while time.time() < end:
        s = screen()
        if s.count(text) >= count:
            return s
        time.sleep(0.05)
    sys.exit("timed out waiting for %r (x%d); the screen:\n%s" % (text, count, screen()))


def keys(*k):
    tmux("send-keys", "-t", "t", *k)


def last_line():
    lines = [l for l in screen().splitlines() if l.strip()]
    return lines[-1] if lines else ""


def wait_prompt(timeout=30):
    """Until the screen ends with an empty prompt (what scrolled off does not matter)."""
    end = time.time() + timeout
    while time.time() < end:
        if last_line().rstrip() == "nnc>":
            return
        time.sleep(0.05)
    sys.exit("timed out waiting for the prompt; the screen:\n%s" % screen())


def entry(*k):
    """Types keys ending with Enter; waits for the next prompt."""
    keys(*k)
    wait_prompt()


env = "env HOME=%s TERM=xterm NNC_THREADS=1" % home
tmux("new-session", "-d", "-s", "t", "-x", "120", "-y", "50", "%s %s" % (env, nnc))
try:
    wait_prompt()
    entry("let a = 2", "Enter")
    # Editing: a typo deleted with Backspace, then Home (C-a) to add 'let '.
    keys("b = a + 1x")
    wait_for("b = a + 1x")
    keys("BSpace", "C-a", "let ")
    wait_for("let b = a + 1")
    entry("Enter")
    wait_for("b = 3")
    # Completion: ':tr' Tab gives ':train '; a unique name is completed too.
    keys(":tr", "Tab")
    wait_for("nnc> :train")
    keys("C-u")  # kill the line
    entry("b + a", "Tab", "Enter")  # 'a' is not unique: a, b... lists them
    # History: Up twice recalls 'let b = a + 1'.
    keys("Up", "Up")
    wait_for("nnc> let b = a + 1", 2)
    keys("C-u")
    # A multi-line model: the continuation prompt until the brace closes.
    keys("model m {", "Enter")
    wait_for("...")
    for line in ["input x [8, 8]", "flatten", "dense 16, relu", "dense 3", "loss crossentropy", "train epochs=1000, batch=8"]:
        keys(line, "Enter")
    entry("}", "Enter")
    wait_for("model m: input [8, 8], output [3]")
    # Ctrl-C during training stops it and returns to the prompt.
    keys(":train m %s/train-images-idx3-ubyte" % data, "Enter")
    wait_for("epoch 1/1000")
    time.sleep(0.5)
    keys("C-c")
    wait_prompt()
    wait_for("training interrupted")  # "at epoch N, step S" or "after epoch N"
    # Ctrl-C at the prompt drops the line; the session is intact.
    keys("abandoned")
    wait_for("nnc> abandoned")  # typed before the signal comes
    keys("C-c")
    wait_prompt()
    entry("a * b", "Enter")
    wait_for("a*b = 6")
    # The trained weights stayed: :eval runs.
    entry(":eval m %s/t10k-images-idx3-ubyte" % data, "Enter")
    wait_for("samples 10  loss")
    # Ctrl-C during a long computation (forty 1500x1500 products, seconds
    # even on a quiet machine; m @ m is about m's size, so nothing
    # overflows): the entry stops between its loops and says so; the
    # session goes on.
    big = os.path.join(work, "big.nn")
    with open(big, "w") as f:
        f.write("let r = [%s]\n" % ", ".join("[%d]" % i for i in range(1500)))
        f.write("let c = [%s]\n" % ", ".join(str(j) for j in range(1500)))
        f.write("m = (1500 * r + c) / 1687500000\n")
    entry(":load %s" % big, "Enter")
    # The entry's first statement shows when it is running (a computed let is
    # a graph of its own): Ctrl-C then comes during the entry, not before.
    keys("let z = 1 + 1; sum(%s)" % " @ ".join(["m"] * 41), "Enter")
    wait_for("z = 2")
    time.sleep(0.3)
    keys("C-c")
    wait_prompt()
    # On a loaded machine Ctrl-C may come while the entry still compiles:
    # then "compilation interrupted (Ctrl-C): abandoned".
    lines = [l.rstrip() for l in screen().splitlines() if l.strip()]
    if not ("interrupted" in lines[-2] and lines[-1] == "nnc>"):  # the terminal echoes ^C before it
        sys.exit("the computation was not interrupted; the screen:\n%s" % screen())
    entry("a - b", "Enter")
    wait_for("a - b = -1")
    # Ctrl-C during a large model's compilation (20 layers and batchnorms:
    # seconds, most of them LLVM optimising the training step, which nothing
    # interrupts) abandons it: the prompt comes back at once, saying so, and
    # the session goes on (the compilation's threads end in the background).
    deep = os.path.join(work, "deep.nn")
    with open(deep, "w") as f:
        f.write("model deep {\n input x [8, 8]\n flatten\n%s dense 3\n loss crossentropy\n}\n"
                % (" dense 32, relu\n batchnorm\n" * 20))
    entry(":load %s" % deep, "Enter")
    wait_for("model deep: input [8, 8], output [3]")
    keys(":train deep %s/train-images-idx3-ubyte epochs=1" % data, "Enter")
    time.sleep(0.3)
    keys("C-c")
    wait_prompt()
    wait_for("compilation interrupted (Ctrl-C): abandoned")
    entry("a + b", "Enter")
    wait_for("a + b = 5")
    keys("C-d")  # leaves: the session's only window closes
    # once the abandoned compilation's threads end (exit waits for them:
    # seconds on a loaded machine)
    end = time.time() + 60
    while subprocess.run(["tmux", "-L", sock, "has-session", "-t", "t"], capture_output=True).returncode == 0:
        if time.time() > end:
            sys.exit("Ctrl-D did not end the REPL; the screen:\n%s" % screen())
        time.sleep(0.05)
    # libedit writes history in vis(3) form: octal escapes for blanks.
    hist = open(os.path.join(home, ".nnc_history")).read().replace("\\040", " ").replace("\\012", "\n")
    for want in ["let a = 2", "let b = a + 1", ":train m", "model m {\ninput x [8, 8]\n"]:
        if want not in hist:
            sys.exit("history file lacks %r:\n%s" % (want, hist))
    print("ok")
finally:
    tmux("kill-server", check=False)
