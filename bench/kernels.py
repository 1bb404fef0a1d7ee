"""seqcore kernels vs PyTorch CPU on the same shapes, dtype and thread count, in one run.

    python bench/kernels.py [--quick] [--threads 1 2] [--out bench/results/kernels]

For each (cell, mode, shape, threads) the two libraries are timed alternately (interleaved, so
machine noise hits both), after warm-up, and the median of the repetitions is reported with the
ratio torch_time / seqcore_time (> 1 means seqcore is faster). Mode "infer" is a forward pass
with no gradient bookkeeping returning every step's output; "train" is forward + backward with
respect to inputs and weights. FLOPs: LSTM forward 2*T*B*(I+H)*4H, GRU 3H instead of 4H, a
training step counted as 3x forward.

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set on this machine, slow OpenBLAS; this script
re-executes itself without them and says so. It prints the BLAS kernel in use (threadpoolctl).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

_SLOW_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if any(v in os.environ for v in _SLOW_VARS) and not os.environ.get("SEQCORE_BENCH_REEXEC"):
    env = {k: v for k, v in os.environ.items() if k not in _SLOW_VARS}
    env["SEQCORE_BENCH_REEXEC"] = ",".join(v for v in _SLOW_VARS if v in os.environ)
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import numpy as np  # noqa: E402  (after the environment is settled)
import torch  # noqa: E402
from threadpoolctl import threadpool_info  # noqa: E402

import seqcore  # noqa: E402
from seqcore import ops  # noqa: E402

SHAPES = [(100, 1, 128, 256), (100, 16, 256, 256), (100, 64, 512, 512), (50, 128, 1024, 1024),
          (1, 1, 64, 128)]
GATES = {"lstm": 4, "gru": 3}


def flops(cell, mode, T, B, I, H):
    fwd = 2 * T * B * (I + H) * GATES[cell] * H
    return fwd * (3 if mode == "train" else 1)


def make_weights(cell, I, H, rng):
    G = GATES[cell]
    W = (rng.standard_normal((I, G * H)) / np.sqrt(I)).astype(np.float32)
    U = (rng.standard_normal((H, G * H)) / np.sqrt(H)).astype(np.float32)
    b = np.zeros((2, G * H) if cell == "gru" else G * H, np.float32)
    return W, U, b


def seqcore_runner(cell, mode, x, W, U, b):
    fwd = ops.lstm_forward if cell == "lstm" else ops.gru_forward
    bwd = ops.lstm_backward if cell == "lstm" else ops.gru_backward
    dY = np.ones(x.shape[:2] + (U.shape[0],), np.float32)
    if mode == "infer":
        return lambda: fwd(x, W, U, b, training=False)
    n_finals = 2 if cell == "lstm" else 1

    def step():
        *_, cache = fwd(x, W, U, b)
        bwd(dY, *([None] * n_finals), cache)
    return step


def torch_runner(cell, mode, x, W, U, b):
    T, B, I = x.shape
    H = U.shape[0]
    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H)
    # same weights (gate order does not matter for timing)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(W.T.copy()))
        module.weight_hh_l0.copy_(torch.from_numpy(U.T.copy()))
    xt = torch.from_numpy(x)
    if mode == "infer":
        def infer():
            with torch.inference_mode():
                module(xt)
        return infer
    xg = xt.clone().requires_grad_()
    grad = torch.ones(T, B, H)

    def step():
        module.zero_grad(set_to_none=True)
        xg.grad = None
        out, _ = module(xg)
        out.backward(grad)
    return step


def time_pair(fa, fb, budget):
    """Median seconds of fa and fb, alternating; at least 5 repetitions, more while the budget
    (seconds per library) lasts."""
    for f in (fa, fb, fa, fb):          # warm-up
        f()
    ta, tb = [], []
    while len(ta) < 5 or (sum(ta) < budget and sum(tb) < budget and len(ta) < 200):
        for f, acc in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            f()
            acc.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


def machine_facts():
    blas = [{k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                   "filepath")} for d in threadpool_info()
            if d.get("user_api") == "blas"]
    return {
        "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
        "seqcore": seqcore.__version__, "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "simd": seqcore.config()["simd"], "blas": blas,
        "unset_env": os.environ.get("SEQCORE_BENCH_REEXEC") or "",
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    parser.add_argument("--modes", nargs="+", default=["infer", "train"])
    parser.add_argument("--budget", type=float, default=1.0,
                        help="seconds of timing per library and row (default 1)")
    parser.add_argument("--quick", action="store_true", help="skip the largest shape")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "kernels"))
    args = parser.parse_args(argv)

    facts = machine_facts()
    print(f"# seqcore {facts['seqcore']} vs torch {facts['torch']}  (python {facts['python']}, "
          f"numpy {facts['numpy']}, {facts['cores']} cores, SIMD {facts['simd']})")
    for lib in facts["blas"]:
        print(f"# BLAS: {lib['internal_api']} {lib['version']} kernel {lib['architecture']} "
              f"({lib['filepath']})")
    print(f"# unset for this run: {facts['unset_env'] or 'nothing (neither variable was set)'}")

    rng = np.random.default_rng(0)
    shapes = SHAPES[:3] + SHAPES[4:] if args.quick else SHAPES
    rows = []
    header = ("| cell | mode | T, B, I, H | threads | seqcore ms | torch ms | seqcore GFLOP/s "
              "| torch GFLOP/s | speed-up vs torch |")
    print(header)
    print("|" + "---|" * 9)
    for cell in args.cells:
        for mode in args.modes:
            for shape in shapes:
                T, B, I, H = shape
                x = rng.standard_normal((T, B, I)).astype(np.float32)
                W, U, b = make_weights(cell, I, H, rng)
                for threads in args.threads:
                    seqcore.set_num_threads(threads)
                    torch.set_num_threads(threads)
                    ts, tt = time_pair(seqcore_runner(cell, mode, x, W, U, b),
                                       torch_runner(cell, mode, x, W, U, b), args.budget)
                    f = flops(cell, mode, *shape)
                    row = dict(cell=cell, mode=mode, shape=shape, threads=threads,
                               seqcore_ms=ts * 1e3, torch_ms=tt * 1e3,
                               seqcore_gflops=f / ts / 1e9, torch_gflops=f / tt / 1e9,
                               speedup=tt / ts)
                    rows.append(row)
                    print(f"| {cell} | {mode} | {', '.join(map(str, shape))} | {threads} "
                          f"| {row['seqcore_ms']:.3f} | {row['torch_ms']:.3f} "
                          f"| {row['seqcore_gflops']:.1f} | {row['torch_gflops']:.1f} "
                          f"| {row['speedup']:.2f} |", flush=True)
    speedups = [r["speedup"] for r in rows]
    summary = (f"geometric mean speed-up vs torch: {np.exp(np.mean(np.log(speedups))):.2f}; "
               f"slowest row: {min(speedups):.2f}")
    print("\n" + summary)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"machine": facts, "rows": rows}, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(f"seqcore {facts['seqcore']} vs torch {facts['torch']}, float32, "
                f"{facts['cores']} cores, SIMD {facts['simd']}, BLAS "
                + ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})"
                            for b in facts["blas"])
                + f"; unset: {facts['unset_env'] or 'nothing'}\n\n")
        f.write(header + "\n|" + "---|" * 9 + "\n")
        for r in rows:
            f.write(f"| {r['cell']} | {r['mode']} | {', '.join(map(str, r['shape']))} "
                    f"| {r['threads']} | {r['seqcore_ms']:.3f} | {r['torch_ms']:.3f} "
                    f"| {r['seqcore_gflops']:.1f} | {r['torch_gflops']:.1f} "
                    f"| {r['speedup']:.2f} |\n")
        f.write("\n" + summary + "\n")


if __name__ == "__main__":
    main()
