"""Keras 3 (TensorFlow), the careful expert's way: ``fit`` with XLA and many steps per call.

``jit_compile=True`` (Keras' ``"auto"`` means no XLA on a CPU) and ``steps_per_execution`` =
the steps of an epoch, so one compiled call runs a whole epoch; the data are a ``tf.data``
pipeline over in-memory tensors, reshuffled every epoch, batches of equal size
(``drop_remainder=True``, as the harness's batch order). No metrics beyond the loss. The epoch
time is what a callback sees between ``on_epoch_begin`` and ``on_epoch_end`` (``fit``'s own
set-up per call is not counted, as the harness's ``train`` set-up is not).
Same MLP as the harness: 784-512-256-10, ReLU, optional BatchNorm before each ReLU (Keras
momentum 0.9 = the harness's 0.1, epsilon 1e-5), SGD lr 0.01 momentum 0.9.

    python baselines/keras_expert.py --batch-size 128 --epochs 3 --bn
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HIDDEN = (512, 256)


def mlp(inputs: int, classes: int, bn: bool) -> keras.Sequential:
    """Dense -> [BatchNormalization] -> ReLU per hidden layer, then a Dense head (logits)."""
    layers: list[Any] = [keras.Input(shape=(inputs,))]
    for width in HIDDEN:
        layers.append(keras.layers.Dense(width))
        if bn:
            layers.append(keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5))
        layers.append(keras.layers.Activation("relu"))
    layers.append(keras.layers.Dense(classes))
    return keras.Sequential(layers)


class EpochTimer(keras.callbacks.Callback):
    """Seconds between ``on_epoch_begin`` and ``on_epoch_end`` of the last epoch; on a GPU
    the end waits for the device's queued work first."""

    def __init__(self, gpu: bool) -> None:
        """``gpu``: wait for the GPU before reading the clock at the end of an epoch."""
        super().__init__()
        self.gpu = gpu

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        """Start the clock."""
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        """Stop the clock once the device is done."""
        if self.gpu:
            tf.test.experimental.sync_devices()
        self.seconds = time.perf_counter() - self.start


def prepare(
    x: np.ndarray, y: np.ndarray, batch_size: int, bn: bool, seed: int = 0, device: str = "cpu"
) -> Callable[[], float]:
    """Build and compile once; the returned function trains one epoch and returns its seconds."""
    keras.utils.set_random_seed(seed)
    place = "/GPU:0" if device == "gpu" else "/CPU:0"
    steps = len(x) // batch_size
    with tf.device(place):
        model = mlp(x.shape[1], int(y.max()) + 1, bn)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.01, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=True,
            steps_per_execution=steps,
        )
    data = (
        tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y.astype(np.int32)))
        .cache()
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    timer = EpochTimer(device == "gpu")

    def epoch() -> float:
        # The dataset reshuffles itself every epoch; fit's own shuffle does not apply to it.
        with tf.device(place):
            model.fit(data, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
        return float(timer.seconds)

    return epoch


def run(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    epochs: int,
    bn: bool,
    seed: int = 0,
    device: str = "cpu",
) -> list[float]:
    """Seconds of each of ``epochs`` epochs (the first includes compilation)."""
    epoch = prepare(x, y, batch_size, bn, seed, device)
    return [epoch() for _ in range(epochs)]


if __name__ == "__main__":
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from _cli import main

    main("keras_expert", run)
