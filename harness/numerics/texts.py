"""The fixed prose of the bn-numerics report: how each table was measured and what it means.

Kept apart from :mod:`harness.report.numerics` so the section functions stay short; nothing here
is a measurement (those are all formatted in from the stored cells).
"""

from __future__ import annotations

from harness.numerics.cases import TOLERANCE_REASON, WELL_CONDITIONED, tolerance

CONVENTIONS = (
    "## Conventions, measured\n\nNothing here is typed in: each entry is solved from the "
    "layer's own outputs. Momentum: the weight `w` of the new batch mean in "
    "`running_mean = (1-w) mean0 + w batch_mean` after one step (least squares over 32 "
    "features). Running variance: `(running_var - (1-w) var0) / w` against the biased and "
    "unbiased batch variance of a batch of 16. Epsilon: eval mode with running mean 0, "
    "running var 0, scale 1, offset 0 gives `x / sqrt(eps)`; training mode on a batch of "
    "std 1e-3 gives `((x - mean) / out)^2 - var`. Batch size 1: what one training step on "
    "one sample did."
)

ERRORS = (
    "## Errors against the float64 reference\n\nEach entry: max-norm relative error "
    "`max|a - r| / max|r|` (max absolute error in brackets). Running statistics are compared "
    "in the backend's measured variance convention. Tolerances, for well-conditioned cases "
    f"({WELL_CONDITIONED}): {TOLERANCE_REASON} That is {tolerance('float16'):.2g} for float16 "
    f"and {tolerance('bfloat16'):.2g} for bfloat16. Other cases are reported as findings, not "
    "failures."
)

GROWTH = (
    "### How the error grows with |mean|/std\n\nWorst relative error over the six quantities "
    "per ratio, and the exponent k of error ~ ratio^k fitted over ratios 10..1e4."
)

FORMULAS = (
    "### Variance formula: mapped layer vs native defaults, measured\n\nWorst relative error "
    "over the six quantities per |mean|/std ratio, for each backend's layer as mapped (momentum "
    "0.1, epsilon 1e-5, two-pass variance where the framework lets the adapter choose) and at "
    "the framework's own defaults (compared with the reference in the measured native "
    "convention). The formula column is what the backend reported using. Where the two rows "
    "of a backend differ only in the formula (equal epsilons, see Conventions), the gap between "
    "them is the formula's: a one-pass `E[x^2] - E[x]^2` loses about ratio^2 u of the variance."
)

CROSS_BACKEND = (
    "## Backends against each other\n\nMax-norm relative difference "
    "`max|a - b| / max(max|a|, max|b|)` of the raw outputs, on the same inputs. Running "
    "variance differs where the variance conventions differ; in native defaults everything "
    "differs where momentum and epsilon do."
)

TRAJECTORY = (
    "## Trajectory check\n\nOne `train` call over a batch order of shape (steps, 1, batch): "
    "each 'epoch' is one step, so the optimizer and its SGD momentum live through the run "
    "(re-calling `train` per step would re-create the optimizer and drop the momentum; "
    "retraining from scratch for every prefix would cost O(N^2) steps), the step compiles once, "
    "and the epoch callback snapshots the parameters after every step into a `.npz` per backend. "
    "Differences are max-norm relative over each layer's arrays (Dense kernel+bias, BN "
    "scale+offset, BN running mean+var), tolerance {tol:g} (the float32 BN tolerance: a few "
    "steps of float32 rounding stay far below it, a different arithmetic does not); the float64 "
    "reference takes the same steps with each backend's measured running-variance convention."
)

RELU_GATE = (
    " In that step's batch the float64 reference has a ReLU input of {gate:.1e} (hidden layer "
    "{layer}), below what float32 resolves after BN: its gate can switch in float32, and that "
    "unit's gradient then differs outright."
)
