"""Suites as data: a base model and training spec, named variants, sweep axes and seeds.

A suite expands into cells (backend x device x variant x sweep point x seed). Adding a sweep
needs no core change: register a :class:`Suite` from a plugin.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

from harness.specs import CellSpec, DataSpec, ModelSpec, TrainSpec, replace

TRAIN_TASK = "harness.tasks:train_cell"


@dataclass(frozen=True)
class Variant:
    """A named change to the suite's model/train specs, e.g. ``bn`` = ``{"norm": "batchnorm"}``."""

    name: str
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class Suite:
    """An experiment definition.

    ``sweep`` maps ``"train.lr"`` / ``"model.init_scale"``-style keys to the grid of values;
    ``quick`` holds overrides used by ``--quick`` (keys ``epochs``, ``seeds`` and sweep keys);
    ``report`` lists report sections (``"module:function"`` or built-in names).
    """

    name: str
    description: str
    model: ModelSpec = ModelSpec()
    train: TrainSpec = TrainSpec()
    variants: tuple[Variant, ...] = (Variant("default"),)
    sweep: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    seeds: int = 1
    quick: dict[str, Any] = field(default_factory=dict)
    task: str = TRAIN_TASK
    report: tuple[str, ...] = ("header", "summary", "curves", "agreement")
    extra: dict[str, Any] = field(default_factory=dict)
    target_acc: float = 0.9


@dataclass(frozen=True)
class RunOptions:
    """What the user chose on the command line; ``None`` keeps the suite's default."""

    backends: tuple[str, ...]
    devices: tuple[str, ...] = ("cpu",)
    data: DataSpec = DataSpec()
    epochs: int | None = None
    seeds: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    init: str | None = None
    quick: bool = False
    artifacts: str = ""

    def to_settings(self, suite: Suite) -> dict[str, Any]:
        """The options as a run stores them (seeds resolved against ``suite``)."""
        return {
            "suite": suite.name,
            "backends": list(self.backends),
            "devices": list(self.devices),
            "data": dataclasses.asdict(self.data),
            "epochs": self.epochs,
            "seeds": seed_count(suite, self),
            "batch_size": self.batch_size,
            "lr": self.lr,
            "init": self.init,
            "quick": self.quick,
        }

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> RunOptions:
        """Inverse of :meth:`to_settings`: the options a stored run ran with."""
        return cls(
            backends=tuple(settings["backends"]),
            devices=tuple(settings["devices"]),
            data=DataSpec(**settings["data"]),
            **{k: settings[k] for k in ("epochs", "seeds", "batch_size", "lr", "init", "quick")},
        )


def _grid(suite: Suite, opts: RunOptions) -> dict[str, tuple[Any, ...]]:
    """The sweep's axes; ``--lr``/``--batch-size`` narrow a swept axis to their one value
    (otherwise the sweep would silently override them)."""
    grid = dict(suite.sweep)
    if opts.quick:
        grid.update({k: tuple(v) for k, v in suite.quick.items() if "." in k})
    for key, value in (("train.lr", opts.lr), ("train.batch_size", opts.batch_size)):
        if value is not None and key in grid:
            grid[key] = (value,)
    return grid


def _specs(
    suite: Suite, opts: RunOptions, variant: Variant, point: dict[str, Any], seed: int
) -> tuple[ModelSpec, TrainSpec]:
    model = replace(suite.model, **variant.model)
    train = replace(suite.train, **variant.train)
    epochs = opts.epochs or (suite.quick.get("epochs") if opts.quick else None) or train.epochs
    train = replace(train, epochs=epochs, seed=seed)
    if opts.batch_size is not None:
        train = replace(train, batch_size=opts.batch_size)
    if opts.lr is not None:
        train = replace(train, lr=opts.lr)
    if opts.init is not None:
        model = replace(model, init=opts.init)
    for key, value in point.items():
        target, _, name = key.partition(".")
        if target == "model":
            model = replace(model, **{name: value})
        else:
            train = replace(train, **{name: value})
    return model, train


def seed_count(suite: Suite, opts: RunOptions) -> int:
    """Seeds for this run: ``--seeds``, else ``quick``'s, else the suite's."""
    return opts.seeds or (suite.quick.get("seeds") if opts.quick else None) or suite.seeds


def expand(suite: Suite, opts: RunOptions, run_id: str) -> list[CellSpec]:
    """All cells of the run, backends interleaved innermost-last for fair comparisons."""
    grid = _grid(suite, opts)
    keys = list(grid)
    cells = []
    for variant, values, seed in itertools.product(
        suite.variants, itertools.product(*grid.values()), range(seed_count(suite, opts))
    ):
        point = dict(zip(keys, values))
        model, train = _specs(suite, opts, variant, point, seed)
        tag = ",".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())
        for backend, device in itertools.product(opts.backends, opts.devices):
            cell_id = "/".join(p for p in (backend, device, variant.name, tag, f"seed={seed}") if p)
            cells.append(
                CellSpec(
                    run_id,
                    cell_id,
                    suite.name,
                    suite.task,
                    backend,
                    device,
                    variant.name,
                    model,
                    train,
                    opts.data,
                    {"point": point, "artifacts": opts.artifacts, **suite.extra},
                )
            )
    return cells
