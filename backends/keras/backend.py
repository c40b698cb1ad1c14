"""Keras 3 (TensorFlow) adapter: real Keras layers and optimizers, one XLA-compiled loop per epoch.

The training loop itself is in :mod:`harness.backends.keras.loop`; this module holds the
:class:`~harness.backend.Backend` contract: device and thread setup, build, parameters,
evaluation and the single-layer BN probe of the numerics suite.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from harness.backend import (  # noqa: E402
    Backend,
    BNCall,
    BNResult,
    EpochCallback,
    EpochMetrics,
    Shape,
    StepRunner,
    TrainData,
)
from harness.backends.keras.gemm import matmul_rates  # noqa: E402
from harness.backends.keras.loop import (  # noqa: E402
    JIT_COMPILE,
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
from harness.specs import ModelSpec, TrainSpec  # noqa: E402

Params = dict[str, np.ndarray]
EVAL_CHUNK = 8192
INTER_OP_THREADS = 1  # an MLP step is a chain of dependent ops; a second pool only oversubscribes

tf.get_logger().setLevel("ERROR")


def _bn_layer(call: BNCall, width: int) -> keras.layers.BatchNormalization:
    kwargs: dict[str, float] = {}
    if call.momentum is not None:
        kwargs["momentum"] = keras_momentum(call.momentum)
    if call.epsilon is not None:
        kwargs["epsilon"] = call.epsilon
    bn = keras.layers.BatchNormalization(dtype=call.dtype, **kwargs)
    bn.build((None, width))
    return bn


def _np32(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(tf.cast(value, tf.float32).numpy())


class KerasBackend(Backend):
    """Keras ``Dense``/``BatchNormalization`` MLP trained by a compiled per-epoch loop."""

    name = "keras"

    def __init__(self, device: str = "cpu", threads: int = 0) -> None:
        super().__init__(device, threads)
        self.tf_device = "/GPU:0" if device == "gpu" else "/CPU:0"
        self.thread_note = self._configure(threads)
        self.loops: dict[str, CompiledLoop] = {}  # compiled training loops, one per config

    @staticmethod
    def _configure(threads: int) -> str:
        """Threads, TF32 off and GPU memory growth; these only work before TF's runtime starts."""
        try:
            if threads > 0:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
            for gpu in tf.config.list_physical_devices("GPU"):
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError as exc:  # runtime already initialized (several backends, one process)
            return f"not applied: {exc}"
        finally:
            # Full float32 everywhere so backends are comparable; stated in versions().
            tf.config.experimental.enable_tensor_float_32_execution(False)
        return "applied"

    @classmethod
    def devices(cls) -> list[str]:
        """CPU, plus GPU when TensorFlow sees one."""
        return ["cpu", "gpu"] if tf.config.list_physical_devices("GPU") else ["cpu"]

    def versions(self) -> dict[str, str]:
        """keras/tensorflow versions, XLA, threads, TF32 and device name."""
        threading = tf.config.threading
        info = {
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "keras_backend": keras.backend.backend(),
            "jit_compile": str(JIT_COMPILE),
            "train_loop": "one tf.function per epoch (while loop over the batch order)",
            "intra_op_threads": str(threading.get_intra_op_parallelism_threads()),
            "inter_op_threads": str(threading.get_inter_op_parallelism_threads()),
            "threads_setting": self.thread_note,
            "tf32": str(tf.config.experimental.tensor_float_32_execution_enabled()),
            "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
            "device": self.tf_device,
        }
        gpus = tf.config.list_physical_devices("GPU")
        if self.device == "gpu" and gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            info["gpu"] = str(details.get("device_name", gpus[0].name))
            info["memory_growth"] = str(tf.config.experimental.get_memory_growth(gpus[0]))
        return info

    def synchronize(self) -> None:
        """Wait for queued device work (GPU execution is asynchronous); a no-op on CPU."""
        if self.device == "gpu":
            tf.test.experimental.sync_devices()

    def build(self, spec: ModelSpec, params: Params | None, seed: int = 0) -> keras.Model:
        """Canonical params when given, else Keras' own default initializers (seeded)."""
        self.check_device()
        keras.utils.set_random_seed(seed)
        with tf.device(self.tf_device):
            model = build_mlp(spec)
            if params is not None:
                set_params(model, params)
        return model

    def get_params(self, model: Any) -> Params:
        """Canonical layout (Keras kernels are already (in, out))."""
        return get_params(model)

    def set_params(self, model: Any, params: Params) -> None:
        """Load canonical arrays."""
        set_params(model, params)

    def train(
        self,
        model: Any,
        data: TrainData,
        spec: TrainSpec,
        order: np.ndarray,
        on_epoch: EpochCallback | None = None,
    ) -> list[EpochMetrics]:
        """SGD/Adam over the given batch order; one compiled call per epoch."""
        with tf.device(self.tf_device):
            loop = compiled_loop(self.loops, model, spec)
            tensors = (
                tf.constant(np.asarray(data.x_train, np.float32)),
                tf.constant(np.asarray(data.y_train, np.int32)),
                tf.constant(np.asarray(order, np.int32)),
            )
            loop.start(model)
            return self._epochs(model, data, spec, loop, tensors, on_epoch)

    def stepper(self, model: Any, data: TrainData, spec: TrainSpec) -> StepRunner:
        """The compiled loop of :meth:`train` without per-epoch metrics (benchmarks).

        Trains the cached loop's stand-in model; ``model`` itself is not updated.
        """
        with tf.device(self.tf_device):
            loop = compiled_loop(self.loops, model, spec)
            loop.start(model)
            return loop.stepper(data.x_train, data.y_train, self.tf_device)

    def matmul_rates(self, shapes: list[Shape], repeats: int = 5) -> list[float]:
        """FLOP/s of ``tf.matmul`` (float32, XLA as the training loop) on ``shapes``."""
        return matmul_rates(shapes, repeats, self.tf_device)

    def _epochs(
        self,
        model: keras.Model,
        data: TrainData,
        spec: TrainSpec,
        loop: CompiledLoop,
        tensors: tuple[tf.Tensor, tf.Tensor, tf.Tensor],
        on_epoch: EpochCallback | None,
    ) -> list[EpochMetrics]:
        x, y, orders = tensors
        epochs, steps, batch = (int(n) for n in orders.shape)
        samples = max(1, steps * batch)
        history: list[EpochMetrics] = []
        for epoch in range(epochs):
            lr = spec.lr_at(epoch)
            loop.opt.learning_rate.assign(lr)  # a variable: no retrace
            epoch_order = orders[epoch]
            start = time.perf_counter()
            losses, correct = loop.run(x, y, epoch_order)
            losses_np = losses.numpy()  # waits for the device
            seconds = time.perf_counter() - start
            loop.finish(model)
            metrics = self._epoch_metrics(model, data, epoch, losses_np, int(correct) / samples)
            metrics.time_s, metrics.lr = seconds, lr
            history.append(metrics)
            if on_epoch is not None and not on_epoch(metrics):
                break
        return history

    def _epoch_metrics(
        self, model: keras.Model, data: TrainData, epoch: int, losses: np.ndarray, acc: float
    ) -> EpochMetrics:
        start = time.perf_counter()
        val_loss, val_acc = self.evaluate(model, data.x_val, data.y_val)
        return EpochMetrics(
            epoch=epoch + 1,
            train_loss=float(np.mean(losses)) if losses.size else float("nan"),
            train_acc=acc,
            val_loss=val_loss,
            val_acc=val_acc,
            time_s=0.0,
            step_losses=losses,
            extra={"eval_s": time.perf_counter() - start},
        )

    def _forward(self, model: keras.Model, x: np.ndarray, training: bool) -> tf.Tensor:
        """Logits; ``training`` uses batch statistics of all of ``x`` and restores moving stats."""
        with tf.device(self.tf_device):
            xt = tf.constant(np.asarray(x, np.float32))
            if not training:
                chunks = range(0, int(xt.shape[0]), EVAL_CHUNK)
                return tf.concat([forward(model, xt[i : i + EVAL_CHUNK], False) for i in chunks], 0)
            saved = [(v, v.numpy()) for n in norm_layers(model) for v in n.non_trainable_variables]
            out = forward(model, xt, True, norms_only=True)
            for var, value in saved:
                var.assign(value)
            return out

    def logits(self, model: Any, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Model outputs; ``training`` normalizes with batch statistics, updating nothing."""
        return np.asarray(self._forward(model, x, training).numpy())

    def pre_activations(self, model: Any, x: np.ndarray, layer: int) -> np.ndarray:
        """Eval-mode input of hidden layer ``layer``'s activation."""
        with tf.device(self.tf_device):
            xt = tf.constant(np.asarray(x, np.float32))
            return np.asarray(pre_activations(model, xt, layer).numpy())

    def evaluate(
        self, model: Any, x: np.ndarray, y: np.ndarray, training: bool = False
    ) -> tuple[float, float]:
        """Mean cross-entropy and accuracy in eval (or train) mode."""
        logits = self._forward(model, x, training)
        with tf.device(self.tf_device):
            yt = tf.constant(np.asarray(y, np.int32))
            loss = float(cross_entropy(yt, logits))
            acc = float(count_correct(yt, logits)) / max(1, len(y))
        return loss, acc

    def batchnorm(
        self, x: np.ndarray, params: Params, call: BNCall, upstream: np.ndarray
    ) -> BNResult:
        """One ``keras.layers.BatchNormalization`` forward/backward in the requested mode/dtype."""
        try:
            with tf.device(self.tf_device):
                return self._batchnorm(x, params, call, upstream)
        except (tf.errors.OpError, TypeError, ValueError, NotImplementedError) as exc:
            empty = np.zeros(0, np.float32)
            return BNResult(empty, None, None, None, empty, empty, f"{type(exc).__name__}: {exc}")

    def _batchnorm(
        self, x: np.ndarray, params: Params, call: BNCall, upstream: np.ndarray
    ) -> BNResult:
        bn = _bn_layer(call, x.shape[1])
        for var, key in (
            (bn.gamma, "scale"),
            (bn.beta, "offset"),
            (bn.moving_mean, "mean"),
            (bn.moving_variance, "var"),
        ):
            var.assign(tf.cast(params[key], var.dtype))
        xt = tf.constant(x, dtype=call.dtype)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out = bn(xt, training=call.training)
            target = tf.reduce_sum(out * tf.constant(upstream, dtype=out.dtype))
        gx, gs, go = tape.gradient(target, [xt, bn.gamma, bn.beta])
        return BNResult(
            out=_np32(out),  # type: ignore[arg-type]
            grad_x=_np32(gx),
            grad_scale=_np32(gs),
            grad_offset=_np32(go),
            running_mean=_np32(bn.moving_mean),  # type: ignore[arg-type]
            running_var=_np32(bn.moving_variance),  # type: ignore[arg-type]
        )
