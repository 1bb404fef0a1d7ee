"""seqcore kernels vs PyTorch CPU, ONNX Runtime and TensorFlow on the same shapes, dtype and
thread count, in one run.

    python bench/kernels.py [--quick] [--threads 1 2] [--shapes T,B,I,H ...] [--rounds 5]
                            [--out bench/results/kernels]

For each (cell, mode, shape, threads) the libraries are timed in turn, in blocks of calls
(time_rounds: one block each per round, five rounds by default, nine at least for rows whose
calls are so slow that a block holds one call, so machine noise hits all of them; each block
starts with an untimed call, so every library is timed with its own data in cache, as in a
loop calling it). Reported: the median time over all of a library's calls,
and the ratios peer_time / seqcore_time (> 1 means seqcore is faster) paired round by round:
the median of the rounds' ratios of block medians, with the lowest and highest in brackets.
The machines here change speed by 25-35% for seconds at a time; a ratio of two blocks run
back to back is less exposed to that than a ratio of two medians over the whole row, and the
bracket shows how far the rounds disagree. ONNX Runtime (a graph of one
ONNX LSTM / GRU operator built with onnx.helper, CPUExecutionProvider, GRU with
linear_before_reset=1, its default thread spinning) runs the inference rows when it is
installed; the block after its own starts once its spinning threads have gone quiet.
TensorFlow (keras.layers.LSTM / GRU in a tf.function, no XLA) runs every row when it is
installed (pip install "seqcore[bench-tf]"; --no-tf leaves it out), in a worker process per
thread count (tf_peer.py: its thread pools are fixed when it starts), its blocks interleaved
with the others'. NumPy's SGEMM on a 1536^3 product gives the ceiling, measured in every row's
rounds as one more library (a rate taken once at the start read 86.9 GFLOP/s at 2 threads in one
run, 140 in the run before: one disturbed measurement skewed a whole column): seqcore's rate is
also reported as a fraction of it, paired round by round as the speed-ups are (the median of
the rounds' seqcore rate / SGEMM rate: divided as two medians over the whole row, the LSTM
training row (50, 128, 1024, 1024) at 2 threads read 77% in one run and 92% in another of the
same code, the same day). Mode "infer" is a forward pass
with no gradient bookkeeping returning every step's output, seqcore's weights bound once as the
torch module and the ORT session hold theirs (ops.BoundLayer; for T = 1, ops.Stepper);
"train" is forward + backward with respect to inputs and weights. FLOPs: LSTM forward 2*T*B*(I+H)*4H, GRU 3H instead of 4H, a
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
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

try:
    import onnxruntime as ort  # noqa: E402
    from onnx import TensorProto, helper, numpy_helper  # noqa: E402
except ImportError:            # the ORT column is left out, and the header says why
    ort = None

import seqcore  # noqa: E402
from seqcore import ops  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tf_peer  # noqa: E402
from chart import ratio_chart  # noqa: E402
from timing import timed_block, usable_thread_counts, wait_until_quiet  # noqa: E402

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
    # inference binds the weights once, as the peers' module and session hold theirs
    # (ops.*_forward would check and pack them at every call): a single step through
    # ops.Stepper, a sequence through ops.BoundLayer
    if mode == "infer" and x.shape[0] == 1:
        stepper = ops.Stepper(cell, W, U, b, x.shape[1])
        return lambda: stepper.step(x[0])
    if mode == "infer":
        layer = ops.BoundLayer(cell, W, U, b)
        return lambda: layer.forward(x)
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


def ort_session(cell, W, U, threads, stateful=False):
    """An ONNX Runtime session of one ONNX LSTM / GRU operator (zero bias, GRU with
    linear_before_reset=1) with input X (T, B, I) and output Y; stateful: it also takes the
    initial state h (and c for the LSTM) (1, B, H) and returns the final one as Yh (and Yc)."""
    I, H = W.shape[0], U.shape[0]
    G = GATES[cell]
    inits = [numpy_helper.from_array(np.ascontiguousarray(W.T[None]), "W"),
             numpy_helper.from_array(np.ascontiguousarray(U.T[None]), "R"),
             numpy_helper.from_array(np.zeros((1, 2 * G * H), np.float32), "B")]
    states = (["h", "c"] if cell == "lstm" else ["h"]) if stateful else []
    inputs = ["X", "W", "R", "B"] + (["", *states] if states else [])
    outputs = ["Y"] + ["Y" + s for s in states]
    attrs = dict(hidden_size=H)
    if cell == "gru":
        attrs["linear_before_reset"] = 1
    node = helper.make_node(cell.upper(), inputs, outputs, **attrs)
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [node], cell, [value("X", TensorProto.FLOAT, [None, None, I])]
        + [value(s, TensorProto.FLOAT, [1, None, H]) for s in states],
        [value(o, TensorProto.FLOAT, None) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def ort_runner(cell, x, W, U, b, threads):
    """ONNX Runtime running one ONNX LSTM/GRU operator over x (T, B, I), or None when
    onnxruntime is not installed."""
    if ort is None:
        return None
    session = ort_session(cell, W, U, threads)
    return lambda: session.run(None, {"X": x})


def time_rounds(fns, budget, spinning=(), rounds=5, min_rounds=0):
    """Each function's times, round by round: a list per function of `rounds` lists of
    seconds. The functions take turns in blocks, one block each per round
    (timing.timed_block: an untimed call, then timed calls for budget / rounds seconds).
    Each function is thus timed as a loop calling it repeatedly would see it, and machine
    noise spreads over all of them. Round r starts with function r (mod their number), and
    every block waits until this process and the previous block's worker process are quiet
    (timing.wait_until_quiet). spinning: indices of functions whose idle threads spin
    after a call (ONNX Runtime by default): the next block starts 0.2 s after theirs at least,
    as those threads slowed whatever ran next 1.5-3x at 2 threads. A function may also be an
    object with a method block(seconds) that runs such a block elsewhere and returns its times
    and a pid (TensorFlow's worker process, tf_peer.py). min_rounds: when a call (timed at
    warm-up) takes longer than a block's share of the budget, so that each block holds one
    call, at least this many rounds: a ratio of five single calls moved by 10-20% from run to
    run on this machine at the largest shape. The warm-up is a first call: its one-time costs
    can give a fast row the extra rounds too (they cost little there)."""
    slowest = 0.0
    for f in fns:                       # warm-up: allocation, packing, ORT's first run
        if not hasattr(f, "block"):
            start = time.perf_counter()
            f()
            slowest = max(slowest, time.perf_counter() - start)
    if slowest > budget / rounds:
        rounds = max(rounds, min_rounds)
    times = [[] for _ in fns]
    for r in range(rounds):
        # each round starts with the next function, so that none always follows the same one
        for i in [(r + j) % len(fns) for j in range(len(fns))]:
            f = fns[i]
            wait_until_quiet()          # our threads (and spinning pools) idle
            if hasattr(f, "block"):     # a peer in a worker process (tf_peer.TFPeer)
                times[i].append(f.block(budget / rounds))
                wait_until_quiet(f.pid)
            else:
                times[i].append(timed_block(f, budget / rounds))
            if i in spinning:
                time.sleep(0.2)
    return times


def median_time(blocks):
    """The median of all the timed calls in a function's blocks (time_rounds)."""
    return statistics.median(t for block in blocks for t in block)


def time_group(fns, budget, spinning=(), rounds=5):
    """Median seconds of each function over all its timed calls (time_rounds)."""
    return [median_time(blocks) for blocks in time_rounds(fns, budget, spinning, rounds)]


def paired_ratio(peer_blocks, own_blocks):
    """A peer's time over ours, round by round (the two blocks of a round ran seconds apart,
    so a slow spell of the machine that lasts longer than that cancels out): the median of
    the per-round ratios of block medians, and their lowest and highest."""
    ratios = sorted(statistics.median(p) / statistics.median(o)
                    for p, o in zip(peer_blocks, own_blocks))
    return statistics.median(ratios), ratios[0], ratios[-1]


SGEMM_N = 1536    # a call well under a block (0.2 s), so that it does not set the rounds


def sgemm_runner(n=SGEMM_N):
    """NumPy's float32 matrix product (n x n x n), at the BLAS thread count in force (the row
    sets it with threadpool_limits); its rate is the row's SGEMM ceiling."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    return lambda: a @ b


def machine_facts():
    blas = [{k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads",
                                   "filepath")} for d in threadpool_info()
            if d.get("user_api") == "blas"]
    return {
        "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
        "onnxruntime": ort.__version__ if ort is not None else None,
        "seqcore": seqcore.__version__, "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(), "simd": seqcore.config()["simd"], "blas": blas,
        "unset_env": os.environ.get("SEQCORE_BENCH_REEXEC") or "",
    }


SPEEDUP_KEYS = ("speedup", "speedup_ort", "speedup_tf")     # vs torch, ORT, TF
HEADER = ("| cell | mode | T, B, I, H | threads | seqcore ms | torch ms | ORT ms | TF ms "
          "| seqcore GFLOP/s | % of SGEMM | vs torch | vs ORT | vs TF |")
COLUMNS = HEADER.count("|") - 1


def _cell(value, fmt):
    return "-" if value is None else format(value, fmt)


def _ratio(r, key):
    """A ratio and, when known, the lowest and highest of its rounds: 1.02 (0.97-1.06)."""
    if r.get(key) is None:
        return "-"
    spread = r.get(key + "_range")
    return f"{r[key]:.2f}" + (f" ({spread[0]:.2f}-{spread[1]:.2f})" if spread else "")


def format_row(r):
    return (f"| {r['cell']} | {r['mode']} | {', '.join(map(str, r['shape']))} | {r['threads']} "
            f"| {r['seqcore_ms']:.3f} | {r['torch_ms']:.3f} | {_cell(r['ort_ms'], '.3f')} "
            f"| {_cell(r.get('tf_ms'), '.3f')} "
            f"| {r['seqcore_gflops']:.1f} | {100 * r['ceiling_fraction']:.0f} "
            f"| {_ratio(r, 'speedup')} | {_ratio(r, 'speedup_ort')} "
            f"| {_ratio(r, 'speedup_tf')} |")


def _ceilings_by_threads(rows):
    """{threads: [the SGEMM rates measured in the rows at that thread count]}"""
    out = {}
    for r in rows:
        out.setdefault(r["threads"], []).append(r["sgemm_gflops"])
    return out


def summarize(rows):
    def geomean(v):
        return float(np.exp(np.mean(np.log(v))))
    vs_torch = [r["speedup"] for r in rows]
    lines = [f"geometric mean speed-up vs torch: {geomean(vs_torch):.2f}; slowest row: "
             f"{min(vs_torch):.2f}"]
    vs_ort = [r["speedup_ort"] for r in rows if r["speedup_ort"] is not None]
    if vs_ort:
        lines.append(f"geometric mean speed-up vs ONNX Runtime (inference rows): "
                     f"{geomean(vs_ort):.2f}; slowest row: {min(vs_ort):.2f}")
    vs_tf = [r["speedup_tf"] for r in rows if r.get("speedup_tf") is not None]
    if vs_tf:
        lines.append(f"geometric mean speed-up vs TensorFlow: {geomean(vs_tf):.2f}; slowest "
                     f"row: {min(vs_tf):.2f}")
    return lines


def parse_shape(text):
    """'T,B,I,H' -> (T, B, I, H), four positive integers (argparse type)."""
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 4 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected T,B,I,H (four positive integers), got {text!r}")
    return shape


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cells", nargs="+", default=["lstm", "gru"])
    parser.add_argument("--modes", nargs="+", default=["infer", "train"])
    parser.add_argument("--budget", type=float, default=1.0,
                        help="seconds of timing per library and row (default 1)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="blocks of calls per library and row, taken in turn (default 5)")
    parser.add_argument("--min-rounds", type=int, default=9,
                        help="rounds at least, for rows whose calls are so slow that a block "
                             "holds one call (default 9)")
    parser.add_argument("--quick", action="store_true", help="skip the largest shape")
    parser.add_argument("--shapes", nargs="+", metavar="T,B,I,H",
                        type=parse_shape,
                        help="time these shapes instead of the standard ones")
    parser.add_argument("--no-tf", action="store_true",
                        help="leave TensorFlow out even when it is installed")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "kernels"))
    args = parser.parse_args(argv)
    args.threads = usable_thread_counts(args.threads)

    facts = machine_facts()
    facts["tensorflow"] = None if args.no_tf else tf_peer.available()
    print(f"# seqcore {facts['seqcore']} vs torch {facts['torch']}, onnxruntime "
          f"{facts['onnxruntime'] or 'not installed (no ORT column)'}, tensorflow "
          f"{facts['tensorflow'] or 'left out or not installed (no TF column)'}  (python "
          f"{facts['python']}, numpy {facts['numpy']}, {facts['cores']} cores, SIMD "
          f"{facts['simd']})")
    for lib in facts["blas"]:
        print(f"# BLAS: {lib['internal_api']} {lib['version']} kernel {lib['architecture']} "
              f"({lib['filepath']})")
    print(f"# unset for this run: {facts['unset_env'] or 'nothing (neither variable was set)'}")
    print(f"# NumPy SGEMM ceiling ({SGEMM_N}^3): measured in every row's rounds")
    sgemm = sgemm_runner()

    rng = np.random.default_rng(0)
    shapes = args.shapes or (SHAPES[:3] + SHAPES[4:] if args.quick else SHAPES)
    rows = []
    tf_workers = {}                                # threads: tf_peer.TFPeer
    print(HEADER)
    print("|" + "---|" * COLUMNS)
    for cell in args.cells:
        for mode in args.modes:
            for shape in shapes:
                T, B, I, H = shape
                x = rng.standard_normal((T, B, I)).astype(np.float32)
                W, U, b = make_weights(cell, I, H, rng)
                for threads in args.threads:
                    torch.set_num_threads(threads)
                    fns = [seqcore_runner(cell, mode, x, W, U, b),
                           torch_runner(cell, mode, x, W, U, b)]
                    peer = ort_runner(cell, x, W, U, b, threads) if mode == "infer" else None
                    if peer:
                        fns.append(peer)
                    if facts["tensorflow"]:
                        if threads not in tf_workers:
                            tf_workers[threads] = tf_peer.TFPeer(threads)
                        fns.append(tf_workers[threads].setup(cell, mode, x, W, U, b))
                    fns.append(sgemm)
                    # ORT, TF and NumPy's OpenBLAS spin their idle threads after a call; both
                    # BLAS libraries (NumPy's, and scipy's that seqcore uses) at `threads`
                    with threadpool_limits(limits=threads, user_api="blas"):
                        seqcore.set_num_threads(threads)
                        blocks = time_rounds(fns, args.budget, spinning=range(2, len(fns)),
                                             rounds=args.rounds, min_rounds=args.min_rounds)
                    sgemm_blocks = blocks.pop()
                    ceiling = 2 * SGEMM_N ** 3 / median_time(sgemm_blocks) / 1e9
                    ours = blocks[0]
                    peers = {"torch": blocks[1], "ort": blocks[2] if peer else None,
                             "tf": blocks[-1] if facts["tensorflow"] else None}
                    ms = {name: None if blk is None else 1e3 * median_time(blk)
                          for name, blk in [("seqcore", ours)] + list(peers.items())}
                    ratios = {name: None if blk is None else paired_ratio(blk, ours)
                              for name, blk in peers.items()}
                    f = flops(cell, mode, *shape)
                    # seqcore's rate / SGEMM's, round by round as the speed-ups (a slow spell
                    # of the machine hits both blocks of a round): the SGEMM time of a round
                    # over seqcore's, times the FLOP ratio
                    share = [f / (2 * SGEMM_N ** 3) * v
                             for v in paired_ratio(sgemm_blocks, ours)]
                    row = dict(cell=cell, mode=mode, shape=shape, threads=threads,
                               rounds=len(ours),
                               seqcore_ms=ms["seqcore"], torch_ms=ms["torch"],
                               ort_ms=ms["ort"], tf_ms=ms["tf"],
                               seqcore_gflops=f / ms["seqcore"] / 1e6,
                               torch_gflops=f / ms["torch"] / 1e6,
                               sgemm_gflops=ceiling,
                               ceiling_fraction=share[0],
                               ceiling_fraction_range=share[1:],
                               **{key: None if r is None else r[0] for key, r in
                                  zip(SPEEDUP_KEYS, ratios.values())},
                               **{key + "_range": None if r is None else list(r[1:]) for
                                  key, r in zip(SPEEDUP_KEYS, ratios.values())})
                    rows.append(row)
                    print(format_row(row), flush=True)
    for worker in tf_workers.values():
        worker.close()
    summary = summarize(rows)
    print("\n" + "\n".join(summary))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"machine": facts, "rows": rows}, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(f"seqcore {facts['seqcore']} vs torch {facts['torch']}, onnxruntime "
                f"{facts['onnxruntime'] or '(not installed)'} and tensorflow "
                f"{facts['tensorflow'] or '(left out or not installed)'}, float32, "
                f"{facts['cores']} cores, "
                f"SIMD {facts['simd']}, BLAS "
                + ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})"
                            for b in facts["blas"])
                + f"; unset: {facts['unset_env'] or 'nothing'}; NumPy SGEMM ceiling "
                + ", ".join(f"{min(c):.1f}-{max(c):.1f} GFLOP/s ({t} thr.)"
                            for t, c in _ceilings_by_threads(rows).items())
                + " (measured in each row's rounds; the % column pairs seqcore's rate with the"
                " SGEMM rate round by round, as the speed-ups, and takes the median)"
                + ". seqcore's inference rows run ops.BoundLayer (ops.Stepper for T = 1): weights"
                " checked and packed once, as the torch module and the ORT session hold theirs;"
                " each library is timed in blocks of calls with its own data in cache"
                " (time_group).\n\n")
        f.write(HEADER + "\n|" + "---|" * COLUMNS + "\n")
        for r in rows:
            f.write(format_row(r) + "\n")
        f.write("\n" + "\n".join(summary) + "\n")
    labels = [f"{r['cell']} {r['mode']} {tuple(r['shape'])} {r['threads']}t" for r in rows]
    png = ratio_chart(labels, {"vs torch": [r["speedup"] for r in rows],
                               "vs ONNX Runtime": [r["speedup_ort"] for r in rows],
                               "vs TensorFlow": [r["speedup_tf"] for r in rows]},
                      args.out + ".png", f"seqcore vs peers, float32, {facts['cores']} cores "
                      "(bench/kernels.py)")
    print(f"chart: {png}" if png else "chart: not written (matplotlib is not installed)")


if __name__ == "__main__":
    main()
