"""The command line shared by the baseline scripts: load the data, train, print JSON.

Not part of any baseline's training code: a script imports this only when run directly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

Run = Callable[..., list[float]]


def load(dataset: str, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The harness's training split of ``dataset`` (float32 images in [0, 1], int labels)."""
    from harness.specs import DataSpec
    from harness.tasks.common import load_data

    data = load_data(DataSpec(name=dataset, limit=limit))
    return data.x_train, data.y_train


def worker_environment() -> None:
    """Re-run this script under a harness worker's thread variables when any is missing.

    Thread pools read them when the framework loads (before ``main`` runs), hence the re-exec;
    variables the caller set are kept.
    """
    from harness.environment import default_threads, thread_env

    missing = {k: v for k, v in thread_env(default_threads()).items() if k not in os.environ}
    if missing:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **missing})


def main(name: str, run: Run, argv: list[str] | None = None) -> dict[str, Any]:
    """Parse arguments, time ``run`` and print one JSON line with the epoch times."""
    if argv is None:
        worker_environment()
    parser = argparse.ArgumentParser(prog=name, description=f"baseline {name}: epoch times")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--bn", action="store_true", help="BatchNorm before each hidden ReLU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default="mnist-5k")
    parser.add_argument("--limit", type=int, default=0, help="first N training samples only")
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    args = parser.parse_args(argv)
    x, y = load(args.dataset, args.limit)
    times = run(x, y, args.batch_size, args.epochs, args.bn, args.seed, args.device)
    out = {
        "baseline": name,
        "batch_size": args.batch_size,
        "bn": args.bn,
        "device": args.device,
        "samples": int(len(x)),
        "epoch_s": times,
        "first_epoch_s": times[0] if times else None,
        "median_steady_s": statistics.median(times[1:]) if len(times) > 1 else None,
    }
    print(json.dumps(out))
    return out
