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

TRAJECTORY_TOLERANCE = (
    "per step and parameter group against float64: tol_k = C·u·n_eff·path_k / max|p_k| + k·u "
    "(n_eff of the group's gradient as in the differential test, path_k the summed max-norm of "
    "its updates so far, one rounding of the parameter per step); running statistics: "
    "C·u·n_eff of the batch statistic + 2 × the tolerances of the layers before them; between "
    "two backends, the sum of their tolerances against float64"
)

TRAJECTORY = (
    "## Trajectory check\n\nOne `train` call over a batch order of shape (steps, 1, batch): "
    "each 'epoch' is one step, so the optimizer and its SGD momentum live through the run "
    "(re-calling `train` per step would re-create the optimizer and drop the momentum; "
    "retraining from scratch for every prefix would cost O(N^2) steps) and the step compiles "
    "once. The float64 reference takes every step in lockstep inside the epoch callback, with "
    "each backend's measured running-variance convention, so the comparison with float64 is "
    "per step; snapshots (2 MB each) are stored only at steps 0, 1, 2, 5, 10, 20, every 25th, "
    "and two steps either side of the first step over tolerance, and the comparison between "
    "backends uses the steps all stored. Differences are max-norm relative over each layer's "
    "arrays (Dense kernel+bias, BN scale+offset, BN running mean+var); running variances are "
    "compared between backends in one convention (float64's shift between the biased and the "
    "unbiased running variance at that step taken off). Tolerance, derived from the float32 "
    f"arithmetic: {TRAJECTORY_TOLERANCE}. First-order: a ReLU gate that rounding flips changes "
    "that unit's gradient outright, which is the divergence this check looks for; at the "
    "first step over, the worker traces the backend's own ReLU inputs (`trace_step` from its "
    "parameters of the step before) and counts the entries whose sign differs from float64's."
)

RELU_FLIPS = (
    " Traced at steps {steps}: {flipped} ReLU input(s) have a different sign than in float64, "
    "{near} of them within float32's error bound of zero (C·u·n_eff·max|z| of that layer's "
    "ReLU input; {per_layer}){verdict}"
)
RELU_CAUSE = (
    ": a gate rounding decides, so the divergence is float32 meeting a ReLU boundary, not a "
    "framework difference."
)
RELU_NOT_CAUSE = (
    ": no gate flipped within rounding of zero at these steps, so the cause is not a ReLU "
    "boundary there; look further (the error may have grown smoothly through the steps)."
)

EVAL_EFFECT = (
    "### Eval mode and the running variance, per step\n\nEval-mode logits (float64 forward "
    "of each backend's stored parameters and running statistics) on the first 256 validation "
    "samples, for pairs of backends whose running variances follow different conventions; "
    "then the first backend given the second's running variance, which leaves only float32 "
    "rounding: the gap between the columns is the unbiased running variance's effect in eval "
    "mode, hence on validation losses."
)

TOLERANCES = (
    "### Derived tolerances against measured errors\n\nPer float32 case and quantity: the "
    "derived tolerance C·u·n_eff·κ of the reference's inputs, and in brackets the worst "
    "measured error over backends as a fraction of it (above 1 fails a well-conditioned case; "
    "cases not held to it are findings)."
)

VARIANTS = (
    "Layer variants, measured the same way (asked for new-stat weight 0.1 and epsilon 1e-5): "
    "`renorm` is Keras's `BatchNormalization(renorm=True)`; `fused` is TensorFlow's fused op "
    "(`tf.raw_ops.FusedBatchNormV3`, what `tf.nn.fused_batch_norm` and the `tf.compat.v1` "
    "layers run), which feeds the unbiased variance to the running average, like PyTorch."
)
