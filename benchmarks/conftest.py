"""pytest-benchmark set-up for the training benchmarks (``bench_*.py`` in this folder).

Collected only when this folder is named on the command line (``pytest benchmarks/``), never
by the test run (``testpaths = ["tests"]``). ``--bench-backend`` picks the backends (default:
every registered one that is installed, in one process, grouped by backend);
``python benchmarks/run.py`` runs one process per backend instead and merges the JSON files.
Thread variables are set as for a harness worker before any framework is imported; the garbage
collector is off while a round is timed (``--benchmark-disable-gc``) and collected before
each round; the JSON's ``machine_info`` gains a ``harness`` entry with the framework versions,
thread settings and device of every backend that ran.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.environment import cpu_model, default_threads, package_versions, thread_env
from harness.plugins import get_plugins
from harness.registry import load_object

BENCH_DIR = Path(__file__).resolve().parent
THREADS = int(os.environ.get("HARNESS_BENCH_THREADS", "0")) or default_threads()
for _key, _value in thread_env(THREADS).items():
    os.environ.setdefault(_key, _value)
_INSTANCES: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--bench-backend`` and ``--bench-batch-sizes``."""
    group = parser.getgroup("harness benchmarks")
    group.addoption("--bench-backend", default="all", help="all, or comma-separated backends")
    group.addoption("--bench-batch-sizes", default="32,128,512", help="comma-separated sizes")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Garbage collection off inside timed rounds (pytest-benchmark's own option)."""
    if hasattr(config.option, "benchmark_disable_gc"):
        config.option.benchmark_disable_gc = True


def _named_here(config: pytest.Config) -> bool:
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == BENCH_DIR or BENCH_DIR in path.parents:
            return True
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    """Collect ``bench_*.py`` here, and only when ``benchmarks/`` was asked for."""
    if file_path.name.startswith("bench_") and file_path.suffix == ".py":
        if _named_here(parent.config):
            return pytest.Module.from_parent(parent, path=file_path)
    return None


def selected_backends(config: pytest.Config) -> list[str]:
    """Registered backends chosen by ``--bench-backend``."""
    names = get_plugins().backends.names()
    text = config.getoption("--bench-backend")
    if text == "all":
        return names
    return [n.strip() for n in text.split(",") if n.strip()]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every selected backend x BN off/on x batch size."""
    config = metafunc.config
    if "backend_name" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", selected_backends(config), scope="session")
    if "bn" in metafunc.fixturenames:
        metafunc.parametrize("bn", [False, True], ids=["no-bn", "bn"])
    if "batch_size" in metafunc.fixturenames:
        sizes = [int(s) for s in config.getoption("--bench-batch-sizes").split(",") if s]
        metafunc.parametrize("batch_size", sizes)


def _backend_of(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    return str(callspec.params.get("backend_name", "")) if callspec else ""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group the items by backend: one framework's benchmarks run back to back."""
    items.sort(key=_backend_of)


def backend_instance(name: str) -> Any:
    """One instance per backend per process; skipped with the install hint when missing, or
    when it needs another Keras engine than one this process already imported."""
    info = get_plugins().backends.get(name)
    hint = info.install_hint()
    if hint:
        pytest.skip(hint)
    clash = {k: os.environ[k] for k, v in info.worker_env.items() if os.environ.get(k, v) != v}
    if name not in _INSTANCES and clash.get("KERAS_BACKEND"):
        pytest.skip(
            f"backend '{name}' cannot share this process with another Keras engine ({clash}): "
            "run `python benchmarks/run.py` (one process per backend) or --bench-backend "
            f"{name}"
        )
    if name not in _INSTANCES:
        for key, value in info.worker_env.items():
            os.environ.setdefault(key, value)
        _INSTANCES[name] = load_object(info.factory)(device="cpu", threads=THREADS)
    return _INSTANCES[name]


@pytest.fixture(scope="session")
def backend(backend_name: str) -> Any:
    """The live backend (its framework imported on first use)."""
    return backend_instance(backend_name)


def pytest_benchmark_update_machine_info(
    config: pytest.Config, machine_info: dict[str, Any]
) -> None:
    """Framework versions, thread settings and device of every backend that ran."""
    machine_info["harness"] = {
        "cpu": cpu_model(),
        "threads": THREADS,
        "thread_env": {k: os.environ.get(k, "") for k in thread_env(THREADS)},
        "device": "cpu",
        "packages": package_versions(),
        "backends": {name: inst.versions() for name, inst in _INSTANCES.items()},
    }
