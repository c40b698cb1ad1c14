"""``harness check BACKEND``: the conformance checks of one backend, in its own worker process.

The checks (:mod:`harness.conformance`) run as one task in a ``harness.worker`` subprocess started
exactly as a run starts it (the backend's ``worker_env`` and the thread variables set before any
import), so backends that cannot share a process (Keras on two engines, two CUDA runtimes) are
each checked in their own. The pytest conformance tests use :func:`check_backend` too.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

from harness.conformance import CHECK_NAMES, FAIL, NOT_IMPLEMENTED, PASS, CheckResult
from harness.environment import thread_env
from harness.plugins import get_plugins
from harness.specs import CellSpec, DataSpec, ModelSpec, TrainSpec
from harness.workerproc import WorkerDied, WorkerProcess

TASK = "harness.conformance:conformance_task"
DEFAULT_TIMEOUT_S = 1800.0
CHECK_THREADS = 2


@dataclass
class CheckReport:
    """Every check's result for one backend, or why the worker gave none (``error``)."""

    backend: str
    results: list[CheckResult] = field(default_factory=list)
    error: str = ""
    tail: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    def by_name(self) -> dict[str, CheckResult]:
        """Check name -> result."""
        return {r.name: r for r in self.results}

    @property
    def passed(self) -> bool:
        """True when the worker answered and no check failed."""
        return not self.error and all(r.status != FAIL for r in self.results)


def _cell(backend: str, checks: tuple[str, ...]) -> CellSpec:
    return CellSpec(
        run_id="check",
        cell_id=f"check-{backend}",
        suite="check",
        task=TASK,
        backend=backend,
        device="cpu",
        variant="conformance",
        model=ModelSpec(),
        train=TrainSpec(),
        data=DataSpec(name="synthetic"),
        extra={"checks": list(checks)},
    )


def check_backend(
    backend: str,
    threads: int = CHECK_THREADS,
    timeout: float = DEFAULT_TIMEOUT_S,
    checks: tuple[str, ...] = CHECK_NAMES,
) -> CheckReport:
    """Run ``checks`` on ``backend`` (a registered, installed backend) in a fresh worker."""
    info = get_plugins().backends.get(backend)
    info.check()
    worker = WorkerProcess(backend, "cpu", threads, {**thread_env(threads), **info.worker_env})
    report = CheckReport(backend)
    deadline = time.monotonic() + timeout
    try:
        hello = worker.receive(deadline, timeout)
        report.versions = dict(hello.get("versions", {}))
        worker.send({"cell": _cell(backend, checks).to_dict()})
        while (message := worker.receive(deadline, timeout)).get("type") != "result":
            pass
        result = message["result"]
        if result.get("status") != "ok":
            report.error, report.tail = (
                result.get("reason", "failed"),
                result.get("stderr_tail", ""),
            )
        report.results = [CheckResult(**r) for r in result.get("checks", [])]
    except WorkerDied as died:
        report.error, report.tail = died.reason, died.tail
    finally:
        worker.close()
    return report


def render(report: CheckReport) -> str:
    """The pass/fail table of one backend, markdown, with a summary line."""
    lines = [
        f"## harness check {report.backend}",
        "",
        "| check | result | detail |",
        "|---|---|---|",
    ]
    for r in report.results:
        lines.append(f"| {r.name} | {r.status} | {r.detail.replace('|', '/')} |")
    counts = {s: sum(r.status == s for r in report.results) for s in (PASS, FAIL, NOT_IMPLEMENTED)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    if report.error:
        lines += ["", f"worker failed: {report.error}", *report.tail.splitlines()[-10:]]
    engine = report.versions.get("engine") or report.versions.get("keras_backend", "")
    lines += ["", f"{report.backend}{f' ({engine})' if engine else ''}: {summary}"]
    return "\n".join(lines)


def cmd_check(args: argparse.Namespace) -> int:
    """Print the table; exit 0 when every check passed (or is not implemented), else 1.

    An unknown or unavailable backend is a one-line error, exit 2 (raised here, printed by the
    CLI).
    """
    report = check_backend(args.backend, threads=args.threads or CHECK_THREADS)
    print(render(report))
    return 0 if report.passed else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``check`` sub-command's options."""
    check = sub.add_parser("check", help="run the conformance checks of one backend")
    check.add_argument("backend", help="a registered backend (see `harness list`)")
    check.add_argument("--threads", type=int, default=0, help="worker threads (default 2)")
