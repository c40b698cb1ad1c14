"""The BatchNorm-claims suites: expansion, step orders, claim verdicts, reports, end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from harness import claims
from harness.initializers import batch_order
from harness.plugins import get_plugins
from harness.report.context import ReportContext
from harness.report.stats import summarize
from harness.suite import RunOptions, Suite, expand
from harness.tasks.common import step_order
from harness.tasks.fit import batch_mode_accuracy

HARNESS = [sys.executable, "-m", "harness.cli"]
# suite: (cells per backend by default, epochs by default, cells with --quick, quick epochs)
SIZES = {
    "batch-size": (8 * 4 * 3, 3, 3 * 4, 2),
    "batch-size-steps": (8 * 4 * 3, 5, 3 * 4, 2),
    "ghost-bn": (8 * 3, 10, 3, 1),
    "lr-sweep": (12 * 2 * 3, 3, 3 * 2, 1),
    "init-scale": (7 * 2 * 3, 3, 3 * 2, 1),
    "bn-placement": (3 * 5, 10, 3, 2),
    "ioffe2015": (2 * 3, 80, 2, 5),
}


def suite(name: str) -> Suite:
    """A registered suite."""
    return get_plugins().suites.get(name)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(SIZES))
def test_suite_expands_default_and_quick(name: str) -> None:
    cells, epochs, quick_cells, quick_epochs = SIZES[name]
    for quick, count, n_epochs in ((False, cells, epochs), (True, quick_cells, quick_epochs)):
        opts = RunOptions(backends=("torch", "jax"), quick=quick)
        expanded = expand(suite(name), opts, "run")
        assert len(expanded) == 2 * count
        assert {c.train.epochs for c in expanded} == {n_epochs}
        assert len({c.cell_id for c in expanded}) == len(expanded)
        assert (max(c.train.seed for c in expanded) + 1 >= 3) != quick
    for claim in suite(name).extra["claims"]:
        assert claim in claims.CLAIMS


def test_batch_size_grid_and_claim_setup() -> None:
    cells = expand(suite("batch-size"), RunOptions(backends=("torch",)), "run")
    assert sorted({c.train.batch_size for c in cells}) == [2, 4, 8, 16, 32, 64, 128, 256]
    assert {c.model.norm for c in cells} == {"none", "batchnorm", "layernorm", "groupnorm"}
    ioffe = expand(suite("ioffe2015"), RunOptions(backends=("torch",)), "run")[0]
    assert ioffe.model.hidden_sizes == (100, 100, 100) and ioffe.model.activation == "sigmoid"
    assert (ioffe.train.batch_size, ioffe.train.momentum) == (60, 0.0)


def test_step_order_is_rectangular_and_follows_the_canonical_epochs() -> None:
    order = step_order(100, 8, rounds=4, steps=5, seed=3)  # 20 steps > 12 steps per epoch
    assert order.shape == (4, 5, 8)
    canonical = batch_order(100, 8, 2, 3).reshape(-1, 8)
    np.testing.assert_array_equal(order.reshape(-1, 8), canonical[:20])
    with pytest.raises(ValueError):
        step_order(10, 16, 1, 1, 0)


def test_batch_mode_accuracy_uses_whole_training_sized_batches() -> None:
    calls: list[int] = []

    class Stub:
        def evaluate(self, model: Any, x: np.ndarray, y: np.ndarray, training: bool) -> Any:
            assert training
            calls.append(len(x))
            return 0.0, float(len(calls) % 2)  # alternate batches right / wrong

    data = SimpleNamespace(x_val=np.zeros((10, 2)), y_val=np.zeros(10))
    acc = batch_mode_accuracy(Stub(), None, data, batch_size=3, samples=8)  # type: ignore[arg-type]
    assert calls == [3, 3] and acc == pytest.approx(0.5)


# --- claim evaluation on synthetic cells --------------------------------------------------


def cell(
    variant: str,
    seed: int,
    accs: list[float],
    backend: str = "torch",
    status: str = "ok",
    point: dict[str, Any] | None = None,
    **result: Any,
) -> dict[str, Any]:
    """A stored cell as the report sees it."""
    point = point or {}
    train = {"seed": seed, "epochs": len(accs), "batch_size": 64, "lr": 0.01}
    model = {"init_scale": 1.0, "num_classes": 10}
    for key, value in point.items():
        part, _, field = key.partition(".")
        (train if part == "train" else model)[field] = value
    epochs = [
        {"epoch": i + 1, "val_acc": a, "train_acc": a + 0.02, "time_s": 0.5, "train_loss": 0.1}
        for i, a in enumerate(accs)
    ]
    return {
        "cell_id": f"{backend}/{variant}/{point}/{seed}",
        "backend": backend,
        "device": "cpu",
        "variant": variant,
        "status": status,
        "reason": "",
        "spec": {"train": train, "model": model, "extra": {"point": point}},
        "result": {"epochs": epochs, "steps_per_epoch": 10, **result},
    }


def fake_suite(name: str, **extra: Any) -> Suite:
    """A suite carrying only what the claims read."""
    return Suite(name=name, description="", extra=extra, target_acc=0.9)


def verdicts(results: list[claims.ClaimResult]) -> dict[str, str]:
    return {r.where: r.verdict for r in results}


def test_compare_needs_separate_intervals() -> None:
    high, low = summarize([0.9, 0.91, 0.92]), summarize([0.5, 0.52, 0.51])
    assert claims.compare(high, low, claimed_higher=True) == claims.SUPPORTED
    assert claims.compare(low, high, claimed_higher=True) == claims.NOT_SUPPORTED
    assert claims.compare(high, summarize([0.8, 0.95, 0.9]), True) == claims.UNRESOLVED
    assert claims.compare(summarize([0.9]), low, True) == claims.UNRESOLVED  # one seed
    assert claims.compare(summarize([]), low, True) == claims.UNRESOLVED


def test_bn_faster_supported_not_supported_and_unresolved() -> None:
    fast = [cell("bn", s, [0.91, 0.95], backend="torch") for s in range(3)]
    slow = [cell("no-bn", s, [0.5 + s / 100, 0.8], backend="torch") for s in range(3)]
    reverse = [cell("bn", s, [0.5, 0.8], backend="jax") for s in range(3)]
    reverse += [cell("no-bn", s, [0.92, 0.95], backend="jax") for s in range(3)]
    mixed = [cell("bn", s, [0.91 if s else 0.5, 0.95], backend="keras") for s in range(3)]
    mixed += [cell("no-bn", s, [0.5, 0.91 if s else 0.95], backend="keras") for s in range(3)]
    results = claims.bn_faster(fast + slow + reverse + mixed, fake_suite("x"))
    assert verdicts(results) == {
        "torch/cpu": claims.SUPPORTED,
        "jax/cpu": claims.NOT_SUPPORTED,
        "keras/cpu": claims.UNRESOLVED,
    }
    torch = next(r for r in results if r.where == "torch/cpu")
    assert torch.numbers["no-bn"]["mean"] == 3.0  # never reached: budget (2) + 1
    assert "epochs to 90%" in torch.what


def test_higher_lr_uses_largest_stable_lr() -> None:
    cells = []
    for seed in range(3):
        for lr in (0.01, 0.1, 1.0):
            cells.append(cell("bn", seed, [0.9], point={"train.lr": lr}))
            bad = lr == 1.0
            cells.append(
                cell(
                    "no-bn",
                    seed,
                    [math.nan if bad else 0.9],
                    status="diverged" if bad else "ok",
                    point={"train.lr": lr},
                )
            )
    suite_ = fake_suite("lr", stable_acc=0.8)
    (result,) = claims.higher_lr(cells, suite_)
    assert result.verdict == claims.SUPPORTED
    assert "1 [1, 1]" in result.measurement and "0.1 [0.1, 0.1]" in result.measurement
    (wider,) = claims.wider_lr_range(cells, suite_)
    assert wider.verdict == claims.SUPPORTED and wider.numbers["bn"]["mean"] == 3
    low = [c for c in cells if c["variant"] == "no-bn" or c["spec"]["train"]["lr"] < 1.0]
    assert claims.higher_lr(low, suite_)[0].verdict == claims.UNRESOLVED  # both 0.1


def test_init_insensitive_spread_counts_divergence_as_chance() -> None:
    cells = []
    for seed in range(3):
        for scale, bn_acc, plain_acc in ((0.01, 0.93, 0.11), (1.0, 0.95, 0.95), (10.0, 0.94, 0)):
            point = {"model.init_scale": scale}
            cells.append(cell("bn", seed, [bn_acc + seed / 1000], point=point))
            status = "diverged" if scale == 10.0 else "ok"
            cells.append(cell("no-bn", seed, [plain_acc + seed / 500], status=status, point=point))
    suite_ = Suite(name="i", description="", sweep={"model.init_scale": (0.01, 1.0, 10.0)})
    (result,) = claims.init_insensitive(cells, suite_)
    assert result.verdict == claims.SUPPORTED
    assert result.numbers["bn"]["mean"] == pytest.approx(0.02)


def test_small_batch_claims() -> None:
    cells = []
    for seed in range(3):
        for bs in (2, 256):
            small = bs == 2
            gap = {"batch_mode_val_acc": (0.3 if small else 0.95) + seed / 1000}
            point = {"train.batch_size": bs}
            bn_acc = (0.6 if small else 0.949) + seed / 1000
            cells.append(cell("bn", seed, [bn_acc], point=point, **gap))
            cells.append(cell("layernorm", seed, [0.9 + seed / 1000], point=point))
    suite_ = fake_suite("b")
    (accuracy,) = claims.small_batch_accuracy(cells, suite_)
    assert accuracy.verdict == claims.SUPPORTED and "batch 2" in accuracy.what
    (gap,) = claims.small_batch_gap(cells, suite_)
    assert gap.verdict == claims.SUPPORTED
    assert gap.numbers["batch 2"]["mean"] == pytest.approx(0.3)


def test_placement_regularizes_and_input_drift() -> None:
    def probe(shift: float) -> dict[str, Any]:
        return {"p15": [[-1.0], [-1.0]], "p50": [[0.0], [shift]], "p85": [[1.0], [1.0]]}

    cells = []
    for seed in range(3):
        cells.append(cell("bn-before", seed, [0.95 + seed / 1000], probe=probe(0.1)))
        cells.append(cell("bn-after", seed, [0.93 + seed / 1000], probe=probe(0.1)))
        cells.append(cell("no-bn", seed, [0.94 + seed / 1000], probe=probe(1.0 + seed / 10)))
    suite_ = fake_suite("p", roles={"bn": "bn-before"})
    assert claims.placement(cells, suite_)[0].verdict == claims.SUPPORTED
    assert claims.bn_regularizes(cells, suite_)[0].verdict == claims.UNRESOLVED  # equal gaps
    assert claims.input_drift(cells[0]) == pytest.approx(0.05)
    assert claims.stable_inputs(cells, suite_)[0].verdict == claims.SUPPORTED
    assert math.isnan(claims.input_drift(cell("bn", 0, [0.9])))


def test_evaluate_runs_the_suites_claims_and_skips_failed_cells() -> None:
    cells = [cell("bn", s, [0.95]) for s in range(2)] + [cell("no-bn", 0, [0.5])]
    cells.append({**cell("no-bn", 1, []), "status": "failed"})
    results = claims.evaluate(cells, fake_suite("e", claims=("bn_faster", "bn_more_accurate")))
    assert [r.claim for r in results] == ["BN converges faster", "BN reaches higher accuracy"]


def test_sections_render_on_synthetic_cells(tmp_path: Path) -> None:
    from harness.report import claims as claims_section
    from harness.report import ioffe, sweeps

    cells = []
    for seed in range(2):
        for bs in (2, 64):
            point = {"train.batch_size": bs}
            cells.append(cell("bn", seed, [0.8, 0.9], point=point, train_mode_val_acc=0.93))
            cells.append(cell("no-bn", seed, [0.7, math.nan], status="diverged", point=point))
    suite_ = Suite(
        name="s",
        description="",
        sweep={"train.batch_size": (2, 64)},
        extra={"claims": ("bn_faster",)},
    )
    ctx = ReportContext({"run_id": "r"}, cells, suite_, tmp_path)
    text = sweeps.table(ctx) + sweeps.plots(ctx) + claims_section.claims(ctx)
    assert "### torch/cpu" in text and "sweep.png" in text and "## Claims" in text
    assert (tmp_path / "sweep.png").stat().st_size > 10_000
    assert ctx.data["sweep"][0]["samples_per_s"]["mean"] == pytest.approx(2 * 10 / 0.5)
    assert ioffe.ioffe(ctx).startswith("## Ioffe")


# --- end to end ---------------------------------------------------------------------------


def run_quick(tmp_path: Path, name: str, backend: str, *extra: str) -> dict[str, Any]:
    """``harness run --quick --threads 1`` in ``tmp_path``; returns results.json.

    One thread: on a loaded 2-core machine two BLAS/OpenMP threads per worker spin against the
    other processes and run 5-20x slower.
    """
    args = ["run", "--suite", name, "--backend", backend, "--quick", "--threads", "1", *extra]
    out = subprocess.run(
        [*HARNESS, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (path,) = (tmp_path / "reports" / "runs").glob("*/results.json")
    report = path.with_name("report.md").read_text()
    assert report.rstrip().split("\n## ")[-1].startswith("Claims")  # the report ends with them
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(SIZES))
def test_quick_run_on_the_fake_backend(tmp_path: Path, name: str) -> None:
    small = ("--dataset", "synthetic", "--epochs", "1", "--limit", "400")
    data = run_quick(tmp_path, name, "fake", *small)
    assert len(data["cells"]) == SIZES[name][2]
    assert all(c["status"] in ("ok", "diverged") for c in data["cells"])
    found = data["findings"]["claims"]
    assert found and {r["verdict"] for r in found} <= {"supported", "not supported", "unresolved"}
    if name.startswith("batch-size"):
        bn = [c for c in data["cells"] if c["variant"] == "bn"]
        assert all(0 <= c["result"]["batch_mode_val_acc"] <= 1 for c in bn)
    if name == "ioffe2015":  # the fake backend has no pre_activations
        assert "no pre_activations" in data["cells"][0]["result"]["probe"]["unavailable"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ioffe2015", "lr-sweep"])
def test_quick_run_on_torch(tmp_path: Path, name: str) -> None:
    pytest.importorskip("torch")
    data = run_quick(tmp_path, name, "torch")
    assert data["cells"][0]["result"]["dataset"]["train"] == 4000
    if name == "ioffe2015":
        probe = data["cells"][0]["result"]["probe"]
        assert len(probe["steps"]) == 5 and len(probe["p50"][0]) == 10
        assert data["findings"]["ioffe"]
    else:
        lrs = {c["settings"]["train"]["lr"]: c["status"] for c in data["cells"]}
        assert set(lrs) == {0.01, 1.0, 5.0}


@pytest.mark.parametrize(
    "name, option, key", [("lr-sweep", "lr", "lr"), ("batch-size", "batch_size", "batch_size")]
)
def test_an_option_on_a_swept_axis_narrows_the_sweep_to_its_value(
    name: str, option: str, key: str
) -> None:
    cells = expand(suite(name), RunOptions(backends=("torch",), **{option: 64}), "run")
    assert {getattr(c.train, key) for c in cells} == {64}
    assert {c.extra["point"][f"train.{key}"] for c in cells} == {64}
    assert all(f"/{key}=64/" in c.cell_id for c in cells)
    assert len(cells) == len(suite(name).variants) * suite(name).seeds


def test_tasks_of_earlier_versions_still_resolve() -> None:
    # Cells in older stores name the tasks' old modules; each resolves to a task in harness.tasks.
    from harness import tasks
    from harness.registry import load_object
    from harness.suite_check import check_path

    assert tasks.RENAMED, "no renamed tasks listed"
    for old, new in tasks.RENAMED.items():
        assert tasks.resolve(old) == new and new.startswith("harness.tasks.")
        check_path("task", tasks.resolve(old))
        assert callable(load_object(new))
    assert tasks.resolve("my_plugin.tasks:cell") == "my_plugin.tasks:cell"
