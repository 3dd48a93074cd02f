# Signals nnc while it trains and saves a checkpoint every step.
#   signal_train.py term NNC MODEL IMAGES OUTDIR ROUNDS
#       ROUNDS runs, each sent SIGTERM at a different moment of the save
#       loop (most of the time goes to saving, so most land mid-save): each
#       must die of the signal, leave no temporary file, and leave a
#       checkpoint that loads.
#   signal_train.py int NNC MODEL IMAGES OUTDIR
#       Ctrl-C (SIGINT) mid-run: nnc must stop after the step, save the
#       checkpoint, say so and exit 130; resumed from it, the run must end
#       bit-identical to one never interrupted. Without --save: exit 130 too,
#       saying there is no checkpoint.
# When a signal lands does not decide whether the test passes.
import glob, hashlib, json, os, signal, struct, subprocess, sys, time

mode, nnc, model, images, out = sys.argv[1:6]
train = [nnc, model, "--train", images, "--epochs", "3"]


def default_signals():
    # A test runner may start us with SIGINT ignored (a background job):
    # nnc keeps an ignored signal ignored, so give it the default back.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def step_of(path):
    try:
        raw = open(path, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        return json.loads(raw[8:8 + n])["__metadata__"]["step"]
    except (OSError, ValueError, KeyError, struct.error):
        return None  # not there yet


def start_and_signal(args, ckpt, sig, wait):
    """Starts a run; once its checkpoint is mid-epoch, waits, sends sig."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=default_signals)
    while p.poll() is None:
        s = step_of(ckpt)
        if s is not None and s != "0":
            time.sleep(wait)
            p.send_signal(sig)
            break
        time.sleep(0.002)
    text = p.communicate()[0].decode()
    return p.returncode, text


def no_temp_files():
    left = glob.glob(os.path.join(out, "*.tmp.*"))
    if left:
        sys.exit("temporary files left behind: " + " ".join(left))


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


if mode == "term":
    for r in range(int(sys.argv[6])):
        ckpt = os.path.join(out, "term%d.st" % r)
        rc, text = start_and_signal(train + ["--save", ckpt, "--save-every", "1"], ckpt, signal.SIGTERM, 0.003 * r)
        if rc not in (-signal.SIGTERM, 0):
            sys.exit("exit status %d after SIGTERM:\n%s" % (rc, text))
        no_temp_files()
        subprocess.check_call([nnc, model, "--load", ckpt, "--eval", images], stdout=subprocess.DEVNULL)
    print("no SIGTERM left a temporary file")
else:
    ref, ckpt = os.path.join(out, "ref.st"), os.path.join(out, "int.st")
    subprocess.check_call(train + ["--save", ref], stdout=subprocess.DEVNULL)
    rc, text = start_and_signal(train + ["--save", ckpt, "--save-every", "1"], ckpt, signal.SIGINT, 0)
    if rc != 130:
        sys.exit("exit status %d after Ctrl-C, expected 130:\n%s" % (rc, text))
    print(text.splitlines()[-1].replace(out, "OUT"))
    no_temp_files()
    subprocess.check_call(train + ["--resume", ckpt], stdout=subprocess.DEVNULL)
    if sha(ckpt) != sha(ref):
        sys.exit("the run resumed after Ctrl-C differs from the uninterrupted run")
    print("resumed after Ctrl-C: bit-identical")
    # Without --save: nothing to save, and it says so.
    long_run = train[:-1] + ["1000000"]
    p = subprocess.Popen(long_run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=default_signals)
    lines = []
    for line in iter(p.stdout.readline, b""):
        lines.append(line.decode())
        if line.startswith(b"training on"):
            time.sleep(0.05)
            p.send_signal(signal.SIGINT)
    p.wait()
    if p.returncode != 130:
        sys.exit("exit status %d after Ctrl-C without --save, expected 130:\n%s" % (p.returncode, "".join(lines)))
    print(lines[-1].strip())
