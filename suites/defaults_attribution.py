"""defaults-attribution: which framework default makes the frameworks disagree.

The bn-vs-nobn MLP with BN (784-512-256-10, ReLU, BN before the activation) trained with Adam
(so Adam's epsilon is one of the conventions) at each framework's own defaults, next to its
mapped arm and one arm per convention switched alone (see :mod:`harness.attribution`). Always
runs in ``native`` defaults mode; ``--defaults mapped`` runs only the mapped variant.
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

DEFAULTS_ATTRIBUTION = Suite(
    name="defaults-attribution",
    description="MLP 784-512-256-10 with BN, Adam: the gap between frameworks at their own "
    "defaults, attributed to each default",
    model=ModelSpec(hidden_sizes=(512, 256), activation="relu", norm="batchnorm"),
    train=TrainSpec(optimizer="adam", lr=1e-3, batch_size=64, epochs=5),
    variants=(Variant("bn", label="with BN"),),
    seeds=3,
    quick={"epochs": 1, "seeds": 2},
    defaults="native",
    report=("header", "summary", "attribution", "agreement", "failures"),
)
