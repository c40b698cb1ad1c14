"""ioffe2015: the MNIST experiment of Ioffe & Szegedy (2015), section 4.1.

Three fully connected hidden layers of 100 sigmoid units, a 10-way softmax, batches of 60,
with and without BN before each sigmoid, trained with plain SGD (momentum 0). The paper trains
50,000 steps and gives no learning rate in section 4.1; the R2RT reproduction uses
``GradientDescentOptimizer(0.01)`` on a cross-entropy *summed* over the 60 examples, i.e. 0.6
on the mean loss the harness uses; we use 0.5. The paper initializes with "small random
Gaussian values"; here the canonical Glorot-uniform init, identical Dense weights for both
variants. 8,000 steps (80 rounds of 100; 500 with ``--quick``), with the validation accuracy
and the sigmoid-input percentiles recorded after every round.
"""

from __future__ import annotations

from harness.specs import ModelSpec, TrainSpec
from harness.suite import Suite, Variant

IOFFE2015 = Suite(
    name="ioffe2015",
    description="Ioffe & Szegedy 2015 §4.1: MNIST, 3x100 sigmoid MLP, batch 60, plain SGD",
    model=ModelSpec(hidden_sizes=(100, 100, 100), activation="sigmoid", placement="before"),
    train=TrainSpec(optimizer="sgd", lr=0.5, momentum=0.0, batch_size=60, epochs=80),
    variants=(
        Variant("no-bn", {"norm": "none"}, label="without BN"),
        Variant("bn", {"norm": "batchnorm"}, label="with BN (before each sigmoid)"),
    ),
    seeds=3,
    quick={"epochs": 5, "seeds": 1},
    task="harness.tasks.ioffe:ioffe_cell",
    report=(
        "header",
        "harness.report.ioffe:ioffe",
        "agreement",
        "failures",
        "harness.report.claims:claims",
    ),
    extra={
        "claims": ("bn_faster", "bn_more_accurate", "stable_inputs"),
        "steps_per_round": 100,
        "probe_size": 1000,
        "probe_units": 10,
    },
    target_acc=0.9,
    targets={"fashion-mnist": 0.85},  # its best MLPs reach ~89%
)
