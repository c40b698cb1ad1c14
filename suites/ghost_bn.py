"""ghost-bn: BatchNorm statistics over virtual ("ghost") batches of g samples inside a large batch.

Hoffer, Hubara & Soudry (2017) and Summers & Dinneen (2020): normalizing a batch of 256 by the
statistics of smaller virtual batches adds noise that helps large-batch training; very small
virtual batches hurt again. MLP 784-512-256-10 (ReLU, BN before the activation), batch 256,
SGD momentum 0.9 at lr 0.1, 10 epochs, g = 2..256 (``model.ghost_batch``; g = 256 is one
virtual batch, i.e. BN). Every backend builds the layer from its framework's own normalization
ops with one stated running-statistics rule (:mod:`harness.numerics.ghost`); the conformance
checks ``norm-apply[ghost-*]`` hold every backend to the float64 reference.

The claim compares a *pre-declared* intermediate g (``extra["ghost_pick"]`` = 32, fixed before
any run, so no selection bias) against both extremes, paired by seed (same initial weights, same
batch order: only the normalization differs).
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

GHOST_BATCHES = (2, 4, 8, 16, 32, 64, 128, 256)
GHOST_PICK = 32

GHOST_BN = Suite(
    name="ghost-bn",
    description="BN over virtual batches of g = 2..256 inside a batch of 256 (ghost BN)",
    model=ModelSpec(hidden_sizes=(512, 256), activation="relu", placement="before"),
    train=TrainSpec(optimizer="sgd", lr=0.1, momentum=0.9, epochs=10, batch_size=256),
    variants=(Variant("ghost-bn", {"norm": "batchnorm"}, label="ghost-batch BN"),),
    sweep={"model.ghost_batch": GHOST_BATCHES},
    seeds=3,
    quick={"epochs": 1, "seeds": 1, "model.ghost_batch": (2, GHOST_PICK, 256)},
    task="harness.tasks.train:train_epochs",
    report=(
        "header",
        "harness.report.sweeps:table",
        "harness.report.sweeps:plots",
        "harness.report.ghost:paper",
        "agreement",
        "failures",
        "harness.report.claims:claims",
    ),
    extra={"claims": ("ghost_intermediate",), "ghost_pick": GHOST_PICK},
    target_acc=0.9,
    targets={"fashion-mnist": 0.85},  # its best MLPs reach ~89%
)
