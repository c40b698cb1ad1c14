"""TensorFlow's fused BatchNorm op (``tf.raw_ops.FusedBatchNormV3``) as a layer variant.

The op is what ``tf.compat.v1`` layers and ``tf.nn.fused_batch_norm`` run; Keras 3 no longer
calls it, but users of TensorFlow meet it. Like PyTorch it feeds the unbiased (Bessel-corrected)
batch variance to the running average, which the numerics suite measures. TensorFlow engine
only: imported by the adapter only when the ``fused`` variant is asked for there.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from harness.backend import BNCall, BNResult

KERAS_EPSILON = 1e-3  # tf.nn.fused_batch_norm's default epsilon is 0.001, as Keras's
FUSED_MOMENTUM = 0.01  # core convention of Keras's 0.99, the tf.compat.v1 layer's default


def fused_batchnorm(
    x: np.ndarray, params: dict[str, np.ndarray], call: BNCall, upstream: np.ndarray
) -> BNResult:
    """Forward, ``d sum(out * upstream)`` by ``tf.GradientTape`` and the op's running
    statistics; the input is reshaped to NHWC ``(n, 1, 1, d)`` as the op requires."""
    if call.dtype != "float32":
        raise TypeError(f"the fused op variant is run in float32 only, not {call.dtype}")
    n, d = x.shape
    factor = FUSED_MOMENTUM if call.momentum is None else call.momentum
    eps = KERAS_EPSILON if call.epsilon is None else call.epsilon
    xt = tf.constant(np.reshape(x, (n, 1, 1, d)), tf.float32)
    scale, offset = (tf.constant(params[k], tf.float32) for k in ("scale", "offset"))
    mean, var = (tf.constant(params[k], tf.float32) for k in ("mean", "var"))
    up = tf.constant(np.reshape(upstream, (n, 1, 1, d)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([xt, scale, offset])
        out = tf.raw_ops.FusedBatchNormV3(
            x=xt,
            scale=scale,
            offset=offset,
            mean=mean,
            variance=var,
            epsilon=eps,
            exponential_avg_factor=factor if call.training else 1.0,
            data_format="NHWC",
            is_training=call.training,
        )
        loss = tf.reduce_sum(out.y * up)
    gx, gs, go = tape.gradient(loss, [xt, scale, offset])
    running = (out.batch_mean, out.batch_variance) if call.training else (mean, var)
    return BNResult(
        out=_np(out.y).reshape(n, d),
        grad_x=_np(gx).reshape(n, d),
        grad_scale=_np(gs),
        grad_offset=_np(go),
        running_mean=_np(running[0]),
        running_var=_np(running[1]),
    )


def _np(value: Any) -> np.ndarray:
    return np.asarray(value.numpy(), np.float32)
