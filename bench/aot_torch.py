# aot_torch.py CHECKPOINT IMAGES.gz: PyTorch's forward pass of examples/mlp.nn
# with the weights of an nnc checkpoint, timed as bench/aot_predict.c times the
# object: one sample (median of many calls) and the whole file in one call
# (best of 5). Run by bench/aot.sh with PyTorch's best settings here (one torch
# thread, OpenBLAS owning the cores with its AVX-512 kernels). Not a test.
import gzip, json, struct, sys, time

import torch

raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
head, body = json.loads(raw[8:8 + n]), raw[8 + n:]


def tensor(name):
    b, e = head[name]["data_offsets"]
    return torch.frombuffer(bytearray(body[b:e]), dtype=torch.float32).reshape(head[name]["shape"])


torch.set_num_threads(1)
model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 10),
                            torch.nn.Softmax(dim=1))
with torch.no_grad():  # nnc's dense W is [in, out], torch's Linear weight [out, in]
    model[0].weight.copy_(tensor("dense1.W").t())
    model[0].bias.copy_(tensor("dense1.b"))
    model[2].weight.copy_(tensor("dense2.W").t())
    model[2].bias.copy_(tensor("dense2.b"))
data = gzip.open(sys.argv[2]).read()
count = struct.unpack(">I", data[4:8])[0]
x = torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).reshape(count, 784).float() * (1.0 / 255)
with torch.inference_mode():
    times = []
    for i in range(20000):
        t0 = time.perf_counter()
        model(x[i % 100:i % 100 + 1])
        times.append(time.perf_counter() - t0)
    times.sort()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        model(x)
        best = min(best, time.perf_counter() - t0)
print("torch %s: one sample: median %.1f us (p10 %.1f, p90 %.1f) over 20000 calls" % (
    torch.__version__, times[10000] * 1e6, times[2000] * 1e6, times[18000] * 1e6))
print("%d samples in one call: %.2f ms (best of 5), %.0f samples/s" % (count, best * 1e3, count / best))
