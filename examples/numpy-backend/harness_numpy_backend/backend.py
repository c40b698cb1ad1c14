"""The adapter: the harness's backend contract on a float64 NumPy MLP.

The arithmetic (Linear, hand-written BatchNorm with biased-variance running statistics, softmax
cross-entropy, SGD and Adam with torch.optim semantics) is the harness's own float64 reference,
:mod:`harness.reference`; this class is the glue a backend author writes for any framework:
build, train on the given batch order, evaluate, parameters in and out, one BN layer.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness.backend import (
    Backend,
    BNCall,
    BNResult,
    EpochCallback,
    EpochMetrics,
    NormCall,
    Shape,
    StepRunner,
    TrainData,
)
from harness.numerics.ghost import NormReferenceMLP, norm_reference
from harness.reference import ReferenceMLP, bn_backward, bn_forward, running_update, softmax_xent
from harness.roofline import measure_rates, total_flops
from harness.specs import ModelSpec, TrainSpec

Params = dict[str, np.ndarray]
NATIVE_MOMENTUM = 0.1  # this backend's own defaults (core convention: weight of the new stat)
NATIVE_EPSILON = 1e-5


class NumpyBackend(Backend):
    """float64 NumPy on the CPU: slow, exact, and a reference column in every report."""

    name = "numpy"
    model_features = ("groupnorm", "ghost-batch")  # the float64 references of numerics.ghost

    @classmethod
    def devices(cls) -> list[str]:
        """NumPy runs on the CPU only."""
        return ["cpu"]

    def versions(self) -> dict[str, str]:
        """NumPy's version and the arithmetic's precision."""
        return {"numpy": np.__version__, "dtype": "float64"}

    def build(self, spec: ModelSpec, params: Params | None, seed: int = 0) -> ReferenceMLP:
        """Canonical params, or this backend's native init: Glorot normal kernels, zero biases."""
        if spec.dropout > 0:
            raise ValueError("the numpy backend has no dropout")
        if params is None:
            params = self._native_params(spec, seed)
        return NormReferenceMLP(spec, params, unbiased_running_var=False)

    @staticmethod
    def _native_params(spec: ModelSpec, seed: int) -> Params:
        rng = np.random.default_rng(seed)
        params: Params = {}
        for i, (fan_in, fan_out) in enumerate(spec.layer_sizes()):
            std = np.sqrt(2.0 / (fan_in + fan_out))
            params[f"dense_{i}/kernel"] = rng.normal(0, std, (fan_in, fan_out))
            params[f"dense_{i}/bias"] = np.zeros(fan_out)
        for i, width in enumerate(spec.hidden_sizes if spec.has_norm else ()):
            params[f"norm_{i}/scale"], params[f"norm_{i}/offset"] = np.ones(width), np.zeros(width)
            if spec.norm == "batchnorm":
                params[f"norm_{i}/mean"], params[f"norm_{i}/var"] = np.zeros(width), np.ones(width)
        return params

    def train(self, model: Any, data: TrainData, spec: TrainSpec, order: np.ndarray,
              on_epoch: EpochCallback | None = None) -> list[EpochMetrics]:
        """One optimizer step per batch of ``order``; metrics per epoch."""
        history = []
        for epoch in range(order.shape[0]):
            start = time.perf_counter()
            losses, correct = [], 0
            for idx in order[epoch]:
                loss, logits = model.step(data.x_train[idx], data.y_train[idx], spec,
                                          spec.lr_at(epoch), return_logits=True)
                losses.append(loss)
                correct += int((logits.argmax(1) == data.y_train[idx]).sum())
            seconds = time.perf_counter() - start
            val_loss, val_acc = self.evaluate(model, data.x_val, data.y_val)
            metrics = EpochMetrics(epoch + 1, float(np.mean(losses)), correct / order[epoch].size,
                                   val_loss, val_acc, seconds, spec.lr_at(epoch), np.array(losses))
            history.append(metrics)
            if on_epoch is not None and not on_epoch(metrics):
                break
        return history

    def stepper(self, model: Any, data: TrainData, spec: TrainSpec) -> StepRunner:
        """The steps of :meth:`train` (at the initial lr) without its metrics."""
        def run(order: np.ndarray) -> None:
            for idx in order:
                model.step(data.x_train[idx], data.y_train[idx], spec, spec.lr)
        return run

    def matmul_rates(self, shapes: list[Shape], repeats: int = 5) -> list[float]:
        """FLOP/s of NumPy's ``matmul`` (BLAS) on ``shapes`` in float64, this backend's dtype."""
        rng = np.random.default_rng(0)
        pairs = [(rng.standard_normal((m, k)), rng.standard_normal((k, n))) for m, k, n in shapes]
        outs = [np.empty((a.shape[0], b.shape[1])) for a, b in pairs]

        def run(calls: int) -> None:
            for _ in range(calls):
                for (a, b), out in zip(pairs, outs):
                    np.matmul(a, b, out=out)
        return measure_rates(run, total_flops(shapes), repeats)

    def logits(self, model: Any, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Forward pass; ``training`` uses batch statistics without updating running ones."""
        return model.forward(x, training=training)[0]  # type: ignore[no-any-return]

    def evaluate(self, model: Any, x: np.ndarray, y: np.ndarray,
                 training: bool = False) -> tuple[float, float]:
        """Mean cross-entropy and accuracy."""
        logits = self.logits(model, x, training)
        return softmax_xent(logits, y)[0], float((logits.argmax(1) == y).mean())

    def pre_activations(self, model: Any, x: np.ndarray, layer: int) -> np.ndarray:
        """Eval-mode input of hidden layer ``layer``'s activation."""
        return model.forward(x, training=False)[1][layer]["z"]  # type: ignore[no-any-return]

    def get_params(self, model: Any) -> Params:
        """Canonical layout, float32 as the contract asks."""
        return {k: v.astype(np.float32) for k, v in model.params.items()}

    def set_params(self, model: Any, params: Params) -> None:
        """Load canonical arrays (kept in float64)."""
        model.params = {k: np.asarray(v, np.float64).copy() for k, v in params.items()}

    def norm_apply(self, x: np.ndarray, params: Params, call: NormCall,
                   upstream: np.ndarray) -> BNResult:
        """Ghost-batch BN or GroupNorm once: the float64 reference of the MLP's layer."""
        ref = norm_reference(x, params, upstream, call)
        return BNResult(ref["out"], ref["grad_x"], ref["grad_scale"], ref["grad_offset"],
                        ref["running_mean"], ref["running_var"])

    def loss_and_grads(
        self,
        spec: ModelSpec,
        params: Params,
        x: np.ndarray,
        y: np.ndarray,
        noise: Params | None = None,
    ) -> tuple[float, float, Params]:
        """Train-mode loss, accuracy and gradients at ``params`` (float64; nothing kept)."""
        _probe_spec(spec)
        ref = ReferenceMLP(spec, dict(params), noise=noise)
        loss, logits, grads = ref.loss_and_grads(x, y)
        acc = float((logits.argmax(1) == y).mean())
        return loss, acc, grads

    def batch_statistics(self, spec: ModelSpec, params: Params, x: np.ndarray) -> Params:
        """Per BN layer, the batch mean and biased variance of its input (float64)."""
        _probe_spec(spec)
        _, caches = ReferenceMLP(spec, dict(params)).forward(x, training=True)
        out: Params = {}
        for i, cache in enumerate(caches[:-1]):
            if "bn" in cache:
                out[f"norm_{i}/mean"] = cache["bn"]["mean"]
                out[f"norm_{i}/var"] = cache["bn"]["var"]
        return out

    def batchnorm(self, x: np.ndarray, params: Params, call: BNCall,
                  upstream: np.ndarray) -> BNResult:
        """The hand-written BN once: biased variance everywhere; float64 whatever ``dtype``."""
        if call.dtype != "float32":
            return _unsupported(call.dtype)
        momentum = NATIVE_MOMENTUM if call.momentum is None else call.momentum
        eps = NATIVE_EPSILON if call.epsilon is None else call.epsilon
        x64, g = np.asarray(x, np.float64), np.asarray(upstream, np.float64)
        scale, offset = params["scale"].astype(np.float64), params["offset"].astype(np.float64)
        mean, var = params["mean"].astype(np.float64), params["var"].astype(np.float64)
        if not call.training:
            inv = 1 / np.sqrt(var + eps)
            out = (x64 - mean) * inv * scale + offset
            return BNResult(out, g * inv * scale, (g * (x64 - mean) * inv).sum(0), g.sum(0),
                            mean, var)
        out, cache = bn_forward(x64, scale, offset, eps)
        dx, dscale, doffset = bn_backward(g, cache)
        return BNResult(out, dx, dscale, doffset, running_update(mean, cache["mean"], momentum),
                        running_update(var, cache["var"], momentum))


def _probe_spec(spec: ModelSpec) -> None:
    if spec.norm not in ("none", "batchnorm") or spec.dropout > 0 or spec.ghost_batch > 0:
        raise NotImplementedError(
            "probes support norm none/batchnorm without dropout or ghost batches only"
        )


def _unsupported(dtype: str) -> BNResult:
    empty = np.zeros(0)
    return BNResult(empty, None, None, None, empty, empty, error=f"{dtype} not supported")
