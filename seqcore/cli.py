"""The `seqcore` command: `seqcore info | demo | bench`."""
import argparse
import sys


def _info(args):
    from .runtime import show_config
    show_config()
    return 0


def _not_yet(name, issue):
    def run(args):
        print(f"seqcore {name}: not implemented yet (tracked in issue {issue}). "
              "Try `seqcore info`.", file=sys.stderr)
        return 2
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(prog="seqcore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print version, BLAS, thread and SIMD facts").set_defaults(
        run=_info)
    sub.add_parser("demo", help="train a small character-level LSTM (coming with the API)"
                   ).set_defaults(run=_not_yet("demo", 4))
    sub.add_parser("bench", help="compare speed with other frameworks (coming with issue 6)"
                   ).set_defaults(run=_not_yet("bench", 6))
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
