"""Keras 3 adapter for every engine: real Keras layers and optimizers, the engine's fast loop.

One adapter, three registered backends (:mod:`harness.backends.keras`): ``keras`` (TensorFlow),
``keras-jax`` and ``keras-torch``. Keras reads ``KERAS_BACKEND`` once per process, at import; the
worker sets it (``worker_env``) before this module loads. Everything here goes through Keras
(layers, ``keras.ops``, ``keras.device``); what differs per engine (threads, devices, the
compiled epoch, gradients) is in the ``engine_<name>`` module of the engine Keras runs on.
"""

from __future__ import annotations

from harness.backends.keras.environment import ensure_engine

ensure_engine()

import importlib  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any, ClassVar  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

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
from harness.backends.keras import probes  # noqa: E402
from harness.backends.keras.conventions import conventions  # noqa: E402
from harness.backends.keras.gemm import matmul_rates  # noqa: E402
from harness.backends.keras.loop import (  # noqa: E402
    CompiledLoop,
    compiled_loop,
    count_correct,
    cross_entropy,
)
from harness.backends.keras.model import (  # noqa: E402
    build_mlp,
    forward,
    get_params,
    keras_momentum,
    norm_layers,
    pre_activations,
    set_params,
)
from harness.backends.keras.norms import norm_apply  # noqa: E402
from harness.backends.keras.trace import trace_step  # noqa: E402
from harness.specs import ModelSpec, TrainSpec  # noqa: E402

Params = dict[str, np.ndarray]
EVAL_CHUNK = 8192
ENGINE: ModuleType = importlib.import_module(
    f"harness.backends.keras.engine_{keras.backend.backend()}"
)
BN_KEYS = (("gamma", "scale"), ("beta", "offset"), ("moving_mean", "mean"))
BN_KEYS += (("moving_variance", "var"),)


def _bn_layer(call: BNCall, width: int) -> keras.layers.BatchNormalization:
    kwargs: dict[str, Any] = {"renorm": True} if call.variant == "renorm" else {}
    if call.variant not in ("", "renorm"):
        raise NotImplementedError(f"no BN variant '{call.variant}'")
    if call.momentum is not None:
        kwargs["momentum"] = keras_momentum(call.momentum)
    if call.epsilon is not None:
        kwargs["epsilon"] = call.epsilon
    bn = keras.layers.BatchNormalization(dtype=call.dtype, **kwargs)
    bn.build((None, width))
    return bn


def _np32(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(ops.convert_to_numpy(value), np.float32)


class KerasBackend(Backend):
    """Keras ``Dense``/``BatchNormalization`` MLP trained by the engine's compiled epoch."""

    name: ClassVar[str] = "keras"
    engine: ClassVar[str] = "tensorflow"
    model_features: ClassVar[tuple[str, ...]] = ("groupnorm", "ghost-batch")

    def __init__(self, device: str = "cpu", threads: int = 0) -> None:
        running = keras.backend.backend()
        if running != self.engine:
            raise RuntimeError(
                f"backend '{self.name}' needs Keras on {self.engine}, but this process imported "
                f"keras on {running} (KERAS_BACKEND is read once per process): run it in its own "
                f"worker (harness run/check do) with KERAS_BACKEND={self.engine}"
            )
        super().__init__(device, threads)
        self.place = "gpu:0" if device == "gpu" else "cpu:0"
        self.thread_note = ENGINE.configure(threads, device)
        self.loops: dict[str, CompiledLoop] = {}  # compiled training loops, one per config

    @classmethod
    def devices(cls) -> list[str]:
        """CPU, plus GPU when the engine sees one."""
        return list(ENGINE.devices())

    def versions(self) -> dict[str, str]:
        """keras version, the engine it runs on and the engine's settings (threads, TF32)."""
        return {
            "keras": keras.__version__,
            "keras_backend": keras.backend.backend(),
            "engine": self.engine,
            **ENGINE.versions(self.device),
            "train_loop": ENGINE.TRAIN_LOOP,
            "threads_setting": self.thread_note,
            "device": self.place,
        }

    def synchronize(self) -> None:
        """Wait for queued device work (GPU execution is asynchronous); a no-op on CPU."""
        ENGINE.synchronize(self.device)

    def build(self, spec: ModelSpec, params: Params | None, seed: int = 0) -> keras.Model:
        """Canonical params when given, else Keras' own default initializers (seeded)."""
        self.check_device()
        keras.utils.set_random_seed(seed)
        with keras.device(self.place):
            model = build_mlp(spec)
            if params is not None:
                set_params(model, params)
        model.harness_spec = spec  # what the compiled loop's stand-in is built from
        return model

    def conventions(self, spec: ModelSpec, train: TrainSpec) -> dict[str, Any]:
        """Effective conventions, Keras's defaults read from its signatures."""
        return conventions(spec, train)

    def bn_variants(self) -> tuple[str, ...]:
        """Batch renormalization (``BatchNormalization(renorm=True)``), on every engine; on
        TensorFlow also its fused op (``FusedBatchNormV3``, :mod:`.fused`)."""
        return ("renorm", "fused") if self.engine == "tensorflow" else ("renorm",)

    def get_params(self, model: Any) -> Params:
        """Canonical layout (Keras kernels are already (in, out))."""
        return get_params(model)

    def set_params(self, model: Any, params: Params) -> None:
        """Load canonical arrays."""
        set_params(model, params)

    def _tensors(self, *arrays: np.ndarray) -> list[Any]:
        with keras.device(self.place):
            return [ops.convert_to_tensor(a) for a in arrays]

    def start_training(
        self, model: Any, data: TrainData, spec: TrainSpec, order: np.ndarray
    ) -> EpochLoop:
        """SGD/Adam over the given batch order; one compiled call per epoch; a fresh optimizer."""
        with keras.device(self.place):
            loop = self._loop(model, spec)
            loop.start(model)
        x, y, orders = self._tensors(
            np.asarray(data.x_train, np.float32),
            np.asarray(data.y_train, np.int32),
            np.asarray(order, np.int32),
        )

        def run(epoch: int, lr: float) -> tuple[np.ndarray, float]:
            loop.opt.learning_rate.assign(lr)  # a variable: no retrace
            with keras.device(self.place):
                return loop.run(x, y, orders[epoch])  # waits for the device

        return EpochLoop(run, lambda: loop.finish(model))

    def _loop(self, model: keras.Model, spec: TrainSpec) -> CompiledLoop:
        """The cached compiled loop for ``model``'s architecture and ``spec``'s optimizer."""
        arch: ModelSpec = model.harness_spec
        return compiled_loop(self.loops, model, spec, ENGINE.make_epoch_fn, lambda: build_mlp(arch))

    def stepper(self, model: Any, data: TrainData, spec: TrainSpec) -> StepRunner:
        """The compiled loop of :meth:`train` without per-epoch metrics (benchmarks).

        Trains the cached loop's stand-in model; ``model`` itself is not updated.
        """
        with keras.device(self.place):
            loop = self._loop(model, spec)
            loop.start(model)
        x, y = self._tensors(
            np.asarray(data.x_train, np.float32), np.asarray(data.y_train, np.int32)
        )
        return loop.stepper(x, y, self.place)

    def matmul_rates(self, shapes: list[Shape], repeats: int = 5) -> list[float]:
        """FLOP/s of ``keras.ops.matmul`` (float32, compiled as the training loop) on ``shapes``."""
        return matmul_rates(shapes, repeats, self.place, ENGINE)

    def _forward(self, model: keras.Model, x: np.ndarray, training: bool) -> Any:
        """Logits; ``training`` uses batch statistics of all of ``x`` and restores moving stats."""
        with keras.device(self.place), ENGINE.inference():
            xt = ops.convert_to_tensor(np.asarray(x, np.float32))
            if not training:
                chunks = range(0, int(xt.shape[0]), EVAL_CHUNK)
                parts = [forward(model, xt[i : i + EVAL_CHUNK], False) for i in chunks]
                return ops.concatenate(parts, 0)
            saved = [
                (v, ops.convert_to_numpy(v.value))
                for n in norm_layers(model)
                for v in n.non_trainable_variables
            ]
            out = forward(model, xt, True, norms_only=True)
            for var, value in saved:
                var.assign(value)
            return out

    def logits(self, model: Any, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Model outputs; ``training`` normalizes with batch statistics, updating nothing."""
        return np.asarray(ops.convert_to_numpy(self._forward(model, x, training)))

    def loss_and_grads(
        self,
        spec: ModelSpec,
        params: Params,
        x: np.ndarray,
        y: np.ndarray,
        noise: Params | None = None,
    ) -> tuple[float, float, Params]:
        """Train-mode loss, accuracy and gradients at canonical ``params`` (see probes)."""
        with keras.device(self.place):
            return probes.loss_and_grads(spec, params, x, y, noise, ENGINE)

    def batch_statistics(self, spec: ModelSpec, params: Params, x: np.ndarray) -> Params:
        """Each BN layer's batch mean and biased variance on ``x`` (see probes)."""
        with keras.device(self.place), ENGINE.inference():
            return probes.batch_statistics(spec, params, x)

    def pre_activations(self, model: Any, x: np.ndarray, layer: int) -> np.ndarray:
        """Eval-mode input of hidden layer ``layer``'s activation."""
        with keras.device(self.place), ENGINE.inference():
            xt = ops.convert_to_tensor(np.asarray(x, np.float32))
            return np.asarray(ops.convert_to_numpy(pre_activations(model, xt, layer)))

    def trace_step(
        self,
        spec: ModelSpec,
        params: Params,
        x: np.ndarray,
        y: np.ndarray,
        native: bool = False,
        mutate: str = "",
    ) -> dict[str, np.ndarray]:
        """One traced training step through the engine's autodiff, see the contract."""
        with keras.device(self.place):
            return trace_step(ENGINE, spec, params, x, y, native, mutate)

    def evaluate(
        self, model: Any, x: np.ndarray, y: np.ndarray, training: bool = False
    ) -> tuple[float, float]:
        """Mean cross-entropy and accuracy in eval (or train) mode."""
        logits = self._forward(model, x, training)
        with keras.device(self.place), ENGINE.inference():
            yt = ops.convert_to_tensor(np.asarray(y, np.int32))
            loss = float(ops.convert_to_numpy(cross_entropy(yt, logits)))
            acc = float(ops.convert_to_numpy(count_correct(yt, logits))) / max(1, len(y))
        return loss, acc

    def norm_apply(
        self, x: np.ndarray, params: Params, call: NormCall, upstream: np.ndarray
    ) -> BNResult:
        """The MLP's ghost-batch BN or ``GroupNormalization`` once (:mod:`.norms`)."""
        with keras.device(self.place):
            return norm_apply(x, params, call, upstream, ENGINE.grads)

    def batchnorm(
        self, x: np.ndarray, params: Params, call: BNCall, upstream: np.ndarray
    ) -> BNResult:
        """One ``keras.layers.BatchNormalization`` forward/backward in the requested mode/dtype."""
        try:
            with keras.device(self.place):
                if call.variant == "fused" and self.engine == "tensorflow":
                    from harness.backends.keras.fused import fused_batchnorm  # TF engine only

                    return fused_batchnorm(x, params, call, upstream)
                return self._batchnorm(x, params, call, upstream)
        except (TypeError, ValueError, NotImplementedError, RuntimeError, *ENGINE.ERRORS) as exc:
            empty = np.zeros(0, np.float32)
            return BNResult(empty, None, None, None, empty, empty, f"{type(exc).__name__}: {exc}")

    def _batchnorm(
        self, x: np.ndarray, params: Params, call: BNCall, upstream: np.ndarray
    ) -> BNResult:
        """The layer through ``stateless_call``, differentiated by the engine's autodiff."""
        bn = _bn_layer(call, x.shape[1])
        value = {
            id(getattr(bn, attr)): ops.convert_to_tensor(params[key], dtype=call.dtype)
            for attr, key in BN_KEYS
        }
        # renorm adds its own statistics (renorm_mean, renorm_stddev): they keep their init
        stats = [value.get(id(v), v.value) for v in bn.non_trainable_variables]
        up = ops.convert_to_tensor(upstream, dtype=call.dtype)

        def target(xt: Any, gamma: Any, beta: Any) -> tuple[Any, tuple[Any, ...]]:
            trainable = {id(bn.gamma): gamma, id(bn.beta): beta}
            out, new = bn.stateless_call(
                [trainable[id(v)] for v in bn.trainable_variables],
                stats,
                xt,
                training=call.training,
            )
            moved = dict(zip((id(v) for v in bn.non_trainable_variables), new, strict=True))
            aux = (out, moved[id(bn.moving_mean)], moved[id(bn.moving_variance)])
            return ops.sum(out * up), aux

        args = (ops.convert_to_tensor(x, dtype=call.dtype), value[id(bn.gamma)])
        (out, mean, var), (gx, gs, go) = ENGINE.grads(target, (*args, value[id(bn.beta)]))
        return BNResult(
            out=_np32(out),  # type: ignore[arg-type]
            grad_x=_np32(gx),
            grad_scale=_np32(gs),
            grad_offset=_np32(go),
            running_mean=_np32(mean),  # type: ignore[arg-type]
            running_var=_np32(var),  # type: ignore[arg-type]
        )


class KerasJaxBackend(KerasBackend):
    """Keras on JAX: the same layers and optimizer, one jitted ``lax.scan`` per epoch."""

    name: ClassVar[str] = "keras-jax"
    engine: ClassVar[str] = "jax"


class KerasTorchBackend(KerasBackend):
    """Keras on torch: the same layers and optimizer, eager steps with torch autograd."""

    name: ClassVar[str] = "keras-torch"
    engine: ClassVar[str] = "torch"
