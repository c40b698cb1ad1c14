"""Environment capture: what a reader needs to trust or reproduce a number."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
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
    """Thread variables set identically for every backend's worker.

    Thread counts, plus ``OMP_WAIT_POLICY=PASSIVE`` unless the caller's environment sets it:
    OpenMP threads that finish a parallel region sleep instead of spinning. On a CPU shared
    with other work, spinning threads wait for descheduled ones: torch (libgomp) measured
    ~20 s per 4,000-sample epoch at batch 32 spinning against 0.34 s passive, and a GEMM rate
    of 1.2 against 34 GFLOP/s, on this project's 2-core VM under load (FACTS.md's "OpenMP
    thread wake-up" variance). TensorFlow and XLA use their own thread pools and ignore it.
    """
    env = {var: str(threads) for var in THREAD_VARS}
    env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    return env
