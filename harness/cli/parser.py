"""The ``harness`` argument parser: sub-commands, option types, ``--config`` and defaults.

Imports stay light (no framework, no matplotlib): ``harness --help`` builds this parser only.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from harness.config import apply_config, option_kinds

EXIT_USAGE = 2
MAX_SEEDS = 1000
MAX_THREADS = 1024
RUN_DEFAULTS = {"backend": "all", "device": "cpu", "data_dir": ""}
"""Defaults applied after the command line and ``--config``, so both can be told apart."""


def one_line(text: str) -> str:
    """``text`` with line breaks escaped: a name holding one must not cut the message short."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of a usage dump."""

    def error(self, message: str) -> NoReturn:
        """Print ``harness: error: ...`` on one line and exit 2."""
        self.exit(EXIT_USAGE, f"harness: error: {one_line(message)}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _at_most(limit: int, what: str) -> Callable[[str], int]:
    def check(text: str) -> int:
        value = _positive_int(text)
        if value > limit:
            raise argparse.ArgumentTypeError(f"expected at most {limit} {what}, got '{text}'")
        return value

    return check


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got '{text}'") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got '{text}'")
    return value


PLOT_FORMAT_HELP = "figure files: png, svg, pdf or a comma list (default: png,svg)"


def _version() -> str:
    """The installed distribution's version (``unknown`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bn-harness")
    except PackageNotFoundError:
        return "unknown"


def _add_run(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a suite on one or more backends")
    run.add_argument("--config", metavar="FILE", help="TOML file of run options (key = value)")
    run.add_argument("--suite", help="suite name (see `harness list`)")
    run.add_argument("--backend", help="all (default), or a comma-separated list")
    run.add_argument("--device", help="cpu (default), gpu or all")
    run.add_argument(
        "--dataset",
        help="dataset: mnist-5k, mnist, fashion-mnist, cifar10, digits, synthetic or a plugin's "
        "(default: mnist, else mnist-5k; `harness list` says where files were found)",
    )
    run.add_argument("--data-dir", help="folder with dataset files")
    run.add_argument(
        "--epochs", type=_positive_int, help="epochs per cell (default: the suite's, 10 for most)"
    )
    run.add_argument("--seeds", type=_at_most(MAX_SEEDS, "seeds"), help="number of seeds (0..N-1)")
    run.add_argument(
        "--batch-size",
        type=_positive_int,
        help="training batch size (default: the suite's, 64 for most; narrows a batch sweep)",
    )
    run.add_argument(
        "--lr",
        type=_positive_float,
        help="learning rate (default: the suite's, 0.01 for most; narrows an lr sweep)",
    )
    run.add_argument("--init", help="canonical (shared NumPy init) or native (framework defaults)")
    run.add_argument(
        "--defaults",
        help="mapped (conventions translated from the core's values, the default) or native "
        "(each framework's own init, BN momentum and epsilon, variance formula, Adam epsilon)",
    )
    run.add_argument("--standardize", action="store_true", default=None, help="standardize inputs")
    run.add_argument("--limit", type=_positive_int, help="use only the first N training samples")
    run.add_argument("--quick", action="store_true", default=None, help="the suite's small size")
    threads = _at_most(MAX_THREADS, "threads")
    run.add_argument("--threads", type=threads, help="threads per worker (default: cores)")
    run.add_argument("--cell-timeout", type=_positive_float, help="seconds before a cell is killed")
    run.add_argument("--out", help="report folder (default: reports/runs/RUN_ID)")
    run.add_argument("--store", help="results file (default: reports/runs/results.sqlite)")
    run.add_argument("--resume", metavar="RUN", help="finish the missing/failed cells of RUN")
    run.add_argument("--no-report", action="store_true", default=None, help="store results only")
    run.add_argument(
        "--quiet", action="store_true", default=None, help="print only errors and the findings"
    )
    run.add_argument("--plot-format", help=PLOT_FORMAT_HELP)
    run.add_argument(
        "--export",
        help="also send the results to: mlflow (tracking URI: $MLFLOW_TRACKING_URI, "
        "default ./mlruns; needs pip install 'bn-harness[mlflow]'); or set $HARNESS_EXPORT",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        default=None,
        help="check every option and the data, list the cells, run nothing",
    )
    run.add_argument("--executor", help="local (default: worker subprocesses here) or ray")
    run.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster for --executor ray: auto, HOST:PORT or ray://HOST:10001 "
        "(default: $RAY_ADDRESS, else a local Ray instance started for the run)",
    )


def build_parser() -> Parser:
    """The argument parser (sub-commands run, report, compare, list, runs, data)."""
    parser = Parser(
        prog="harness",
        description="Batch Normalization experiments on PyTorch, "
        "Keras and JAX: the same runs, cross-checked, timed and reported.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, required=True)
    _add_run(sub)
    report = sub.add_parser("report", help="rebuild a run's report from the store")
    report.add_argument(
        "run", nargs="?", default="latest", help="run id, 'latest', or a report's results.json"
    )
    report.add_argument("--out")
    report.add_argument("--store")
    report.add_argument("--plot-format", help=PLOT_FORMAT_HELP)
    compare = sub.add_parser("compare", help="what changed between two runs (markdown)")
    for name in ("a", "b"):
        compare.add_argument(name, help="run id, 'latest', or a report's results.json")
    compare.add_argument("--store")
    compare.add_argument("--out", help="also write the markdown to this file")
    compare.add_argument(
        "--max-slowdown",
        type=_non_negative_float,
        metavar="PCT",
        help="exit 1 when B's median epoch time is more than PCT percent above A's",
    )
    compare.add_argument(
        "--max-acc-drop",
        type=_non_negative_float,
        metavar="PP",
        help="exit 1 when B's mean final val accuracy is more than PP points below A's",
    )
    compare.add_argument(
        "--fail-on-verdict-change",
        action="store_true",
        help="exit 1 when a claim's verdict differs between A and B",
    )
    sub.add_parser("list", help="backends (with availability), suites and datasets")
    check = sub.add_parser("check", help="conformance checks of one backend, in its own worker")
    check.add_argument("backend", help="a registered backend (see `harness list`)")
    check.add_argument("--threads", type=_at_most(MAX_THREADS, "threads"), default=2)
    runs = sub.add_parser("runs", help="runs in the results file")
    runs.add_argument("--store")
    data = sub.add_parser("data", help="dataset files")
    data.add_argument("action", choices=["download"])
    data.add_argument("name", help="mnist, fashion-mnist or cifar10")
    data.add_argument("--data-dir", default="")
    return parser


def run_parser(parser: Parser) -> argparse.ArgumentParser:
    """The ``run`` sub-command's parser (whose options ``--config`` files may set)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["run"]  # type: ignore[no-any-return]
    raise LookupError("no run sub-command")  # pragma: no cover


def finish_run_args(parser: Parser, args: argparse.Namespace) -> argparse.Namespace:
    """Fill ``run`` options from ``--config``, note which were given, then apply defaults.

    ``args.given`` holds the options set on the command line or in the file: the ones a
    ``--resume`` must not change.
    """
    if args.config:
        apply_config(args, args.config, option_kinds(run_parser(parser)))
    args.given = {k for k, v in vars(args).items() if v is not None}
    for key, value in RUN_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for flag in ("standardize", "quick", "no_report", "dry_run", "quiet"):
        setattr(args, flag, bool(getattr(args, flag)))
    return args
