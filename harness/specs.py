"""Experiment specifications as frozen dataclasses: plain data, no framework imports.

Hyper-parameters are stated once here in the core's own convention and each backend translates
them: ``bn_momentum`` is the weight of the *new* batch statistic (PyTorch style, 0.1), so Keras and
Flax receive ``1 - bn_momentum``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import UnknownNameError

Norm = Literal["none", "batchnorm", "layernorm", "groupnorm"]
Placement = Literal["before", "after"]
Activation = Literal["relu", "sigmoid", "tanh"]
InitMode = Literal["canonical", "native"]
Optimizer = Literal["sgd", "adam"]

NORMS: tuple[str, ...] = ("none", "batchnorm", "layernorm", "groupnorm")
PLACEMENTS: tuple[str, ...] = ("before", "after")
ACTIVATIONS: tuple[str, ...] = ("relu", "sigmoid", "tanh")
INIT_MODES: tuple[str, ...] = ("canonical", "native")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
TRAINABLE: tuple[str, ...] = ("all", "bn-only", "random-subset")
"""What the core's SGD loop trains (``bn-only``: BN's scale and offset; ``random-subset``: as
many randomly chosen Dense weights, :mod:`harness.why.masks`)."""
MODEL_FEATURES: tuple[str, ...] = ("groupnorm", "ghost-batch")
"""Optional model features a backend declares in ``Backend.model_features``."""
RUNNING_VARS: tuple[str, ...] = ("native", "biased", "unbiased")
DEFAULTS_MODES: tuple[str, ...] = ("mapped", "native")

BN_MOMENTUM = 0.1
"""The core's BN momentum: the weight of the new batch statistic (PyTorch's convention)."""
BN_EPSILON = 1e-5
"""The core's BN epsilon."""
MODEL_CONVENTIONS: tuple[str, ...] = ("bn_momentum", "bn_epsilon", "bn_variance")
"""Model conventions a spec may leave to the framework (``ModelSpec.native``): BN momentum,
epsilon, and the batch-variance formula (Flax's default is a one-pass ``E[x^2] - E[x]^2``)."""
TRAIN_CONVENTIONS: tuple[str, ...] = ("adam_epsilon",)
"""Optimizer conventions a spec may leave to the framework (``TrainSpec.native``): Adam's
epsilon, its value and where the framework adds it."""


@dataclass(frozen=True)
class ModelSpec:
    """An MLP: ``input_size -> hidden_sizes... -> num_classes`` with optional normalization.

    ``placement="before"`` puts the norm between the Linear and the activation (the BN paper's
    choice); ``"after"`` puts it after the activation. ``bn_momentum`` is in PyTorch convention.
    ``native`` names the conventions of :data:`MODEL_CONVENTIONS` left at the framework's own
    defaults (empty: every one translated from the core's values); ``running_var`` forces the
    batch variance fed to the running average (``"native"``: the framework's own).
    ``norm="groupnorm"`` splits each hidden layer's units into ``norm_groups`` groups (Wu & He
    2018). ``ghost_batch`` > 0 makes BatchNorm normalize over virtual batches of that many
    samples inside each batch (ghost BN, :mod:`harness.numerics.ghost`); 0 is ordinary BN.
    """

    input_size: int = 784
    hidden_sizes: tuple[int, ...] = (512, 256)
    num_classes: int = 10
    activation: Activation = "relu"
    norm: Norm = "none"
    placement: Placement = "before"
    bn_momentum: float = BN_MOMENTUM
    bn_epsilon: float = BN_EPSILON
    dropout: float = 0.0
    init: InitMode = "canonical"
    init_scale: float = 1.0
    norm_groups: int = 32
    ghost_batch: int = 0
    native: tuple[str, ...] = ()
    running_var: str = "native"

    def layer_sizes(self) -> list[tuple[int, int]]:
        """Return ``(fan_in, fan_out)`` for every Dense layer, output layer last."""
        sizes = [self.input_size, *self.hidden_sizes, self.num_classes]
        return list(zip(sizes[:-1], sizes[1:]))

    @property
    def has_norm(self) -> bool:
        """True when hidden layers carry a normalization layer."""
        return self.norm != "none"

    @property
    def features(self) -> tuple[str, ...]:
        """Optional model features this spec needs from a backend (:data:`MODEL_FEATURES`)."""
        needs = {"groupnorm": self.norm == "groupnorm"}
        needs["ghost-batch"] = self.norm == "batchnorm" and self.ghost_batch > 0
        return tuple(name for name, needed in needs.items() if needed)


@dataclass(frozen=True)
class TrainSpec:
    """Optimizer and schedule. ``lr_decay`` multiplies the lr every ``lr_step`` epochs.

    ``native`` names the conventions of :data:`TRAIN_CONVENTIONS` left at the framework's own
    defaults (empty: Adam's epsilon is ``adam_epsilon`` where torch adds it, on every backend).
    ``trainable`` (:data:`TRAINABLE`) and ``bn_noise`` (noise injected after each BN layer) are
    read only by the core's own SGD loop (:mod:`harness.why`), never by a backend's ``train``.
    """

    optimizer: Optimizer = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    lr_step: int = 0
    lr_decay: float = 1.0
    epochs: int = 3
    batch_size: int = 64
    seed: int = 0
    native: tuple[str, ...] = ()
    trainable: str = "all"
    bn_noise: float = 0.0

    def lr_at(self, epoch: int) -> float:
        """Learning rate used during 0-based ``epoch`` (step decay)."""
        if self.lr_step <= 0:
            return self.lr
        return self.lr * self.lr_decay ** (epoch // self.lr_step)


@dataclass(frozen=True)
class DataSpec:
    """Which dataset and how to preprocess it."""

    name: str = "mnist-5k"
    standardize: bool = False
    val_fraction: float = 0.2
    limit: int = 0
    data_dir: str = ""
    note: str = ""


@dataclass(frozen=True)
class CellSpec:
    """One unit of work: a backend on a device training one variant at one sweep point."""

    run_id: str
    cell_id: str
    suite: str
    task: str
    backend: str
    device: str
    variant: str
    model: ModelSpec
    train: TrainSpec
    data: DataSpec
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (round-trips through :func:`cell_from_dict`)."""
        return dataclasses.asdict(self)


def _build(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return cls(**kwargs)


def cell_from_dict(data: dict[str, Any]) -> CellSpec:
    """Inverse of :meth:`CellSpec.to_dict`."""
    return CellSpec(
        run_id=data["run_id"],
        cell_id=data["cell_id"],
        suite=data["suite"],
        task=data["task"],
        backend=data["backend"],
        device=data["device"],
        variant=data["variant"],
        model=_build(ModelSpec, data["model"]),
        train=_build(TrainSpec, data["train"]),
        data=_build(DataSpec, data["data"]),
        extra=dict(data.get("extra", {})),
    )


SPEC_PARTS: dict[str, type] = {"model": ModelSpec, "train": TrainSpec, "data": DataSpec}
"""The spec a suite's ``model``/``train`` key (``"train.lr"``) or a variant's dict changes."""
CHOICES: dict[str, tuple[str, ...]] = {
    "norm": NORMS,
    "placement": PLACEMENTS,
    "activation": ACTIVATIONS,
    "init": INIT_MODES,
    "optimizer": OPTIMIZERS,
    "trainable": TRAINABLE,
    "running_var": RUNNING_VARS,
    "native": MODEL_CONVENTIONS + TRAIN_CONVENTIONS,
}
"""Spec fields with a fixed set of values."""


def check_fields(cls: type, changes: dict[str, Any], kind: str = "", prefix: str = "") -> None:
    """Raise :class:`UnknownNameError` for a key of ``changes`` that ``cls`` has no field for
    (listing the fields, as ``prefix + name``) or a choice field given an unknown value."""
    names = [f.name for f in dataclasses.fields(cls)]
    part = next((p for p, c in SPEC_PARTS.items() if c is cls), cls.__name__)
    for key, value in changes.items():
        if key not in names:
            valid = [prefix + n for n in names]
            raise UnknownNameError(kind or f"{part} field", prefix + str(key), valid)
        values = value if isinstance(value, (tuple, list)) else (value,)
        for one in values:
            if key in CHOICES and one is not None and one not in CHOICES[key]:
                raise UnknownNameError(f"{part} {key}", str(one), CHOICES[key])


def replace(obj: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that refuses a key the dataclass does not have (an
    :class:`UnknownNameError` naming the valid fields), so a misspelled key never goes unseen."""
    check_fields(type(obj), {k: None for k in changes})
    return dataclasses.replace(obj, **changes)
