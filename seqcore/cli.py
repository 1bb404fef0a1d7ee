"""The `seqcore` command: `seqcore info | demo | bench`."""
import argparse
import sys


def _info(args):
    from .runtime import show_config
    show_config()
    return 0


def _demo(args):
    from .demo import run
    if args.epochs < 1 or args.hidden < 1 or args.seq_len < 2 or args.batch_size < 1:
        print("seqcore demo: --epochs, --hidden, --batch-size must be >= 1 and --seq-len >= 2",
              file=sys.stderr)
        return 2
    try:
        run(text_path=args.text, epochs=args.epochs, hidden=args.hidden, seq_len=args.seq_len,
            batch_size=args.batch_size, seed=args.seed, threads=args.threads,
            verbose=0 if args.quiet else 1)
    except (OSError, ValueError) as e:
        print(f"seqcore demo: {e}", file=sys.stderr)
        return 1
    return 0


def _bench(args):
    """Run bench/kernels.py (or, after `bench workloads` / `bench targets`, bench/workloads.py
    / bench/targets.py) of the source checkout this package is installed from (an editable
    install); the benchmarks need torch and onnxruntime, which a user's install of seqcore
    does not."""
    import os
    import subprocess
    rest = list(args.bench_args)
    name = rest.pop(0) if rest and rest[0] in ("kernels", "workloads", "targets") else "kernels"
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "bench", name + ".py")
    if not os.path.isfile(script):
        print(f"seqcore bench: the benchmarks live in the source tree (bench/{name}.py), which "
              "this installation does not have. From a checkout: pip install -e "
              "\".[test,torch,bench]\" && seqcore bench", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, script] + rest)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="seqcore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print version, BLAS, thread and SIMD facts").set_defaults(
        run=_info)
    demo = sub.add_parser(
        "demo", help="train a character-level LSTM on a text and let it write",
        description="Trains Embedding -> LSTM -> Dense to predict the next character of a text "
        "(by default Lewis Carroll's Alice's Adventures in Wonderland, public domain, bundled), "
        "with a progress bar per epoch; then prints the training throughput and text sampled "
        "at temperatures 0.5 and 1.0. About a minute on 2 cores with the defaults.")
    demo.add_argument("--epochs", type=int, default=20, help="passes over the text (default 20)")
    demo.add_argument("--text", metavar="FILE", help="train on this UTF-8 text file instead")
    demo.add_argument("--hidden", type=int, default=256, help="LSTM units (default 256)")
    demo.add_argument("--seq-len", type=int, default=64,
                      help="characters per training sequence (default 64)")
    demo.add_argument("--batch-size", type=int, default=64, help="sequences per step (default 64)")
    demo.add_argument("--seed", type=int, default=0, help="seed for weights, order, sampling")
    demo.add_argument("--threads", type=int, help="threads (default: what seqcore uses now)")
    demo.add_argument("--quiet", action="store_true", help="no model summary or progress bars")
    demo.set_defaults(run=_demo)
    bench = sub.add_parser(
        "bench", help="time seqcore against PyTorch and ONNX Runtime (bench/)",
        description="Runs bench/kernels.py from the source checkout: LSTM and GRU, inference "
        "and training, several shapes, 1 and 2 threads; writes bench/results/kernels.md/.json "
        "(and .png with matplotlib). `seqcore bench workloads` runs bench/workloads.py instead "
        "(streaming, ragged batches, recurrent dropout, a 2-layer bidirectional model, a long "
        "sequence, peak memory); `seqcore bench targets` runs bench/targets.py (issue 6's targets "
        "checked against the results written). Other arguments go to the script (e.g. --quick, "
        "--threads 1, --cells lstm).",
        add_help=False)
    bench.set_defaults(run=_bench)
    args, rest = parser.parse_known_args(argv)
    if args.command != "bench" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.bench_args = rest
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
