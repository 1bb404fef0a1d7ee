"""Issue 6's speed and memory targets, checked against the committed benchmark results: which
are met, and for each row that is not, the bound measured on this machine that stops it, or
the plain statement that no such bound is known (work left).

    python bench/targets.py [--results bench/results] [--out bench/results/targets.md]

Reads kernels.json (bench/kernels.py), workloads.json (bench/workloads.py) and bandwidth.json
(bench/bandwidth.py) from --results; runs nothing itself, so it is only as recent as those
runs, which should come from one machine (the report names kernels.json's).

Two bounds, both from measurements, both optimistic for seqcore (a row they rule out cannot be
won by better code on this machine, only by doing less arithmetic or reading fewer bytes):
- compute: seqcore cannot run faster than the highest share of the SGEMM rate it reached on any
  row of the same run; against a peer already at a share f of that rate, it can be at most
  (best share / f) times faster.
- memory (batch 1, inference): every step reads all of U (and, for a single step, W too) and
  cannot do so faster than the fastest rate bench/bandwidth.py's bare loop streamed weights on
  one core, times the number of threads; the input projection of a sequence runs at best at
  the row's SGEMM rate. A row cannot take less than that sum.
"""
import argparse
import json
import math
import os

GATES = {"lstm": 4, "gru": 3}
PARITY = 0.95           # "parity" where the peers sit at the SGEMM ceiling: within 5%
PARITY_SGEMM = 0.90     # ... with seqcore at 90% of the SGEMM rate or more
SMALL_BATCH = 1.5       # B <= 16: at least 1.5x the fastest peer
STREAM_US = 5.0         # a streaming step from Python
TRAIN_GEOMEAN = 1.5     # training rows vs PyTorch, geometric mean
RAGGED_SLACK = 1.10     # ragged: within 10% of the full batch scaled by the valid fraction
RAGGED_MARGIN = 1.5     # ... and this much faster than PyTorch on packed sequences
DROPOUT_COST = 1.05     # recurrent dropout: at most 5% over none
LONG_MB = 4.0           # T = 10,000 inference: the call's peak growth within a few MB


def load(results, name):
    path = os.path.join(results, name + ".json")
    with open(path) as f:
        return json.load(f)


def peers_of(row):
    """{peer: ms} of a kernels.json row, the peers that ran it."""
    return {name: row[key] for name, key in (("torch", "torch_ms"), ("ONNX Runtime", "ort_ms"),
                                             ("TensorFlow", "tf_ms"))
            if row.get(key) is not None}


RATIO_KEY = {"torch": "speedup", "ONNX Runtime": "speedup_ort", "TensorFlow": "speedup_tf"}


def fastest_peer(row):
    """(name, ms, ratio, [lowest, highest round]) of the row's fastest peer (by median time);
    the ratio is the table's: the median of the rounds' paired peer / seqcore ratios."""
    name, ms = min(peers_of(row).items(), key=lambda item: item[1])
    key = RATIO_KEY[name]
    return name, ms, row[key], row.get(key + "_range")


def label(row):
    return f"{row['cell']} {row['mode']} ({', '.join(map(str, row['shape']))}) {row['threads']}t"


def stream_rate_for(rates, cell, H, threads):
    """Bytes/s at which `threads` cores can at best stream a recurrent kernel: at one thread
    the bare loop's rate for this very U when bandwidth.py measured it, else (and for more
    threads, each its own core) the fastest rate it measured on any U, times the threads."""
    if threads == 1 and (cell, H) in rates:
        return rates[(cell, H)]
    return max(rates.values()) * threads


def memory_floor_ms(row, rates):
    """The least time of a batch-1 inference row: U read every step (W too when T = 1) at
    stream_rate_for, plus the input projection at the row's SGEMM rate."""
    T, B, I, H = row["shape"]
    G = GATES[row["cell"]]
    rate = stream_rate_for(rates, row["cell"], H, row["threads"])
    if T == 1:
        return (I + H) * G * H * 4 / rate * 1e3
    projection = 2 * T * B * I * G * H / (row["sgemm_gflops"] * 1e9)
    return (T * H * G * H * 4 / rate + projection) * 1e3


def bounded(best, bar, what):
    """A verdict (best, text) for a row that misses bar: a bound when even the optimistic best
    misses it, else open."""
    if best < bar:
        return best, f"bound: {what}, at most {best:.2f}x < {bar:g}x"
    return best, f"open: {what}, at most {best:.2f}x"


def tightest(verdicts, bar):
    """The text of the tightest bound among the verdicts (best, text) if one rules bar out,
    else all of them."""
    bounds = [v for v in verdicts if v[0] < bar]
    if bounds:
        return min(bounds)[1]
    return "; ".join(text for _, text in verdicts)


def kernel_checks(rows, rates):
    """Per kernel row (label, bar, measured, seqcore % of SGEMM, met, verdict if not) for the
    fastest-peer target and, B <= 16, the small-batch one; the training geometric mean; the
    highest share of the SGEMM rate seqcore reached."""
    best_share = max(r["ceiling_fraction"] for r in rows)
    peer_rows, small_rows = [], []
    for r in rows:
        T, B, I, H = r["shape"]
        name, ms, ratio, spread = fastest_peer(r)
        seen = f"{ratio:.2f}" + (f" ({spread[0]:.2f}-{spread[1]:.2f})" if spread else "")
        share = f"{100 * r['ceiling_fraction']:.0f}%"
        if r.get("ceiling_fraction_range"):     # the rounds' lowest and highest
            share += " ({:.0f}-{:.0f}%)".format(*(100 * v for v in r["ceiling_fraction_range"]))
        peer_share = r["ceiling_fraction"] * r["seqcore_ms"] / ms
        compute = f"{name} at {100 * peer_share:.0f}% of SGEMM, seqcore at best " \
                  f"{100 * best_share:.0f}%"
        if B >= 64 and H >= 512:
            ok = ratio >= PARITY and r["ceiling_fraction"] >= PARITY_SGEMM
            why = "" if ok else (
                bounded(best_share / peer_share, PARITY, compute)[1] if ratio < PARITY else
                f"open: seqcore at {100 * r['ceiling_fraction']:.1f}% of SGEMM (bar "
                f"{100 * PARITY_SGEMM:.0f}%; {100 * best_share:.0f}% on another row)")
            peer_rows.append((label(r), f"parity with {name}", seen, share, ok, why))
        else:
            ok = ratio >= 1.0
            peer_rows.append((label(r), f"faster than {name}", seen, share, ok,
                              "" if ok else bounded(best_share / peer_share, 1.0, compute)[1]))
        if B <= 16:
            ok = ratio >= SMALL_BATCH
            verdicts = [bounded(best_share / peer_share, SMALL_BATCH, compute)]
            if B == 1 and r["mode"] == "infer" and rates:
                floor = memory_floor_ms(r, rates)
                rate = stream_rate_for(rates, r["cell"], H, r["threads"])
                verdicts.append(bounded(ms / floor, SMALL_BATCH,
                                        f"weights read at {rate / 1e9:.0f} GB/s in all "
                                        f"(least time {floor:.3f} ms)"))
            small_rows.append((label(r), f"{SMALL_BATCH:g}x {name}", seen, share, ok,
                               "" if ok else tightest(verdicts, SMALL_BATCH)))
    train = [r["speedup"] for r in rows if r["mode"] == "train"]
    geomean = math.exp(sum(map(math.log, train)) / len(train)) if train else float("nan")
    return peer_rows, small_rows, geomean, best_share


def ragged_verdict(r):
    """Why a ragged row misses its bar, as far as the batch-size curve tells (workloads.py:
    every step costed as a step of a full batch of its active rows): how much of the gap the
    cost per row at smaller batches accounts for, and how much the ragged call adds to it
    (its sorting, zeroed masked rows and step-by-step products)."""
    if "curve_scaled" not in r:
        return "open: no bound known"
    return (f"open: batch-size curve {r['curve_scaled']:.3f}x the full batch x fraction, "
            f"the ragged call {r['curve_ratio']:.3f}x the curve")


def workload_checks(rows, rates):
    """Per workloads row and target (target, row, measured, met, verdict if not)."""
    out = []
    for r in rows:
        t, kind = r["threads"], r["workload"]
        where = f"{r.get('mode', 'infer')} {r['cell']} {t}t"
        if kind == "stream":
            us = r["seqcore_ms"] * 1e3
            T, B, I, H = r["shape"]
            why = ""
            if us > STREAM_US and not rates:
                why = "open: no bandwidth.json"
            elif us > STREAM_US:
                floor = (I + H) * GATES[r["cell"]] * H * 4 / (max(rates.values()) * t) * 1e6
                why = (f"bound: W and U alone take at least {floor:.2f} us" if floor >= STREAM_US
                       else f"open: W and U take at least {floor:.2f} us, leaving "
                            f"{STREAM_US - floor:.2f} us for the rest (activations, Python)")
            out.append((f"streaming step <= {STREAM_US:g} us", where, f"{us:.1f} us",
                        us <= STREAM_US, why))
        elif kind == "ragged":
            slack = r.get("scaled_ratio", r["seqcore_ms"] / r["full_scaled_ms"])
            margin = r["torch_ms"] / r["seqcore_ms"]
            out.append((f"ragged within {100 * (RAGGED_SLACK - 1):.0f}% of the full batch x "
                        "valid fraction", where, f"{slack:.3f}", slack <= RAGGED_SLACK,
                        ragged_verdict(r)))
            out.append((f"ragged >= {RAGGED_MARGIN:g}x torch on packed sequences", where,
                        f"{margin:.2f}x", margin >= RAGGED_MARGIN, "open"))
        elif kind == "dropout":
            cost = r.get("dropout_ratio", r["dropout_ms"] / r["seqcore_ms"])
            out.append((f"recurrent dropout <= +{100 * (DROPOUT_COST - 1):.0f}%", where,
                        f"{100 * (cost - 1):+.1f}%", cost <= DROPOUT_COST, "open"))
        elif kind == "long":
            out.append((f"T = 10,000 inference: the call's peak <= {LONG_MB:g} MB", where,
                        f"{r['seqcore_peak_mb']:.1f} MB (torch {r['torch_peak_mb']:.1f})",
                        r["seqcore_peak_mb"] <= LONG_MB, "open"))
        if r.get("mode") == "train" and "seqcore_peak_mb" in r:
            # every training workload whose first calls were probed (memory, ragged, bidir)
            out.append(("training peak memory <= torch's", f"{kind} {where}",
                        f"{r['seqcore_peak_mb']:.0f} MB (torch {r['torch_peak_mb']:.0f})",
                        r["seqcore_peak_mb"] <= r["torch_peak_mb"], "open"))
        if kind in ("stream", "bidir", "long", "memory"):
            peer_ms, peer = min((v, k) for k, v in (("torch", r["torch_ms"]),
                                                    ("ONNX Runtime", r.get("ort_ms"))) if v)
            ratio = peer_ms / r["seqcore_ms"]
            first = " (first calls in fresh processes)" if kind == "memory" else ""
            out.append(("workloads: faster than the fastest peer", f"{kind} {where}",
                        f"{ratio:.2f}x {peer}{first}", ratio >= 1.0, "open"))
    return out


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [("met" if c else "**not met**") if isinstance(c, bool) else str(c)
                 for c in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_rows(peer_rows, small_rows, geomean, work):
    """One line per target: (target, measured, met, where not and why)."""
    out = []
    for title, lines in (("kernel rows: faster than the fastest peer (parity and 90% of "
                          "SGEMM at B >= 64, H >= 512)", peer_rows),
                         (f"kernel rows, B <= 16: >= {SMALL_BATCH:g}x the fastest peer",
                          small_rows)):
        missed = [line for line in lines if not line[4]]
        bound = sum(1 for line in missed if line[5].startswith("bound"))
        out.append((title, f"{len(lines) - len(missed)} of {len(lines)} rows", not missed,
                    "" if not missed else f"{len(missed)} rows (below): {bound} ruled out by "
                    f"a bound, {len(missed) - bound} open"))
    out.append((f"training: geometric mean >= {TRAIN_GEOMEAN:g}x torch",
                f"{geomean:.2f}x over the kernel training rows", geomean >= TRAIN_GEOMEAN, ""))
    by_target = {}
    for target, where, seen, ok, why in work:
        by_target.setdefault(target, []).append((where, seen, ok, why))
    for target, lines in by_target.items():
        missed = [(w, why) for w, _, ok, why in lines if not ok]
        reasons = {why for _, why in missed}
        if len(reasons) == 1:
            why = ", ".join(w for w, _ in missed) + ": " + reasons.pop()
        else:
            why = "; ".join(f"{w}: {why}" for w, why in missed)
        out.append((target, "; ".join(f"{w} {s}" for w, s, _, _ in lines), not missed,
                    why if missed else ""))
    return out


def report(results):
    kernels = load(results, "kernels")
    workloads = load(results, "workloads")
    try:
        bandwidth = load(results, "bandwidth")
    except FileNotFoundError:
        bandwidth = None
    rates = {(r["cell"], r["H"]): r["u_bytes"] / r["loop_s"]
             for r in (bandwidth["rows"] if bandwidth else [])}
    peer_rows, small_rows, geomean, best_share = kernel_checks(kernels["rows"], rates)
    work = workload_checks(workloads["rows"], rates)
    machine = kernels["machine"]
    missed = [line for line in peer_rows + small_rows if not line[4]]
    parts = [
        "# Issue 6's targets against the committed results",
        "",
        f"By bench/targets.py from kernels.json, workloads.json and bandwidth.json (seqcore "
        f"{machine['seqcore']}, {machine['cores']} cores, SIMD {machine['simd']}). \"bound\": "
        "a bound measured on this machine rules the target out for that row, however good "
        "the code (see the script's docstring); \"open\": no known bound does, work left. "
        f"Bounds use the highest share of the SGEMM rate seqcore reached on any kernel row "
        f"({100 * best_share:.0f}%)"
        + (f" and the rates at which bench/bandwidth.py's bare loop streamed weights on one "
           f"core ({min(rates.values()) / 1e9:.0f}-{max(rates.values()) / 1e9:.0f} GB/s, by "
           "size)." if rates else "; bandwidth.json is missing: no memory bounds."),
        "",
        table(["target", "measured", "met", "where not, and why"],
              summary_rows(peer_rows, small_rows, geomean, work)),
        "",
        "## Kernel rows that miss a target",
        "",
        table(["row", "bar", "peer / seqcore (rounds)", "seqcore % of SGEMM", "met", "why"],
              missed),
        "",
    ]
    return "\n".join(parts)


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default=os.path.join(here, "results"))
    parser.add_argument("--out", default=os.path.join(here, "results", "targets.md"))
    args = parser.parse_args(argv)
    text = report(args.results)
    print(text)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
