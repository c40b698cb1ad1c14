"""Run the training benchmarks, one pytest process per backend, and merge their JSON.

    python benchmarks/run.py [--backend all|torch,jax,...] [--json reports/runs/bench.json]
                             [-- extra pytest arguments]

Frameworks never share a process here (TensorFlow's and torch's thread pools compete, JAX may
take GPU memory): each backend runs ``pytest benchmarks/ --bench-backend NAME`` with the same
thread variables as a harness worker plus the backend's own worker environment, writing its
own pytest-benchmark JSON into a temporary folder; ``--json`` gets them merged: every benchmark
and, under ``machine_info.harness.backends``, each backend's versions, threads and device (a
valid pytest-benchmark file: ``pytest-benchmark compare`` reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.environment import default_threads, thread_env
from harness.plugins import get_plugins
from harness.workerproc import module_command

ROOT = Path(__file__).resolve().parents[1]


def merge(parts: list[Path]) -> dict[str, Any]:
    """One pytest-benchmark JSON document holding the benchmarks of every part."""
    merged: dict[str, Any] = {}
    backends: dict[str, Any] = {}
    for path in parts:
        data = json.loads(path.read_text())
        if not merged:
            merged = {**data, "benchmarks": []}
        merged["benchmarks"].extend(data.get("benchmarks", []))
        backends.update(data.get("machine_info", {}).get("harness", {}).get("backends", {}))
    if merged:
        merged["machine_info"].setdefault("harness", {})["backends"] = backends
    return merged


def run_backend(name: str, out: Path, threads: int, extra: list[str]) -> int:
    """``pytest benchmarks/ --bench-backend NAME`` in a fresh process; its exit status."""
    info = get_plugins().backends.get(name)
    env = {**os.environ, **thread_env(threads), **info.worker_env}
    env["HARNESS_BENCH_THREADS"] = str(threads)
    args = [str(ROOT / "benchmarks"), "--bench-backend", name, f"--benchmark-json={out}"]
    args += ["-p", "no:cacheprovider", *extra]
    print("+ python -m pytest", " ".join(args), flush=True)
    cmd = module_command("pytest", *args)
    return subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    """Benchmark each backend in its own process, then write the merged JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="all")
    parser.add_argument("--json", default="reports/runs/bench.json")
    parser.add_argument("--threads", type=int, default=0, help="default: the cores")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    plugins = get_plugins()
    names = plugins.backends.names() if args.backend == "all" else args.backend.split(",")
    names = [n for n in names if not plugins.backends.get(n).install_hint()]
    target = Path(args.json)
    target.parent.mkdir(parents=True, exist_ok=True)
    parts, status = [], 0
    for name in names:  # each backend's own file stays beside the merged one
        part = target.with_name(f"{target.stem}-{name}.json")
        part.unlink(missing_ok=True)
        status = run_backend(name, part, args.threads or default_threads(), extra) or status
        if part.is_file():
            parts.append(part)
    merged = merge(parts)
    target.write_text(json.dumps(merged, indent=2) + "\n")
    count = len(merged.get("benchmarks", []))
    print(f"benchmarks: {count} from {len(parts)} backend(s) -> {target}")
    print(f"per backend: {', '.join(str(p) for p in parts)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
