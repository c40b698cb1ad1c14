"""`--defaults native`: the spec fields, the switch cells, the attribution and the adapters."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest

from harness.attribution import attribution
from harness.cli import main
from harness.conventions import swap_running_var
from harness.errors import UnknownNameError
from harness.specs import (
    MODEL_CONVENTIONS,
    TRAIN_CONVENTIONS,
    ModelSpec,
    TrainSpec,
    check_fields,
)
from harness.suite import RunOptions, expand
from harness.suites.bn_vs_nobn import BN_VS_NOBN
from harness.suites.defaults_attribution import DEFAULTS_ATTRIBUTION


def test_native_mode_sets_every_convention_and_adds_switch_cells() -> None:
    opts = RunOptions(backends=("a", "b"), defaults="native", seeds=2)
    cells = expand(BN_VS_NOBN, opts, "r")
    natives = [c for c in cells if c.variant == "bn"]
    assert {c.model.init for c in natives} == {"native"}
    assert all(c.model.native == MODEL_CONVENTIONS for c in natives)
    assert all(c.train.native == TRAIN_CONVENTIONS for c in natives)
    variants = sorted({c.variant for c in cells})
    assert variants == sorted(
        ["no-bn", "no-bn@mapped", "no-bn@init", "bn", "bn@mapped", "bn@init"]
        + [f"bn@{s}" for s in (*MODEL_CONVENTIONS, "running_var")]
    )  # no Adam in bn-vs-nobn: no adam_epsilon switch
    mapped = next(c for c in cells if c.variant == "bn@mapped")
    assert (mapped.model.init, mapped.model.native, mapped.train.native) == ("canonical", (), ())
    eps = next(c for c in cells if c.variant == "bn@bn_epsilon")
    assert eps.model.native == ("bn_epsilon",) and eps.model.init == "canonical"
    assert next(c for c in cells if c.variant == "bn@running_var").model.running_var == "unbiased"
    assert eps.extra["attribution"] == {"base": "bn", "switch": "bn_epsilon"}
    assert len(cells) == 2 * 2 * len(variants)


def test_mapped_mode_is_unchanged_and_the_attribution_suite_is_native() -> None:
    cells = expand(BN_VS_NOBN, RunOptions(backends=("a",)), "r")
    assert [c.variant for c in cells] == ["no-bn"] * 3 + ["bn"] * 3
    assert all(c.model.native == () and "attribution" not in c.extra for c in cells)
    attr = expand(DEFAULTS_ATTRIBUTION, RunOptions(backends=("a",), quick=True), "r")
    assert "bn@adam_epsilon" in {c.variant for c in attr}
    only = expand(DEFAULTS_ATTRIBUTION, RunOptions(backends=("a",), defaults="mapped"), "r")
    assert {c.variant for c in only} == {"bn"}


def test_settings_round_trip_and_validation() -> None:
    opts = RunOptions(backends=("a",), defaults="native")
    assert RunOptions.from_settings(opts.to_settings(BN_VS_NOBN)).defaults == "native"
    old = {k: v for k, v in opts.to_settings(BN_VS_NOBN).items() if k != "defaults"}
    assert RunOptions.from_settings(old).defaults is None
    with pytest.raises(UnknownNameError, match="bn_momentum"):
        check_fields(ModelSpec, {"native": ("bn_epsilon", "bn_momentun")})
    with pytest.raises(UnknownNameError, match="unbiased"):
        check_fields(ModelSpec, {"running_var": "unbaised"})
    check_fields(ModelSpec, {"native": list(MODEL_CONVENTIONS), "running_var": "biased"})


def test_bad_defaults_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--suite", "bn-vs-nobn", "--backend", "torch", "--defaults", "nat"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "mapped, native" in err


@pytest.mark.parametrize("fed", ["biased", "unbiased"])
def test_swap_running_var_is_the_other_convention(fed: str) -> None:
    rng = np.random.default_rng(0)
    n, m, steps = 8, 0.1, 7
    biased = unbiased = np.ones(5)
    for _ in range(steps):
        var = rng.uniform(0.5, 2.0, 5)
        biased = (1 - m) * biased + m * var
        unbiased = (1 - m) * unbiased + m * var * n / (n - 1)
    mine, other = (unbiased, biased) if fed == "unbiased" else (biased, unbiased)
    np.testing.assert_allclose(swap_running_var(mine, fed, n, m, steps), other, rtol=1e-6)


def _cell(backend: str, switch: str, seed: int, acc: float, loss: float) -> dict:
    return {
        "backend": backend,
        "device": "cpu",
        "status": "ok",
        "spec": {
            "train": {"seed": seed},
            "extra": {"attribution": {"base": "bn", "switch": switch}},
        },
        "result": {"epochs": [{"val_acc": acc, "val_loss": loss}]},
    }


def test_attribution_splits_a_known_gap() -> None:
    # A: the reference; B's epsilon default costs 0.05 acc, its init 0.01, its mapped arm is
    # 0.02 below A's of which the running variance explains 0.015; noise per seed.
    cells = []
    for seed, noise in enumerate((0.0, 0.001, -0.002, 0.0005)):
        base = 0.8 + noise
        a = {"mapped": base, "init": base, "bn_epsilon": base, "running_var": base}
        a["native"] = base
        b_mapped = base - 0.02
        b = {"mapped": b_mapped, "init": b_mapped - 0.01, "bn_epsilon": b_mapped - 0.05}
        b["running_var"] = b_mapped + 0.015
        b["native"] = b_mapped - 0.06 + noise / 10
        for name, arms in (("A", a), ("B", b)):
            for switch, acc in arms.items():
                cells.append(_cell(name, switch, seed, acc, 1.0 - acc))
    (block,) = attribution(cells)
    assert (block["a"], block["b"]) == ("A", "B")
    rows = {r["term"]: r for r in block["rows"] if r["metric"] == "val_acc"}
    assert rows["init"]["diff"] == pytest.approx(-1.0)
    assert rows["bn_epsilon"]["diff"] == pytest.approx(-5.0)
    assert rows["running_var"]["diff"] == pytest.approx(-1.5)
    assert rows["mapped gap"]["diff"] == pytest.approx(-2.0)
    native = rows["native gap"]["diff"]
    shares = sum(rows[t]["diff"] for t in ("init", "bn_epsilon", "running_var", "rest"))
    assert shares == pytest.approx(native)
    assert rows["bn_epsilon"]["hi"] < 0 and math.isfinite(rows["native gap"]["lo"])


def test_torch_honours_native_defaults_and_the_biased_switch() -> None:
    torch = pytest.importorskip("torch")
    from harness.backends.torch.conventions import bn_layer, conventions

    sig = inspect.signature(torch.nn.BatchNorm1d).parameters
    native = bn_layer(ModelSpec(norm="batchnorm", native=MODEL_CONVENTIONS), 4)
    assert (native.momentum, native.eps) == (sig["momentum"].default, sig["eps"].default)
    mapped = bn_layer(ModelSpec(norm="batchnorm", bn_momentum=0.3, bn_epsilon=1e-4), 4)
    assert (mapped.momentum, mapped.eps) == (0.3, 1e-4)
    layer = bn_layer(ModelSpec(norm="batchnorm", running_var="biased"), 4)
    x = torch.randn(8, 4)
    layer.train()
    layer(x)
    expected = 0.9 * 1.0 + 0.1 * x.var(0, unbiased=False)
    torch.testing.assert_close(layer.running_var, expected)
    conv = conventions(ModelSpec(native=MODEL_CONVENTIONS), TrainSpec(native=TRAIN_CONVENTIONS))
    adam = inspect.signature(torch.optim.Adam).parameters["eps"].default
    assert conv["adam_epsilon"] == adam and conv["running_var"] == "unbiased"
