"""Shared fixtures: every registered backend, instantiated in-process for the in-process tests.

A backend whose framework is missing is skipped with the install hint, unless the environment
variable ``HARNESS_REQUIRE_BACKENDS`` (comma-separated, or ``all``) says CI must have it. A
backend whose ``worker_env`` conflicts with what this process already set for another one (Keras
on another engine) cannot be created here and is skipped in the in-process tests; the
conformance tests (test_conformance.py) check every backend in its own worker process instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.backend import Backend
from harness.plugins import get_plugins
from harness.registry import load_object

_INSTANCES: dict[str, Backend] = {}
LOG_ONLY_ENV = ("TF_CPP_MIN_LOG_LEVEL",)  # a log level differs between backends, nothing else
TESTS_DIR = str(Path(__file__).parent)
# The fake backend plugin is visible here and in every worker the tests start.
sys.path.insert(0, TESTS_DIR)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (TESTS_DIR, os.environ.get("PYTHONPATH", "")) if p
)
os.environ.setdefault("HARNESS_PLUGINS", "fake_plugin")


def required_backends() -> set[str]:
    """Backends that must be available (from HARNESS_REQUIRE_BACKENDS)."""
    text = os.environ.get("HARNESS_REQUIRE_BACKENDS", "")
    if text.strip() == "all":
        return set(get_plugins().backends.names())
    return {name.strip() for name in text.split(",") if name.strip()}


def skip_unavailable(name: str) -> None:
    """Skip (or fail, when CI requires it) a backend whose framework is missing."""
    hint = get_plugins().backends.get(name).install_hint()
    if hint:
        if name in required_backends():
            pytest.fail(f"required backend unavailable: {hint}")
        pytest.skip(hint)


def backend_instance(name: str) -> Backend:
    """One in-process instance per backend (framework imported once per test session)."""
    info = get_plugins().backends.get(name)
    skip_unavailable(name)
    clash = {
        k: os.environ[k]
        for k, v in info.worker_env.items()
        if os.environ.get(k, v) != v and k not in LOG_ONLY_ENV
    }
    if name not in _INSTANCES and clash:
        pytest.skip(
            f"backend '{name}' cannot share this process ({clash} set for another backend); "
            "test_conformance.py checks it in its own worker"
        )
    if name not in _INSTANCES:
        for key, value in info.worker_env.items():
            os.environ.setdefault(key, value)
        _INSTANCES[name] = load_object(info.factory)(device="cpu", threads=2)
    return _INSTANCES[name]


def pytest_generate_tests(metafunc: Any) -> None:
    """Parametrize every test that takes ``backend`` over every registered backend."""
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend_name", get_plugins().backends.names())


@pytest.fixture
def backend(backend_name: str) -> Backend:
    """A live backend instance (skipped with a reason when its framework is missing)."""
    return backend_instance(backend_name)
