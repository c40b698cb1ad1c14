"""lr-sweep: does BatchNorm tolerate higher learning rates?

MLP 784-512-256-10 (ReLU), SGD momentum 0.9, batch 64, 3 epochs, learning rates on a 1-2-5
grid 0.001..5, with and without BN (before the activation). A cell whose loss turns NaN/inf is
recorded as diverged; an lr is *stable* when its cell finished and reached ``stable_acc``
validation accuracy.
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

LRS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

LR_SWEEP = Suite(
    name="lr-sweep",
    description="SGD learning rates 0.001..5 with vs without BatchNorm",
    model=ModelSpec(hidden_sizes=(512, 256), activation="relu", placement="before"),
    train=TrainSpec(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=64, epochs=3),
    variants=(
        Variant("no-bn", {"norm": "none"}, label="without BN"),
        Variant("bn", {"norm": "batchnorm"}, label="with BN"),
    ),
    sweep={"train.lr": LRS},
    seeds=3,
    quick={"epochs": 1, "seeds": 1, "train.lr": (0.01, 1.0, 5.0)},
    report=(
        "header",
        "harness.report.sweeps:table",
        "harness.report.sweeps:plots",
        "failures",
        "harness.report.claims:claims",
    ),
    extra={"claims": ("higher_lr", "wider_lr_range"), "stable_acc": 0.8},
    target_acc=0.9,
    targets={"fashion-mnist": 0.85},  # its best MLPs reach ~89%
)
