"""seqcore vs PyTorch CPU (and ONNX Runtime for streaming) on whole workloads, in one run:

    python bench/workloads.py [--threads 1 2] [--quick] [--out bench/results/workloads]

- stream: one time step of a streaming model (LSTM / GRU, 64 -> 128, batch 1) with the state
  carried: seqcore `model.stream().step(x_t)` vs the torch module called on a length-1 sequence
  with its state, vs an ONNX Runtime session of one LSTM / GRU operator fed its state.
- ragged: a batch of 32 sequences whose lengths spread evenly over 1..T (LSTM, T 100, 128 ->
  256), inference and a training step: seqcore with `lengths` vs torch on packed sequences
  (pack_padded_sequence), and the same batch with every row full length scaled by the
  fraction of valid steps (what a length-aware kernel would cost if a step's cost were
  proportional to its rows). A step's cost is not: so also the batch-size curve's sum, the
  ragged batch's steps each costed as a step of a full-length batch of its active size (the
  first b rows of x, all T steps, timed, times the number of steps with b rows active, / T):
  how the ragged call compares with the kernel on full batches of the same sizes.
- dropout: a training step of an LSTM layer (T 100, B 16, 256 -> 256) with
  recurrent_dropout=0.2 against the same step without (seqcore only: torch has no recurrent
  dropout; the ratio is the cost of the mask).
- bidir: a 2-layer bidirectional LSTM (B 16, T 100, 128 -> 256 per direction) on
  variable-length input, inference and a training step: seqcore (torch's module read by
  seqcore.interop.from_torch for inference; two Bidirectional(LSTM) layers for training) vs
  torch on packed sequences.
- long: inference on one sequence of T = 10,000 steps (LSTM 64 -> 128) keeping only the last
  state: time, and peak memory in a fresh process (how far the resident set grew during the
  call: Linux's peak, VmHWM, reset just before it), seqcore vs torch.
- ragged and bidir also report the peak memory of a first call in a fresh process.
- memory: peak memory of one training step (LSTM, T 100, B 64, 512 -> 512) in a fresh
  process, seqcore vs torch (times: that first call's: one cold call is a single sample of
  this machine's noise).
A first call in a fresh process (peak memory, and the memory row's times) is the median over
PROBES processes each, seqcore and torch taken in turns, each process running
`workloads.py --probe` on the very setup the timed rows use.

Times are medians of interleaved blocks of repetitions after warm-up (kernels.time_group); ratios are
peer / seqcore (> 1: seqcore is faster); the ratios of two seqcore calls (ragged / full batch,
the curve's sum, dropout / none) are medians of the ratios of rounds in which the calls run
in turn (timing.alternating_rounds), with their quartiles; in the ragged rows' rounds each
timed call (the ragged batch, the full batch, each of the curve's) comes right after an
untimed call of its own (timing.warm_timer: otherwise the full batch found its buffers warm
after the curve's last call and the ragged call found its own evicted). The environment handling
(OPENBLAS_* unset) and the machine facts are those of bench/kernels.py.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernels  # noqa: E402  (re-executes without OPENBLAS_* like kernels.py itself)
from kernels import machine_facts, ort, time_group  # noqa: E402
from timing import alternating_rounds, timer, usable_thread_counts, warm_timer  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

import seqcore as sc  # noqa: E402

# ragged / full batch and dropout / none: the median of the ratios of at least this many
# rounds of calls in turn (timing.alternating_rounds); the median of 9 rounds of paired blocks
# seconds apart moved by 0.05-0.1 between runs here
ALTERNATING_ROUNDS = 15


# ------------------------------------------------------------------------------ streaming

def stream_rows(threads, budget):
    rows = []
    rng = np.random.default_rng(0)
    I, H = 64, 128
    for cell in ("lstm", "gru"):
        layer = (sc.LSTM if cell == "lstm" else sc.GRU)(H, return_sequences=True, seed=0)
        model = sc.Sequential([layer])
        model.build((None, None, I))
        stream = model.stream()
        x = rng.standard_normal((1, I)).astype(np.float32)

        module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H)
        xt = torch.from_numpy(x[None])
        state = [None]

        def torch_step():
            with torch.inference_mode():
                _, state[0] = module(xt, state[0])

        fns = [lambda: stream.step(x), torch_step]
        peer = _ort_stepper(cell, x, I, H, threads)
        n = 200                                  # steps per timed call: the time is per step
        loops = [lambda f=f: [f() for _ in range(n)] for f in fns]
        if peer:
            ts, tt, to = time_group(loops + [lambda: [peer() for _ in range(n)]], budget,
                                    spinning=(2,))
        else:
            (ts, tt), to = time_group(loops, budget), None
        rows.append(dict(workload="stream", cell=cell, shape=(1, 1, I, H), threads=threads,
                         seqcore_ms=ts / n * 1e3, torch_ms=tt / n * 1e3,
                         ort_ms=None if to is None else to / n * 1e3))
    return rows


def _ort_stepper(cell, x, I, H, threads):
    """One ONNX LSTM / GRU operator over one step, its state fed back at every call."""
    if ort is None:
        return None
    W, U, _ = kernels.make_weights(cell, I, H, np.random.default_rng(1))
    session = kernels.ort_session(cell, W, U, threads, stateful=True)
    states = ["h", "c"] if cell == "lstm" else ["h"]
    feed = {"X": x[None], **{s: np.zeros((1, 1, H), np.float32) for s in states}}

    def step():
        out = session.run(None, feed)
        for s, value in zip(states, out[1:]):
            feed[s] = value
    return step


# ------------------------------------------------------------------- ragged and bidirectional

def _lengths(B, T):
    return np.linspace(1, T, B).round().astype(np.int64)


def _torch_packed_lstm(module, x, lengths, train):
    """torch on packed sequences: forward (and backward) of `module` over x (B, T, I)."""
    xt = torch.from_numpy(x)
    lt = torch.from_numpy(lengths)

    def run():
        if train:
            module.zero_grad(set_to_none=True)
            xg = xt.clone().requires_grad_()
            out, _ = module(pack_padded_sequence(xg, lt, batch_first=True,
                                                 enforce_sorted=False))
            padded, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
            padded.sum().backward()
        else:
            with torch.inference_mode():
                out, _ = module(pack_padded_sequence(xt, lt, batch_first=True,
                                                     enforce_sorted=False))
                pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return run


def _seqcore_layers(layers, x, lengths, train):
    """seqcore layers in a chain over x (B, T, I) with `lengths`: forward (and backward)."""
    def run():
        y = x
        for layer in layers:
            y = layer(y, lengths=lengths, training=train)
        if train:
            d = np.ones_like(y)
            for layer in reversed(layers):
                d = layer.backward(d)
    return run


def _batch_curve(layer, x, lengths, train):
    """A timer (timing.timer's kind) of the batch-size curve's sum for a ragged batch x
    (B, T, I) with `lengths`: `layer` runs on a full-length batch of every size the ragged
    batch passes through (its first b rows, all T steps), and the sum weighs each call's time
    by the number of steps with b rows active / T, so that every step of the ragged batch is
    costed as a step of the full batch of its active size (and a call's fixed cost counts
    once in all)."""
    T = x.shape[1]
    active = (lengths[None, :] > np.arange(T)[:, None]).sum(axis=1)
    steps = {int(b): int((active == b).sum()) for b in np.unique(active) if b > 0}
    runs = {b: warm_timer(_seqcore_layers([layer], np.ascontiguousarray(x[:b]),
                                          np.full(b, T, np.int64), train))
            for b in steps}
    return lambda: sum(run() * steps[b] / T for b, run in runs.items())


def _round_ratios(num, den, scale=1.0):
    """Round-by-round ratios num / den (alternating_rounds) / scale: median and quartiles."""
    q1, median, q3 = np.percentile(np.array(num) / np.array(den) / scale, [25, 50, 75])
    return float(median), [float(q1), float(q3)]


RAGGED_SHAPE = (100, 32, 128, 256)          # T, B, I, H
BIDIR_SHAPE = (100, 16, 128, 256)


def _ragged_setup(mode):
    """The ragged workload in `mode`: x (B, T, I), lengths, the seqcore layer (built) and the
    torch module, and the two calls (seqcore, torch)."""
    T, B, I, H = RAGGED_SHAPE
    x = np.random.default_rng(2).standard_normal((B, T, I)).astype(np.float32)
    lengths = _lengths(B, T)
    train = mode == "train"
    layer = sc.LSTM(H, return_sequences=True, seed=0)
    layer.build((None, None, I))
    module = torch.nn.LSTM(I, H, batch_first=True)
    return (x, lengths, layer, _seqcore_layers([layer], x, lengths, train),
            _torch_packed_lstm(module, x, lengths, train))


def ragged_rows(threads, budget):
    rows = []
    T, B, I, H = RAGGED_SHAPE
    for mode in ("infer", "train"):
        train = mode == "train"
        x, lengths, layer, ragged, torch_ragged = _ragged_setup(mode)
        full = np.full(B, T, np.int64)
        fraction = lengths.sum() / (B * T)
        padded = _seqcore_layers([layer], x, full, train)
        ts, tt = time_group([ragged, torch_ragged], budget)
        r, f, c = alternating_rounds([warm_timer(ragged), warm_timer(padded),
                                      _batch_curve(layer, x, lengths, train)],
                                     2 * budget, ALTERNATING_ROUNDS)
        scaled, scaled_q = _round_ratios(r, f, fraction)
        curve_scaled, curve_scaled_q = _round_ratios(c, f, fraction)
        on_curve, on_curve_q = _round_ratios(r, c)
        rows.append(dict(workload="ragged", cell="lstm", mode=mode, shape=(T, B, I, H),
                         threads=threads, seqcore_ms=ts * 1e3, torch_ms=tt * 1e3,
                         full_scaled_ms=float(np.median(f)) * fraction * 1e3,
                         valid_fraction=fraction, rounds=len(r),
                         scaled_ratio=scaled, scaled_ratio_quartiles=scaled_q,
                         curve_ms=float(np.median(c)) * 1e3, curve_scaled=curve_scaled,
                         curve_scaled_quartiles=curve_scaled_q,
                         curve_ratio=on_curve, curve_ratio_quartiles=on_curve_q,
                         **_workload_peaks("ragged", mode, threads)))
    return rows


def dropout_rows(threads, budget):
    rng = np.random.default_rng(3)
    B, T, I, H = 16, 100, 256, 256
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    plain = sc.LSTM(H, return_sequences=True, seed=0)
    dropped = sc.LSTM(H, return_sequences=True, recurrent_dropout=0.2, seed=0)
    lengths = np.full(B, T, np.int64)
    ts, td = alternating_rounds([timer(_seqcore_layers([plain], x, lengths, True)),
                                 timer(_seqcore_layers([dropped], x, lengths, True))],
                                2 * budget, ALTERNATING_ROUNDS)
    ratio, quartiles = _round_ratios(td, ts)
    return [dict(workload="dropout", cell="lstm", mode="train", shape=(T, B, I, H),
                 threads=threads, seqcore_ms=float(np.median(ts)) * 1e3,
                 dropout_ms=float(np.median(td)) * 1e3, rounds=len(ts),
                 dropout_ratio=ratio, dropout_ratio_quartiles=quartiles)]


def _bidir_setup(mode):
    """The bidirectional workload in `mode`: x and the two calls (seqcore: the torch module
    read by from_torch for inference, two Bidirectional(LSTM) layers, built, for training)."""
    from seqcore.interop import from_torch
    T, B, I, H = BIDIR_SHAPE
    x = np.random.default_rng(4).standard_normal((B, T, I)).astype(np.float32)
    lengths = _lengths(B, T)
    module = torch.nn.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True)
    train = mode == "train"
    if train:
        layers = [sc.Bidirectional(sc.LSTM(H, return_sequences=True, seed=s)) for s in (0, 1)]
        layers[0].build((None, None, I))
        layers[1].build((None, None, 2 * H))
        ours = _seqcore_layers(layers, x, lengths, True)
    else:
        stack = from_torch(module)
        ours = lambda: stack(x, lengths=lengths)  # noqa: E731
    return x, ours, _torch_packed_lstm(module, x, lengths, train)


def bidir_rows(threads, budget):
    rows = []
    for mode in ("infer", "train"):
        _, ours, theirs = _bidir_setup(mode)
        ts, tt = time_group([ours, theirs], budget)
        rows.append(dict(workload="bidir", cell="lstm", mode=mode, shape=BIDIR_SHAPE,
                         threads=threads, seqcore_ms=ts * 1e3, torch_ms=tt * 1e3,
                         **_workload_peaks("bidir", mode, threads)))
    return rows


# ----------------------------------------------------------------------------------- memory

LONG_SHAPE = (10_000, 1, 64, 128)         # T, B, I, H
MEMORY_SHAPE = (100, 64, 512, 512)


def _memory_setup(task):
    """The long (inference, the last state only) or memory (a training step) workload: x
    (B, T, I) and the two calls (seqcore, torch)."""
    T, B, I, H = LONG_SHAPE if task == "long" else MEMORY_SHAPE
    train = task != "long"
    x = np.random.default_rng(0).standard_normal((B, T, I)).astype(np.float32)
    layer = sc.LSTM(H, return_sequences=train, seed=0)
    layer.build((None, None, I))
    module = torch.nn.LSTM(I, H, batch_first=True)
    xt = torch.from_numpy(x)

    def ours():
        y = layer(x, training=train)
        if train:
            layer.backward(np.ones_like(y))

    def theirs():
        if not train:
            with torch.inference_mode():
                module(xt)
            return
        out, _ = module(xt.clone().requires_grad_())
        out.sum().backward()
    return x, ours, theirs


PROBES = 5          # first calls vary by 10-30% from process to process here


def _first_call(run):
    """How far this process's resident set grows during run(), in MB (Linux: the peak,
    VmHWM, restarted from the current size just before), and run()'s milliseconds."""
    def status(key):                       # kB
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    start = time.perf_counter()
    run()
    ms = (time.perf_counter() - start) * 1e3
    return (status("VmHWM") - before) / 1024, ms


def _calls(workload, mode):
    """(seqcore call, torch call, the input's MB) of a workload that reports first calls
    (ragged, bidir, long, memory) in mode."""
    if workload == "ragged":
        x, _, _, ours, theirs = _ragged_setup(mode)
    elif workload == "bidir":
        x, ours, theirs = _bidir_setup(mode)
    else:
        x, ours, theirs = _memory_setup(workload)
    return ours, theirs, x.nbytes / 2**20


def probe(workload, mode, lib, threads):
    """In a fresh process (workloads.py --probe): the peak growth and the time of the first
    call of workload's seqcore or torch call, printed with the input's MB."""
    sc.set_num_threads(threads)
    torch.set_num_threads(threads)
    ours, theirs, input_mb = _calls(workload, mode)
    print(*_first_call(ours if lib == "seqcore" else theirs), input_mb)


def _first_calls(workload, mode, threads):
    """{lib: (peak MB, ms)} of seqcore's and torch's first call, each the median over PROBES
    fresh processes taken in turns, and the input's MB."""
    runs = {"seqcore": [], "torch": []}
    for _ in range(PROBES):
        for lib in runs:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--probe",
                                  workload, mode, lib, str(threads)],
                                 capture_output=True, text=True, check=True).stdout.split()
            runs[lib].append([float(v) for v in out[-3:]])
    medians = {lib: tuple(float(np.median(column)) for column in list(zip(*r))[:2])
               for lib, r in runs.items()}
    return medians, runs["seqcore"][0][2]


def _workload_peaks(workload, mode, threads):
    """The peak memory fields of a ragged or bidir row (_first_calls)."""
    medians, input_mb = _first_calls(workload, mode, threads)
    return dict(seqcore_peak_mb=medians["seqcore"][0], torch_peak_mb=medians["torch"][0],
                input_mb=input_mb)


def memory_rows(threads, budget):
    """Peak memory from fresh processes; the long sequence is also timed here, in process
    (the memory row's times are those of a first call in a fresh process)."""
    rows = []
    for task, shape, mode in (("long", LONG_SHAPE, "infer"), ("memory", MEMORY_SHAPE, "train")):
        medians, input_mb = _first_calls(task, mode, threads)
        (ms, ts), (mt, tt) = medians["seqcore"], medians["torch"]
        if task == "long":
            _, ours, theirs = _memory_setup(task)
            ts, tt = (t * 1e3 for t in time_group([ours, theirs], budget))
        rows.append(dict(workload=task, cell="lstm", mode=mode, shape=shape, threads=threads,
                         seqcore_ms=ts, torch_ms=tt, seqcore_peak_mb=ms, torch_peak_mb=mt,
                         input_mb=input_mb))
    return rows


# ----------------------------------------------------------------------------------- output

def _fmt(v, f=".3f"):
    return "-" if v is None else format(v, f)


def _paired(r, key, unpaired):
    """A row's ratio of two seqcore calls: the median of its rounds' ratios with their
    quartiles (calls in turns) or lowest and highest (blocks in turns, rows written before the
    alternation); rows written before any pairing: the ratio of the medians."""
    if key not in r:
        return f"{unpaired:.2f}"
    if key + "_quartiles" in r:
        q1, q3 = r[key + "_quartiles"]
        return f"{r[key]:.2f} (quartiles {q1:.2f}-{q3:.2f})"
    low, high = r[key + "_range"]
    return f"{r[key]:.2f} ({low:.2f}-{high:.2f})"


def format_row(r):
    ratio = r["torch_ms"] / r["seqcore_ms"] if r.get("torch_ms") else None
    extra = []
    if r.get("ort_ms") is not None:
        extra.append(f"ONNX Runtime {r['ort_ms'] * 1e3:.1f} us/step "
                     f"({r['ort_ms'] / r['seqcore_ms']:.2f}x)")
    if "full_scaled_ms" in r:
        extra.append(f"full-length batch x valid fraction {r['valid_fraction']:.2f}: "
                     f"{r['full_scaled_ms']:.2f} ms (seqcore / that: "
                     + _paired(r, "scaled_ratio", r["seqcore_ms"] / r["full_scaled_ms"]) + ")")
    if "curve_ms" in r:
        extra.append(f"batch-size curve's sum: {r['curve_ms']:.2f} ms (that / full x fraction: "
                     + _paired(r, "curve_scaled", None) + "; seqcore / that: "
                     + _paired(r, "curve_ratio", None) + ")")
    if "dropout_ms" in r:
        extra.append(f"with recurrent_dropout=0.2: {r['dropout_ms']:.2f} ms (time ratio "
                     + _paired(r, "dropout_ratio", r["dropout_ms"] / r["seqcore_ms"]) + ")")
    if "seqcore_peak_mb" in r:
        extra.append(f"peak memory of the call: seqcore {r['seqcore_peak_mb']:.1f} MB, "
                     f"torch {r['torch_peak_mb']:.1f} MB (input {r['input_mb']:.1f} MB)")
    if r["workload"] == "memory":
        extra.append(f"times: a first call in a fresh process, median of {PROBES}")
    unit = "us/step" if r["workload"] == "stream" else "ms"
    scale = 1e3 if unit == "us/step" else 1
    return (f"| {r['workload']} | {r['cell']} | {r.get('mode', 'infer')} "
            f"| {', '.join(map(str, r['shape']))} | {r['threads']} "
            f"| {r['seqcore_ms'] * scale:.3f} {unit} "
            f"| {_fmt(None if r.get('torch_ms') is None else r['torch_ms'] * scale)} "
            f"| {_fmt(ratio, '.2f')} | {'; '.join(extra)} |")


HEADER = ("| workload | cell | mode | T, B, I, H | threads | seqcore | torch | vs torch "
          "| more |")
WORKLOADS = {"stream": stream_rows, "ragged": ragged_rows, "dropout": dropout_rows,
             "bidir": bidir_rows, "memory": memory_rows}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS))
    parser.add_argument("--budget", type=float, default=1.0,
                        help="seconds of timing per library and row (default 1)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                      "workloads"))
    parser.add_argument("--probe", nargs=4, metavar=("WORKLOAD", "MODE", "LIB", "THREADS"),
                        help="(internal) print the peak memory of one first call")
    args = parser.parse_args(argv)
    if args.probe:
        workload, mode, lib, threads = args.probe
        probe(workload, mode, lib, int(threads))
        return
    args.threads = usable_thread_counts(args.threads)
    facts = machine_facts()
    print(f"# seqcore {facts['seqcore']} vs torch {facts['torch']}, onnxruntime "
          f"{facts['onnxruntime'] or 'not installed'}; {facts['cores']} cores, SIMD "
          f"{facts['simd']}; unset for this run: {facts['unset_env'] or 'nothing'}")
    print(HEADER)
    print("|" + "---|" * 9)
    rows = []
    for threads in args.threads:
        sc.set_num_threads(threads)
        torch.set_num_threads(threads)
        for name in args.workloads:
            for row in WORKLOADS[name](threads, args.budget):
                rows.append(row)
                print(format_row(row), flush=True)
            time.sleep(0.2)              # let spinning thread pools go quiet
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"machine": facts, "rows": rows}, f, indent=1, default=float)
    with open(args.out + ".md", "w") as f:
        f.write(f"seqcore {facts['seqcore']} vs torch {facts['torch']} and onnxruntime "
                f"{facts['onnxruntime'] or '(not installed)'}, float32, {facts['cores']} "
                f"cores, SIMD {facts['simd']}; unset: {facts['unset_env'] or 'nothing'}\n\n")
        f.write(HEADER + "\n|" + "---|" * 9 + "\n")
        for r in rows:
            f.write(format_row(r) + "\n")


if __name__ == "__main__":
    main()
