"""The ``harness`` command line. Imports stay light: no framework, no matplotlib, at start-up."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from harness.errors import HarnessError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        """Print ``harness: error: ...`` on one line and exit 2."""
        self.exit(EXIT_USAGE, f"harness: error: {message.splitlines()[0]}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value


def _add_run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a suite on one or more backends")
    run.add_argument("--suite", help="suite name (see `harness list`)")
    run.add_argument("--backend", default="all", help="all, or a comma-separated list")
    run.add_argument("--device", default="cpu", help="cpu, gpu or all")
    run.add_argument("--dataset", default=None, help="dataset name (default: mnist, else mnist-5k)")
    run.add_argument("--data-dir", default="", help="folder with dataset files")
    run.add_argument("--epochs", type=_positive_int)
    run.add_argument("--seeds", type=_positive_int, help="number of seeds (0..N-1)")
    run.add_argument("--batch-size", type=_positive_int)
    run.add_argument("--lr", type=_positive_float)
    run.add_argument("--init", help="canonical (shared NumPy init) or native (framework defaults)")
    run.add_argument("--standardize", action="store_true", help="standardize inputs")
    run.add_argument("--limit", type=_positive_int, help="use only the first N training samples")
    run.add_argument("--quick", action="store_true", help="the suite's small size (CI)")
    run.add_argument("--threads", type=_positive_int, help="threads per worker (default: cores)")
    run.add_argument("--cell-timeout", type=_positive_float, help="seconds before a cell is killed")
    run.add_argument("--out", help="report folder (default: reports/runs/RUN_ID)")
    run.add_argument("--store", help="results file (default: reports/runs/results.sqlite)")
    run.add_argument("--resume", metavar="RUN", help="finish the missing/failed cells of RUN")
    run.add_argument("--no-report", action="store_true", help="store results only")


def build_parser() -> Parser:
    """The argument parser (sub-commands run, report, list, runs, data)."""
    parser = Parser(
        prog="harness",
        description="Batch Normalization experiments on PyTorch, "
        "Keras and JAX: the same runs, cross-checked, timed and reported.",
    )
    sub = parser.add_subparsers(dest="command", parser_class=Parser, required=True)
    _add_run(sub)
    report = sub.add_parser("report", help="rebuild a run's report from the store")
    report.add_argument("run", nargs="?", default="latest", help="run id or 'latest'")
    report.add_argument("--out")
    report.add_argument("--store")
    sub.add_parser("list", help="backends (with availability), suites and datasets")
    runs = sub.add_parser("runs", help="runs in the results file")
    runs.add_argument("--store")
    data = sub.add_parser("data", help="dataset files")
    data.add_argument("action", choices=["download"])
    data.add_argument("name")
    data.add_argument("--data-dir", default="")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``harness`` command."""
    args = build_parser().parse_args(argv)
    from harness import commands

    try:
        return int(commands.dispatch(args))
    except HarnessError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "harness: interrupted; finished cells are in the store "
            "(finish with `harness run --resume RUN`)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
