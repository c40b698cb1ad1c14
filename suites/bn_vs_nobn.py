"""bn-vs-nobn: the experiment every BatchNorm notebook does.

MLP 784-512-256-10 with ReLU, with and without BN after each hidden Linear, SGD momentum 0.9,
lr 0.01, batch 64, the same canonical init for both variants.
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

BN_VS_NOBN = Suite(
    name="bn-vs-nobn",
    description="MLP 784-512-256-10 (ReLU) with vs without BatchNorm, SGD momentum 0.9",
    model=ModelSpec(hidden_sizes=(512, 256), activation="relu", placement="before"),
    train=TrainSpec(optimizer="sgd", lr=0.01, momentum=0.9, batch_size=64, epochs=10),
    variants=(
        Variant("no-bn", {"norm": "none"}, label="without BN"),
        Variant("bn", {"norm": "batchnorm"}, label="with BN"),
    ),
    seeds=3,
    quick={"epochs": 2, "seeds": 1},
    target_acc=0.9,
    targets={"fashion-mnist": 0.85},  # its best MLPs reach ~89%
    report=(
        "header",
        "summary",
        "curves",
        "agreement",
        "attribution",
        "failures",
        "harness.report.claims:claims",
    ),
    extra={"claims": ("bn_faster", "bn_more_accurate", "bn_regularizes")},
)
