"""Suites as data: a base model and training spec, named variants, sweep axes and seeds.

A suite expands into cells (backend x device x variant x sweep point x seed). Adding a sweep
needs no core change: register a :class:`Suite` from a plugin.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any

from harness.specs import (
    MODEL_CONVENTIONS,
    TRAIN_CONVENTIONS,
    CellSpec,
    DataSpec,
    ModelSpec,
    TrainSpec,
    replace,
)

TRAIN_TASK = "harness.tasks.train:train_cell"
ATTRIBUTION_SECTION = "attribution"
"""A suite whose report lists this section runs, in ``native`` defaults mode, the switch cells
of :func:`attribution_variants` next to each variant."""
SWITCHES: tuple[str, ...] = ("init", *MODEL_CONVENTIONS, "running_var", *TRAIN_CONVENTIONS)
"""The conventions the attribution switches one at a time, from mapped to the framework's."""
UNBIASED = "unbiased"
"""The running-variance switch: PyTorch's default (the unbiased batch variance), the one
framework default that differs from the biased update of Keras, Flax and the core."""


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
    defaults: str = "mapped"
    targets: dict[str, float] = field(default_factory=dict)
    """Per-dataset accuracy targets replacing ``target_acc`` (a harder dataset, a lower one)."""

    def for_dataset(self, name: str) -> Suite:
        """This suite with ``target_acc`` set for dataset ``name`` (see :attr:`targets`)."""
        if name not in self.targets:
            return self
        return dataclasses.replace(self, target_acc=float(self.targets[name]))


def cells_dataset(cells: list[dict[str, Any]]) -> str:
    """The dataset name the cells were run on ('' when none says)."""
    for cell in cells:
        name = cell.get("spec", {}).get("data", {}).get("name")
        if name:
            return str(name)
    return ""


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
    defaults: str | None = None

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
            "defaults": self.defaults,
        }

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> RunOptions:
        """Inverse of :meth:`to_settings`: the options a stored run ran with."""
        return cls(
            backends=tuple(settings["backends"]),
            devices=tuple(settings["devices"]),
            data=DataSpec(**settings["data"]),
            **{k: settings[k] for k in ("epochs", "seeds", "batch_size", "lr", "init", "quick")},
            defaults=settings.get("defaults"),
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
    suite: Suite,
    opts: RunOptions,
    variant: Variant,
    point: dict[str, Any],
    seed: int,
    mode: str = "",
) -> tuple[ModelSpec, TrainSpec]:
    model = replace(suite.model, **variant.model)
    train = replace(suite.train, **variant.train)
    epochs = opts.epochs or (suite.quick.get("epochs") if opts.quick else None) or train.epochs
    train = replace(train, epochs=epochs, seed=seed)
    if opts.batch_size is not None:
        train = replace(train, batch_size=opts.batch_size)
    if opts.lr is not None:
        train = replace(train, lr=opts.lr)
    if (mode or defaults_mode(suite, opts)) == "native":
        model = replace(model, init="native", native=MODEL_CONVENTIONS)
        train = replace(train, native=TRAIN_CONVENTIONS)
    if opts.init is not None:
        model = replace(model, init=opts.init)
    for key, value in point.items():
        target, _, name = key.partition(".")
        if target == "model":
            model = replace(model, **{name: value})
        else:
            train = replace(train, **{name: value})
    return model, train


def defaults_mode(suite: Suite, opts: RunOptions) -> str:
    """``mapped`` (every convention translated from the core's values) or ``native`` (each
    framework's own defaults): ``--defaults``, else the suite's."""
    return opts.defaults or suite.defaults


def switched(model: ModelSpec, train: TrainSpec, switch: str) -> tuple[ModelSpec, TrainSpec]:
    """Mapped specs with the one convention ``switch`` (of :data:`SWITCHES`) left to the
    framework (``running_var``: forced to :data:`UNBIASED`, PyTorch's default)."""
    if switch == "init":
        return replace(model, init="native"), train
    if switch == "running_var":
        return replace(model, running_var=UNBIASED), train
    if switch in TRAIN_CONVENTIONS:
        return model, replace(train, native=(switch,))
    return replace(model, native=(switch,)), train


def relevant_switches(model: ModelSpec, train: TrainSpec) -> list[str]:
    """The switches that can change a run of these mapped specs (BN ones only with BN, Adam's
    epsilon only with Adam, init only from the canonical init)."""
    out = ["init"] if model.init == "canonical" else []
    if model.norm == "batchnorm":
        out += [*MODEL_CONVENTIONS, "running_var"]
    if train.optimizer == "adam":
        out += list(TRAIN_CONVENTIONS)
    return out


Arm = tuple[str, ModelSpec, TrainSpec, dict[str, Any]]


def _arms(
    suite: Suite, opts: RunOptions, variant: Variant, point: dict[str, Any], seed: int
) -> list[Arm]:
    """The variant's cell specs; in native mode on a suite with the attribution section, also
    its mapped arm and one arm per convention switched alone (named ``VARIANT@SWITCH``)."""
    model, train = _specs(suite, opts, variant, point, seed)
    arms: list[Arm] = [(variant.name, model, train, {})]
    if defaults_mode(suite, opts) != "native" or ATTRIBUTION_SECTION not in suite.report:
        return arms
    mapped = _specs(suite, opts, variant, point, seed, mode="mapped")
    arms.append((f"{variant.name}@mapped", *mapped, {"base": variant.name, "switch": "mapped"}))
    for switch in relevant_switches(*mapped):
        info = {"base": variant.name, "switch": switch}
        arms.append((f"{variant.name}@{switch}", *switched(*mapped, switch), info))
    for _, _, _, info in arms[:1]:
        info.update(base=variant.name, switch="native")
    return arms


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
        tag = ",".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())
        for name, model, train, attribution in _arms(suite, opts, variant, point, seed):
            extra = {"point": point, "artifacts": opts.artifacts, **suite.extra}
            if attribution:
                extra["attribution"] = attribution
            for backend, device in itertools.product(opts.backends, opts.devices):
                parts = (backend, device, name, tag, f"seed={seed}")
                cell_id = "/".join(p for p in parts if p)
                cells.append(
                    CellSpec(
                        run_id,
                        cell_id,
                        suite.name,
                        suite.task,
                        backend,
                        device,
                        name,
                        model,
                        train,
                        opts.data,
                        dict(extra),
                    )
                )
    return cells
