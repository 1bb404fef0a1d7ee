"""Where does splitting one time step over threads start to pay?

    python bench/threshold.py [--threads 2]

For LSTM and GRU inference (T=64 steps) over a grid of batch sizes B and hidden sizes H, time
the kernels with every step split over the threads and with every step on one thread (the
GEMMs around the time loop are split in both), and print time(split) / time(not split) next
to the step's work rows * G*H * H. seqcore.ops._STEP_PARALLEL_MIN (and _STEP_PARALLEL_UNITS,
the H at and below which no step is split) should sit where the ratio crosses 1. Medians of
interleaved repetitions; ratios, not absolute times, are the result.
"""
import argparse
import statistics
import time

import numpy as np

import seqcore
from seqcore import ops

GATES = {"lstm": 4, "gru": 3}


def timed(f, reps=30):
    f()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        out.append(time.perf_counter() - t0)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    seqcore.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"threads={args.threads}; ratio < 1: splitting the step is faster")
    print("| cell | B | H | work per step | split / not split |")
    print("|---|---|---|---|---|")
    try:
        for cell in ("lstm", "gru"):
            G = GATES[cell]
            fwd = ops.lstm_forward if cell == "lstm" else ops.gru_forward
            for B in (1, 2, 4, 16, 64):
                for H in (32, 64, 96, 128, 192, 256):
                    x = rng.standard_normal((64, B, 32)).astype(np.float32)
                    W = (rng.standard_normal((32, G * H)) * 0.1).astype(np.float32)
                    U = (rng.standard_normal((H, G * H)) * 0.1).astype(np.float32)
                    b = np.zeros((2, G * H) if cell == "gru" else G * H, np.float32)

                    def run():
                        fwd(x, W, U, b, training=False)
                    split, whole = [], []
                    for _ in range(5):          # interleave the two settings
                        ops._STEP_SPLIT = True
                        split += timed(run, 10)
                        ops._STEP_SPLIT = False
                        whole += timed(run, 10)
                    ratio = statistics.median(split) / statistics.median(whole)
                    print(f"| {cell} | {B} | {H} | {B * G * H * H} | {ratio:.2f} |", flush=True)
    finally:
        ops._STEP_SPLIT = None


if __name__ == "__main__":
    main()
