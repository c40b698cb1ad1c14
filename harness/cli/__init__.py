"""The ``harness`` command line: :func:`main`, the parser (:mod:`.parser`), the sub-commands
(:mod:`.commands`). Imports stay light: no framework, no matplotlib, at start-up.

Exit codes: 0 success; 2 a problem the user can fix (unknown name, bad option value, bad or
missing file, a resume with other settings), printed as one ``harness: error:`` line; 128 + the
signal number when a command is interrupted, whenever the signal comes (a run, its report, a
dataset loading, start-up): 130 for SIGINT (Ctrl-C), 143 for SIGTERM, 129 for SIGHUP (the
terminal closed), with one ``harness: interrupted`` line; 75 (``EX_TEMPFAIL``) when the results
file cannot be written (disk full, locked by another process for longer than
``$HARNESS_STORE_WAIT_S`` seconds): what could not be written is kept in a JSON file beside it
and ``harness run --resume RUN`` finishes the run once the file can be written; 1 when the
reader of the output went away (``harness list | head -1``), silently.
"""

from __future__ import annotations

import os
import signal
import sys

from harness import interrupt
from harness.cli.parser import (
    EXIT_USAGE,
    MAX_SEEDS,
    MAX_THREADS,
    RUN_DEFAULTS,
    Parser,
    build_parser,
    finish_run_args,
    one_line,
    run_parser,
)
from harness.errors import HarnessError

EXIT_PIPE = 1
EXIT_STORE = 75
EXIT_INTERRUPTED = 128 + signal.SIGINT

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_PIPE",
    "EXIT_STORE",
    "EXIT_USAGE",
    "MAX_SEEDS",
    "MAX_THREADS",
    "RUN_DEFAULTS",
    "Parser",
    "build_parser",
    "finish_run_args",
    "main",
    "one_line",
    "run_parser",
]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``harness`` command."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`harness list | head -1`): what the Python docs advise, so the
        # interpreter's own flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE


def _main(argv: list[str] | None) -> int:
    """Parse and dispatch with this process's signal handler installed (see
    :func:`harness.interrupt.handled`): a signal at any moment is one line and its code."""
    with interrupt.handled() as signals:
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            signals.arm()
            from harness.cli import commands  # after parsing: --help stays fast

            if args.command == "run":
                finish_run_args(parser, args)
            return int(commands.dispatch(args))
        except HarnessError as exc:
            print(f"harness: error: {one_line(str(exc))}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt as exc:
            code = int(getattr(exc, "exit_code", EXIT_INTERRUPTED))
            signals.seen = signals.seen or code - 128  # a second signal is ignored now
            resume = getattr(exc, "resume_command", "")
            name = signal.Signals(code - 128).name
            after = f"; finished cells are in the store: finish the run with `{resume}`"
            print(f"harness: interrupted ({name}){after if resume else ''}", file=sys.stderr)
            return code
        except Exception as exc:
            from harness.store import StoreWriteError

            if not isinstance(exc, StoreWriteError):
                raise
            return _store_failed(exc)


def _store_failed(exc: Exception) -> int:
    """One line for a results file that cannot be written: what is kept where, what to run."""
    spill = getattr(exc, "spill", None)
    kept = f"; what it held is kept in {spill}" if spill else "; it could not be kept elsewhere"
    resume = getattr(exc, "resume_command", "")
    after = f"; when it can be written, finish the run with `{resume}`" if resume else ""
    print(f"harness: error: {one_line(str(exc))}{kept}{after}", file=sys.stderr)
    return EXIT_STORE
