# Kills nnc with SIGKILL while it trains and saves a checkpoint every step.
#   kill_train.py resume NNC MODEL IMAGES OUTDIR [OPTION...]
#       a reference run, then a run killed once its checkpoint is mid-epoch,
#       resumed from that checkpoint to the end: the final checkpoint must
#       be bit-identical (SHA-256) to the reference. The options go to
#       every run (a regression's --target FILE).
#   kill_train.py loop NNC MODEL IMAGES OUTDIR ROUNDS
#       ROUNDS runs killed at different moments of the save loop; after each
#       the checkpoint must load (nnc --load CKPT --eval IMAGES, exit 0).
# When a kill lands does not decide whether the test passes: any moment
# must leave a complete checkpoint that continues exactly.
import hashlib, json, os, signal, struct, subprocess, sys, time

mode, nnc, model, images, out = sys.argv[1:6]
train = [nnc, model, "--train", images, "--epochs", "3"] + (sys.argv[6:] if mode == "resume" else [])


def meta(path):
    try:
        raw = open(path, "rb").read()
        (n,) = struct.unpack("<Q", raw[:8])
        return json.loads(raw[8:8 + n])["__metadata__"]
    except (OSError, ValueError, KeyError, struct.error):
        return None  # not there yet


def run_and_kill(ckpt, extra_wait):
    """Starts a run saving every step; kills it after a mid-epoch checkpoint."""
    p = subprocess.Popen(train + ["--save", ckpt, "--save-every", "1"], stdout=subprocess.DEVNULL)
    while p.poll() is None:
        m = meta(ckpt)
        if m and m["step"] != "0":
            time.sleep(extra_wait)
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    p.wait()
    m = meta(ckpt)
    print("killed with the checkpoint at epoch %s, step %s" % (m["epoch"], m["step"]) if
          p.returncode == -signal.SIGKILL else "the run ended before the kill")


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


if mode == "resume":
    ref, ckpt = os.path.join(out, "ref.st"), os.path.join(out, "killed.st")
    subprocess.check_call(train + ["--save", ref], stdout=subprocess.DEVNULL)
    run_and_kill(ckpt, 0)
    subprocess.check_call(train + ["--resume", ckpt], stdout=subprocess.DEVNULL)
    if sha(ckpt) != sha(ref):
        sys.exit("the resumed run's checkpoint differs from the uninterrupted run's")
    print("resumed run is bit-identical: " + sha(ckpt))
else:
    for r in range(int(sys.argv[6])):
        ckpt = os.path.join(out, "loop%d.st" % r)
        run_and_kill(ckpt, 0.01 * r)
        subprocess.check_call([nnc, model, "--load", ckpt, "--eval", images],
                              stdout=subprocess.DEVNULL)
    print("every killed run left a loadable checkpoint")
