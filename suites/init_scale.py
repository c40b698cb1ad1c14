"""init-scale: is BatchNorm insensitive to the scale of the initial weights?

MLP 784-512-256-10 (ReLU), SGD momentum 0.9, lr 0.01, batch 64; every canonical (He-uniform)
kernel multiplied by a factor on a half-decade grid 0.01..10 (``model.init_scale``), with and
without BN before the activation. Same seed, same kernels up to the factor.
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

SCALES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)

INIT_SCALE = Suite(
    name="init-scale",
    description="initial weights scaled 0.01..10 with vs without BatchNorm",
    model=ModelSpec(hidden_sizes=(512, 256), activation="relu", placement="before"),
    train=TrainSpec(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=64, epochs=3),
    variants=(
        Variant("no-bn", {"norm": "none"}, label="without BN"),
        Variant("bn", {"norm": "batchnorm"}, label="with BN"),
    ),
    sweep={"model.init_scale": SCALES},
    seeds=3,
    quick={"epochs": 1, "seeds": 1, "model.init_scale": (0.01, 1.0, 10.0)},
    report=(
        "header",
        "harness.report.sweeps:table",
        "harness.report.sweeps:plots",
        "failures",
        "harness.report.claims:claims",
    ),
    extra={"claims": ("init_insensitive",)},
    target_acc=0.9,
    targets={"fashion-mnist": 0.85},  # its best MLPs reach ~89%
)
