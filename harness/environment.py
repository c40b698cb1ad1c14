"""Environment capture: what a reader needs to trust or reproduce a number."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PACKAGES = (
    "bn-harness",
    "numpy",
    "torch",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "pluggy",
)
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
WAIT_POLICY = "OMP_WAIT_POLICY"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (Linux) or platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit(cwd: str | None = None) -> str:
    """The current git commit of the working directory, or "" outside a repository."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def machine_cpu_seconds() -> tuple[float, float]:
    """``(busy, total)`` CPU seconds of all cores since boot, steal time counted busy (Linux
    ``/proc/stat``; NaN elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        ticks = [int(v) for v in fields]
        hz = float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError):
        return math.nan, math.nan
    total = sum(ticks)
    return (total - ticks[3] - ticks[4]) / hz, total / hz  # idle and iowait are not busy


class OtherLoad:
    """The share of the machine's CPU that other processes used since this was made: what a
    timing shares its cores with (this process's own threads are not counted)."""

    def __init__(self) -> None:
        """Start counting now."""
        self.busy, self.total = machine_cpu_seconds()
        self.own = time.process_time()

    def share(self) -> float:
        """Other processes' CPU seconds over all cores' seconds since the start (0..1)."""
        busy, total = machine_cpu_seconds()
        own = time.process_time() - self.own
        if not total > self.total:
            return math.nan
        return max(0.0, (busy - self.busy - own) / (total - self.total))


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that matter, read without importing them."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def default_threads() -> int:
    """Threads per worker: the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def capture(threads: int) -> dict[str, Any]:
    """The run's environment; each worker adds its framework's own details per cell."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 0,
        "threads": threads,
        "thread_env": thread_env(threads),
        "packages": package_versions(),
        "git_commit": git_commit(),
    }


def thread_env(threads: int) -> dict[str, str]:
    """Thread variables set identically for every backend's worker: the thread counts, plus
    ``OMP_WAIT_POLICY`` when the caller's environment sets it (else OpenMP's default).

    The policy decides what torch's libgomp threads do between parallel regions; TensorFlow
    and XLA use their own pools and ignore it. Measured on the 2-core VM, timing suite, torch,
    4,000 samples: ``PASSIVE`` (sleep at once) made epochs 2.0-2.4x slower on a quiet machine
    (batch 128: 0.116 s against 0.058 s without BN, 0.160 s against 0.068 s with BN) and
    inflated BN's cost from 1.17x to 1.38x; OpenMP's default (spin briefly, then sleep) ran
    as fast as ``ACTIVE``. On a CPU shared with other work, spinning threads wait for
    descheduled ones instead (~20 s against 0.34 s per epoch at batch 32, seen under load):
    there, set ``OMP_WAIT_POLICY=PASSIVE``; the timing report shows the policy in use.
    """
    env = {var: str(threads) for var in THREAD_VARS}
    if os.environ.get(WAIT_POLICY):
        env[WAIT_POLICY] = os.environ[WAIT_POLICY]
    return env
