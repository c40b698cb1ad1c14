"""JAX adapter: Flax linen ``nn.Dense``/``nn.BatchNorm`` MLP trained with optax.

Flax linen rather than NNX: linen is functional, so ``params``, ``batch_stats`` and the optimizer
state are explicit pytrees that thread straight through one ``jax.jit`` + ``jax.lax.scan`` per
epoch (``mutable=['batch_stats']`` returns the new running statistics), with nothing to split or
merge. BatchNorm uses the two-pass variance (``use_fast_variance=False``, see
:mod:`harness.backends.jax.model`). Epoch times are read after ``block_until_ready``; the first
epoch includes compilation.
"""

from __future__ import annotations

import os

# Before jax is imported (it reads this at GPU start): grow GPU memory instead of taking 75%.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from typing import Any  # noqa: E402

import flax  # noqa: E402
import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxlib  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from harness.backend import (  # noqa: E402
    Backend,
    BNCall,
    BNResult,
    EpochLoop,
    NormCall,
    Shape,
    StepRunner,
    TrainData,
)
from harness.backends.jax import probes  # noqa: E402
from harness.backends.jax.conventions import conventions  # noqa: E402
from harness.backends.jax.environment import jax_device, limit_threads  # noqa: E402
from harness.backends.jax.gemm import matmul_rates  # noqa: E402
from harness.backends.jax.loop import (  # noqa: E402
    cached_epoch,
    forward_fns,
    make_stepper,
    set_learning_rate,
    step_key,
)
from harness.backends.jax.model import (  # noqa: E402
    MLP,
    USE_FAST_VARIANCE,
    JaxModel,
    from_canonical,
    native_variables,
    to_canonical,
    variable_shapes,
)
from harness.backends.jax.norms import norm_apply  # noqa: E402
from harness.backends.jax.trace import trace_step  # noqa: E402
from harness.specs import ModelSpec, TrainSpec  # noqa: E402

Params = dict[str, np.ndarray]
FULL_FP32 = ("highest", "float32", "HIGHEST")
DTYPES = {"float32": jnp.float32, "float16": jnp.float16, "bfloat16": jnp.bfloat16}


def _bn_layer(call: BNCall, dtype: Any) -> nn.BatchNorm:
    """Flax's BatchNorm for one call: ``None`` momentum/epsilon keep Flax's defaults (0.99, 1e-5).

    A native call (both ``None``) also keeps Flax's default variance formula (the fast
    ``E[x^2]-E[x]^2``), so the audit measures what a Flax user gets; otherwise the adapter's
    choice, :data:`USE_FAST_VARIANCE`, applies.
    """
    kwargs: dict[str, Any] = {}
    if call.momentum is not None:
        kwargs["momentum"] = 1.0 - call.momentum
    if call.epsilon is not None:
        kwargs["epsilon"] = call.epsilon
    if kwargs:
        kwargs["use_fast_variance"] = USE_FAST_VARIANCE
    return nn.BatchNorm(
        use_running_average=not call.training, dtype=dtype, param_dtype=dtype, **kwargs
    )


def _np32(value: Any) -> np.ndarray:
    return np.array(value, dtype=np.float32)


class JaxBackend(Backend):
    """Flax linen MLP, optax SGD/Adam, one ``lax.scan`` per epoch inside ``jax.jit``."""

    name = "jax"
    model_features = ("groupnorm", "ghost-batch")

    def __init__(self, device: str = "cpu", threads: int = 0) -> None:
        super().__init__(device, threads)
        self.thread_note = limit_threads(threads)
        if device == "gpu":
            # Full float32 matmuls (no TF32) so backends are comparable; stated in versions().
            jax.config.update("jax_default_matmul_precision", "highest")
        self.jax_device = jax_device(device)
        jax.config.update("jax_default_device", self.jax_device)

    @classmethod
    def devices(cls) -> list[str]:
        """CPU, plus GPU when a JAX GPU backend is usable."""
        try:
            return ["cpu", "gpu"] if jax.devices("gpu") else ["cpu"]
        except RuntimeError:
            return ["cpu"]

    def versions(self) -> dict[str, str]:
        """Versions, BN variance formula, matmul precision, device and thread settings."""
        precision = jax.config.jax_default_matmul_precision
        return {
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "use_fast_variance": str(USE_FAST_VARIANCE),
            "matmul_precision": str(precision or "default"),
            "tf32": str(self.jax_device.platform == "gpu" and precision not in FULL_FP32),
            "device_kind": self.jax_device.device_kind,
            "platform": self.jax_device.platform,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "xla_threads": self.thread_note,
            "intra_op_threads": str(self.threads or os.cpu_count()),
            "x64": str(jax.config.jax_enable_x64),
            "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "true"),
            "train_loop": "one jitted lax.scan per epoch, compiled once per configuration",
        }

    def _put(self, value: np.ndarray, dtype: Any) -> jax.Array:
        return jax.device_put(np.asarray(value, dtype=dtype), self.jax_device)

    def build(self, spec: ModelSpec, params: Params | None, seed: int = 0) -> JaxModel:
        """Canonical params when given, else Flax's own default initializers from ``seed``."""
        self.check_device()
        module = MLP(spec)
        if params is None:
            flax_params, stats = jax.device_put(native_variables(module, seed), self.jax_device)
            return JaxModel(spec, module, flax_params, stats)
        model = JaxModel(spec, module, *variable_shapes(module))
        self.set_params(model, params)
        return model

    def conventions(self, spec: ModelSpec, train: TrainSpec) -> dict[str, Any]:
        """Effective conventions, Flax's and optax's defaults read from their signatures."""
        return conventions(spec, train)

    def get_params(self, model: Any) -> Params:
        """Canonical layout (float32 NumPy copies)."""
        return to_canonical(model.params, model.batch_stats)

    def set_params(self, model: Any, params: Params) -> None:
        """Load canonical arrays (shapes checked against the model)."""
        model.params, model.batch_stats = from_canonical(
            params, model.params, model.batch_stats, self.jax_device
        )

    def start_training(
        self, model: Any, data: TrainData, spec: TrainSpec, order: np.ndarray
    ) -> EpochLoop:
        """SGD/Adam over the given batch order, one jitted ``lax.scan`` per epoch."""
        x, y = self._put(data.x_train, np.float32), self._put(data.y_train, np.int32)
        orders = [self._put(epoch_order, np.int32) for epoch_order in order]
        epoch_fn, state = self._start(model, spec)

        def run(epoch: int, lr: float) -> tuple[np.ndarray, float]:
            nonlocal state
            set_learning_rate(state[2], lr, self.jax_device)
            state, losses, correct = jax.block_until_ready(epoch_fn(state, x, y, orders[epoch]))
            return np.asarray(losses), float(correct)

        def finish() -> None:
            model.params, model.batch_stats, model.opt_state = state[:3]

        return EpochLoop(run, finish)

    def _start(self, model: JaxModel, spec: TrainSpec) -> tuple[Any, Any]:
        """The cached jitted epoch and a fresh training state on the device."""
        epoch_fn, tx = cached_epoch(model.spec, step_key(spec))
        key = jax.random.PRNGKey(spec.seed)
        # Everything committed to the device: mixed committed/uncommitted inputs would make the
        # second epoch compile again (its inputs are the first epoch's committed outputs).
        state = jax.device_put(
            (model.params, model.batch_stats, tx.init(model.params), key), self.jax_device
        )
        set_learning_rate(state[2], spec.lr, self.jax_device)
        return epoch_fn, state

    def stepper(self, model: Any, data: TrainData, spec: TrainSpec) -> StepRunner:
        """The jitted epoch of :meth:`train` without per-epoch metrics (benchmarks)."""
        x, y = self._put(data.x_train, np.float32), self._put(data.y_train, np.int32)
        epoch_fn, state = self._start(model, spec)
        return make_stepper(epoch_fn, state, (x, y), lambda o: self._put(o, np.int32), model)

    def matmul_rates(self, shapes: list[Shape], repeats: int = 5) -> list[float]:
        """FLOP/s of XLA's float32 matmul (jitted, this device) on ``shapes``."""
        return matmul_rates(shapes, repeats, self.jax_device)

    def logits(self, model: Any, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Model outputs; ``training`` normalizes with batch statistics, updating nothing."""
        logits_fn, _ = forward_fns(model.spec)
        out = logits_fn(model.variables, self._put(x, np.float32), training=training)
        return np.array(out, dtype=np.float32)

    def loss_and_grads(
        self,
        spec: ModelSpec,
        params: Params,
        x: np.ndarray,
        y: np.ndarray,
        noise: Params | None = None,
    ) -> tuple[float, float, Params]:
        """Train-mode loss, accuracy and gradients at canonical ``params`` (see probes)."""
        return probes.loss_and_grads(spec, params, x, y, noise)

    def batch_statistics(self, spec: ModelSpec, params: Params, x: np.ndarray) -> Params:
        """Each BN layer's batch mean and biased variance on ``x`` (see probes)."""
        return probes.batch_statistics(spec, params, x)

    def pre_activations(self, model: Any, x: np.ndarray, layer: int) -> np.ndarray:
        """Eval-mode input of hidden layer ``layer``'s activation, via Flax's captured outputs.

        It is the output of ``norm_{layer}`` when BN precedes the activation, else of
        ``dense_{layer}``.
        """
        spec = model.spec
        name = f"norm_{layer}" if spec.has_norm and spec.placement == "before" else f"dense_{layer}"
        _, state = model.module.apply(
            model.variables,
            self._put(x, np.float32),
            use_running_average=True,
            deterministic=True,
            capture_intermediates=lambda mdl, _: mdl.name == name,
            mutable=["intermediates"],
        )
        return _np32(state["intermediates"][name]["__call__"][0])

    def evaluate(
        self, model: Any, x: np.ndarray, y: np.ndarray, training: bool = False
    ) -> tuple[float, float]:
        """Mean cross-entropy and accuracy in eval (or train) mode."""
        _, metrics_fn = forward_fns(model.spec)
        xs, ys = self._put(x, np.float32), self._put(y, np.int32)
        loss, acc = metrics_fn(model.variables, xs, ys, training=training)
        return float(loss), float(acc)

    def trace_step(
        self,
        spec: ModelSpec,
        params: Params,
        x: np.ndarray,
        y: np.ndarray,
        native: bool = False,
        mutate: str = "",
    ) -> dict[str, np.ndarray]:
        """One traced training step (``Module.perturb`` + ``jax.grad``), see the contract."""
        return trace_step(spec, params, x, y, self.jax_device, native, mutate)

    def norm_apply(
        self, x: np.ndarray, params: Params, call: NormCall, upstream: np.ndarray
    ) -> BNResult:
        """The MLP's ghost-batch BN or ``nn.GroupNorm`` once (:mod:`.norms`)."""
        return norm_apply(x, params, call, upstream, lambda a: self._put(a, np.float32))

    def batchnorm(
        self, x: np.ndarray, params: Params, call: BNCall, upstream: np.ndarray
    ) -> BNResult:
        """One ``nn.BatchNorm`` forward/backward (``jax.vjp``) in the requested mode and dtype."""
        try:
            return self._batchnorm(x, params, call, upstream)
        except Exception as exc:  # an unsupported dtype/mode is a finding, not a crash
            empty = np.empty(0, np.float32)
            return BNResult(empty, None, None, None, empty, empty, f"{type(exc).__name__}: {exc}")

    def _batchnorm(
        self, x: np.ndarray, params: Params, call: BNCall, upstream: np.ndarray
    ) -> BNResult:
        dtype = DTYPES[call.dtype]
        bn = _bn_layer(call, dtype)
        # Flax keeps running statistics in float32 whatever the layer dtype; so do we.
        stats = {
            "mean": self._put(params["mean"], np.float32),
            "var": self._put(params["var"], np.float32),
        }

        def apply(xv: jax.Array, scale: jax.Array, bias: jax.Array) -> Any:
            variables = {"params": {"scale": scale, "bias": bias}, "batch_stats": stats}
            return bn.apply(variables, xv, mutable=["batch_stats"])

        primals = (
            self._put(x, dtype),
            self._put(params["scale"], dtype),
            self._put(params["offset"], dtype),
        )
        out, vjp, updated = jax.vjp(apply, *primals, has_aux=True)
        grad_x, grad_scale, grad_offset = vjp(self._put(upstream, out.dtype))
        return BNResult(
            out=_np32(out),
            grad_x=_np32(grad_x),
            grad_scale=_np32(grad_scale),
            grad_offset=_np32(grad_offset),
            running_mean=_np32(updated["batch_stats"]["mean"]),
            running_var=_np32(updated["batch_stats"]["var"]),
        )
