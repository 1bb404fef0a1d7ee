"""Copy the committed kernel table (bench/results/kernels.md) and its chart into README.md's
Speed section, between the two markers below, so that the README shows what bench/results
holds after every run:

    python bench/readme.py            # rewrite the block in README.md
    python bench/readme.py --check    # exit 1 if README.md's block differs from the results

tests/test_readme.py runs the check, so a run's results committed without the README's copy
fail the tests.
"""
import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TABLE = ROOT / "bench" / "results" / "kernels.md"
BEGIN = "<!-- kernel table: written by bench/readme.py from bench/results/kernels.md -->"
END = "<!-- end of the kernel table -->"


def block():
    """The README's block: the markers around the chart and kernels.md as it is."""
    return "\n".join([BEGIN, "", "![peer time / seqcore time for every kernel row]"
                      "(bench/results/kernels.png)", "", TABLE.read_text().strip(), "", END])


def with_block(readme):
    """README text with its block replaced by block() (ValueError without the markers)."""
    start = readme.find(BEGIN)
    end = readme.find(END, start)
    if start < 0 or end < 0:
        raise ValueError(f"{README.name}: no block between {BEGIN!r} and {END!r}")
    return readme[:start] + block() + readme[end + len(END):]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only say whether README.md's block is up to date")
    args = parser.parse_args(argv)
    readme = README.read_text()
    new = with_block(readme)
    if args.check:
        if new != readme:
            print(f"{README.name}: the kernel table differs from {TABLE.relative_to(ROOT)} "
                  "(run python bench/readme.py)", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
