"""mpi_model.py NAME PARAMS BATCH STEP_SECONDS ...: the step time of
data-parallel training at 8, 64 and 512 ranks, modelled from one rank's
measured step (bench/mpi.sh) and a ring all-reduce of the float32 gradients:

    allreduce = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * latency

(a ring sends each of its 2 (N - 1) chunks one hop at a time: reduce-scatter
then all-gather). Weak scaling: every rank keeps the model's batch, so the
global batch is N times it and the compute per step stays the measured one;
the all-reduce is not overlapped with the backward pass (nnc does not yet).
Latency per hop: 20 us on 10 Gbit Ethernet (TCP), 2 us on 100 Gbit RDMA."""
import sys

NETS = [("10 Gbit", 10e9 / 8, 20e-6), ("100 Gbit", 100e9 / 8, 2e-6)]
args = sys.argv[1:]
print("| model | gradient MB | compute ms/step (1 rank, 1 thread) | ranks | network | all-reduce ms | step ms | efficiency | samples/s |")
print("|---|---|---|---|---|---|---|---|---|")
for i in range(0, len(args), 4):
    name, params, batch, step = args[i], int(args[i + 1]), int(args[i + 2]), float(args[i + 3])
    grad = 4 * params
    for n in (8, 64, 512):
        for net, bw, lat in NETS:
            ar = 2 * (n - 1) / n * grad / bw + 2 * (n - 1) * lat
            total = step + ar
            print(f"| {name} | {grad / 1e6:.2f} | {step * 1e3:.2f} | {n} | {net} | {ar * 1e3:.2f} | {total * 1e3:.2f} "
                  f"| {step / total:.0%} | {n * batch / total:,.0f} |")
