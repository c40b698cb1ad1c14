"""Suites checked at registration: a misspelled key, a claim, section or task name that resolves
to nothing is one line naming the field and the valid ones, before any cell runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import claims
from harness.errors import HarnessError, UnknownNameError
from harness.plugins import get_plugins, make_plugins
from harness.registry import load_object
from harness.runs import executor_for
from harness.specs import ModelSpec, TrainSpec, replace
from harness.suite import Suite, Variant
from harness.suite_check import check_path, check_suite

HARNESS = [sys.executable, "-m", "harness.cli"]
TYPO_PLUGIN = """
from harness.hookspecs import hookimpl
from harness.specs import ModelSpec
from harness.suite import Suite, Variant

GOOD = Suite("good", "registers", model=ModelSpec(hidden_sizes=(8,)))
TYPO = Suite(
    "typo",
    "a variant with a misspelled key",
    variants=(Variant("no-bn"), Variant("bn", {"nrom": "batchnorm"})),
)


@hookimpl
def harness_register_suites(register):
    register(TYPO)
    register(GOOD)
"""


def check(suite: Suite) -> str:
    """The one-line message ``check_suite`` refuses ``suite`` with."""
    plugins = get_plugins()
    with pytest.raises(HarnessError) as err:
        check_suite(suite, plugins.sections.names(), plugins.claims.names())
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"suite '{suite.name}': ")
    return message


def test_every_registered_suite_validates() -> None:
    plugins = get_plugins()
    assert len(plugins.suites.names()) >= 9 and not plugins.suites.refused
    for name in plugins.suites.names():
        check_suite(plugins.suites.get(name), plugins.sections.names(), plugins.claims.names())


def test_a_misspelled_variant_key_names_the_field_and_the_valid_ones() -> None:
    bad = Suite("s", "d", variants=(Variant("bn", {"nrom": "batchnorm"}),))
    message = check(bad)
    assert "variant 'bn': unknown model field 'nrom' (did you mean 'norm'?)" in message
    assert "valid: activation, bn_epsilon, bn_momentum" in message
    train = check(Suite("s", "d", variants=(Variant("v", train={"learning_rate": 0.1}),)))
    assert "unknown train field 'learning_rate'" in train and "lr," in train


def test_an_unknown_choice_value_is_refused() -> None:
    message = check(Suite("s", "d", variants=(Variant("bn", {"norm": "batchnrom"}),)))
    assert "unknown model norm 'batchnrom' (did you mean 'batchnorm'?)" in message
    assert "valid: batchnorm, groupnorm, layernorm, none" in message


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ({"train.learnig_rate": (0.1,)}, "unknown sweep key 'train.learnig_rate'"),
        ({"lr": (0.1,)}, "unknown sweep key 'lr'"),
        ({"data.limit": (10,)}, "unknown sweep key 'data.limit'"),
        ({"train.lr": ()}, "sweep 'train.lr' needs a non-empty tuple of values"),
        ({"train.lr": 0.1}, "sweep 'train.lr' needs a non-empty tuple of values"),
    ],
)
def test_a_bad_sweep_is_refused(sweep: dict, expected: str) -> None:
    message = check(Suite("s", "d", sweep=sweep))
    assert expected in message
    if "unknown" in expected:
        assert "train.lr" in message.split("valid: ")[1]


def test_misspelled_quick_keys_are_refused() -> None:
    assert "unknown quick key 'epoch' (did you mean 'epochs'?)" in check(
        Suite("s", "d", quick={"epoch": 1})
    )
    assert "unknown quick key 'train.btach_size'" in check(
        Suite("s", "d", quick={"train.btach_size": (4,)})
    )


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"task": "harness.tasks.train:train_cel"}, "task 'harness.tasks.train:train_cel': module"),
        ({"task": "harness.taks:train_cell"}, "no module named 'harness.taks'"),
        ({"task": "harness.tasks"}, "task 'harness.tasks' is not 'module:function'"),
        ({"report": ("header", "summry")}, "unknown report section 'summry'"),
        ({"report": ("harness.report.sweeps:tabel",)}, "has no 'tabel'"),
        ({"extra": {"claims": ("bn_fastr",)}}, "unknown claim 'bn_fastr'"),
    ],
)
def test_task_section_and_claim_names_resolve_at_registration(changes: dict, expected: str) -> None:
    assert expected in check(Suite("s", "d", **changes))


def test_a_module_function_name_resolves_without_importing_the_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "heavy_task_mod.py").write_text(
        "raise RuntimeError('imported')\n"
        "try:\n    import torch\nexcept ImportError:\n    pass\n"
        "if True:\n    def run(cell):\n        return {}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    check_path("task", "heavy_task_mod:run")
    assert "heavy_task_mod" not in sys.modules
    with pytest.raises(HarnessError, match="module 'heavy_task_mod' has no 'walk'"):
        check_path("task", "heavy_task_mod:walk")


def test_specs_replace_refuses_an_unknown_key() -> None:
    assert replace(ModelSpec(), norm="batchnorm").norm == "batchnorm"
    with pytest.raises(UnknownNameError, match="unknown train field 'learnig_rate'.*lr"):
        replace(TrainSpec(), learnig_rate=0.1)


def test_a_plugin_suite_with_a_typo_is_that_plugins_one_line_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "typo_plugin.py").write_text(TYPO_PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = make_plugins(("harness.suites", "typo_plugin"), entry_points=False)
    assert "good" in plugins.suites.names() and "typo" not in plugins.suites.names()
    reason = plugins.failures["typo_plugin"]
    assert reason.startswith("suite 'typo': variant 'bn': unknown model field 'nrom'")
    with pytest.raises(HarnessError, match="^suite 'typo': variant 'bn'"):
        plugins.suites.get("typo")


def test_dry_run_of_a_refused_suite_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "typo_plugin.py").write_text(TYPO_PLUGIN)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ["PYTHONPATH"]]),
        "HARNESS_PLUGINS": "fake_plugin,typo_plugin",
    }
    argv = ["run", "--suite", "typo", "--backend", "fake", "--dataset", "synthetic", "--dry-run"]
    out = subprocess.run([*HARNESS, *argv], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""
    assert out.stderr.startswith(
        "harness: error: suite 'typo': variant 'bn': unknown model field 'nrom' "
        "(did you mean 'norm'?); valid: activation,"
    )
    assert out.stderr.count("\n") == 1
    good = subprocess.run(
        [*HARNESS, *argv[:2], "good", *argv[3:]], capture_output=True, text=True, env=env
    )
    assert good.returncode == 0 and "dry run of good" in good.stdout
    listed = subprocess.run([*HARNESS, "list"], capture_output=True, text=True, env=env)
    assert "typo_plugin  suite 'typo': variant 'bn': unknown model field 'nrom'" in listed.stdout


def test_registered_claims_are_the_claims_module_functions() -> None:
    registered = get_plugins().claims
    assert registered.names() == list(claims.CLAIMS)
    for name in registered.names():
        assert load_object(registered.get(name).function) is claims.CLAIMS[name]


def test_registered_sections_and_executors_resolve() -> None:
    from harness.report import section
    from harness.report.sections import header

    plugins = get_plugins()
    assert {"header", "summary", "curves", "agreement", "failures"} <= set(plugins.sections.names())
    for name in plugins.sections.names():
        assert callable(load_object(plugins.sections.get(name).function))
    assert section("header") is header
    assert plugins.executors.names()[:2] == ["local", "ray"]
    with pytest.raises(UnknownNameError, match="unknown executor 'nope'; valid: local, ray"):
        executor_for(plugins, 1, "nope", None, None)
