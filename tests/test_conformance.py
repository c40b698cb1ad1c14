"""The backend contract, checked on every registered backend, each in its own worker process.

A new backend (a third-party plugin included) inherits these tests by registering. The checks are
:mod:`harness.conformance`'s, the ones ``harness check BACKEND`` runs: this module runs them once
per backend per session in a fresh worker (:func:`harness.check.check_backend`), so backends
that cannot share a process (Keras on TensorFlow, JAX and torch) are all tested in one pytest,
and asserts each check as its own test.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import skip_unavailable

from harness.check import CheckReport, check_backend
from harness.conformance import CHECK_NAMES, NOT_IMPLEMENTED, PASS
from harness.plugins import get_plugins
from harness.registry import BackendInfo

BACKENDS = get_plugins().backends.names()
_REPORTS: dict[str, CheckReport] = {}


def report_of(name: str) -> CheckReport:
    """Every check of ``name``, run once per session in its own worker."""
    skip_unavailable(name)
    if name not in _REPORTS:
        _REPORTS[name] = check_backend(name)
    return _REPORTS[name]


@pytest.mark.parametrize("check", CHECK_NAMES)
@pytest.mark.parametrize("name", BACKENDS)
def test_contract(name: str, check: str) -> None:
    report = report_of(name)
    assert not report.error, f"worker failed: {report.error}\n{report.tail}"
    result = report.by_name()[check]
    if result.status == NOT_IMPLEMENTED:
        pytest.skip(f"backend '{name}' does not offer this (optional): {result.detail}")
    assert result.status == PASS, result.detail


def test_keras_engines_are_registered_with_their_requirements() -> None:
    backends = get_plugins().backends
    engines = {n: backends.get(n).worker_env.get("KERAS_BACKEND") for n in BACKENDS}
    assert engines["keras"] == "tensorflow"
    assert engines["keras-jax"] == "jax" and "jax" in backends.get("keras-jax").requires
    assert engines["keras-torch"] == "torch" and "torch" in backends.get("keras-torch").requires


def _harness(*args: str, plugins: str = "fake_plugin", **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "HARNESS_PLUGINS": plugins, **env}
    command = [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())"]
    command += list(args)
    return subprocess.run(command, capture_output=True, text=True, env=full, timeout=900)


def test_check_command_runs_a_backend_that_cannot_share_a_process() -> None:
    """``solo`` refuses a process whose keras runs on another engine: checked in its own."""
    skip_unavailable("keras-jax")
    done = _harness("check", "solo", plugins="fake_plugin,solo_plugin")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| k-steps[bn-adam] | pass |" in done.stdout
    assert "| batchnorm[train] | not implemented |" in done.stdout
    assert "solo (jax):" in done.stdout


def test_check_command_fails_with_exit_1_when_a_check_fails() -> None:
    done = _harness("check", "fake", FAKE_FAULT="raise", FAKE_FAULT_CELL="check-fake")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "| k-steps[bn-adam] | fail | RuntimeError: injected failure |" in done.stdout
    assert "| params-round-trip[bn] | pass |" in done.stdout


def test_check_command_unknown_backend_is_one_line_exit_2() -> None:
    done = _harness("check", "nope")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"harness: error: unknown backend 'nope'; valid: {', '.join(sorted(BACKENDS))}"
    ]


def test_install_hint_names_the_plugins_own_distribution() -> None:
    missing = ("framework_that_is_not_installed",)
    own = BackendInfo("x", "m:C", missing, distribution="harness-x")
    assert own.install_hint().endswith(": pip install 'harness-x'")
    custom = BackendInfo("x", "m:C", missing, install="conda install x-framework")
    assert custom.install_hint().endswith(": conda install x-framework")
    builtin = BackendInfo("keras-jax", "m:C", missing, extra="keras-jax")
    assert builtin.install_hint().endswith(": pip install 'bn-harness[keras-jax]'")
    assert BackendInfo("x", "m:C", ("numpy",), distribution="harness-x").install_hint() == ""


def test_contract_doc_names_every_method_and_field() -> None:
    """docs/backend-contract.md cannot drift from harness/backend.py and the specs."""
    import dataclasses
    import inspect
    from pathlib import Path

    from harness.backend import Backend
    from harness.specs import ModelSpec, TrainSpec

    doc = (Path(__file__).parents[1] / "docs" / "backend-contract.md").read_text()
    methods = [n for n, _ in inspect.getmembers(Backend, callable) if not n.startswith("_")]
    fields = [f.name for c in (ModelSpec, TrainSpec, BackendInfo) for f in dataclasses.fields(c)]
    missing = [n for n in [*methods, *fields] if f"`{n}" not in doc]
    assert not missing, f"not in docs/backend-contract.md: {missing}"
    for name in methods:  # each method is documented with its arguments
        args = [p for p in inspect.signature(getattr(Backend, name)).parameters if p != "self"]
        assert all(a in doc for a in args), (name, args)
