"""Fashion-MNIST (Zalando): 60,000 train / 10,000 test 28x28 grey images of 10 kinds of clothing.

The same four IDX files as MNIST, under the same names, so they live in their own
``fashion-mnist/`` folder (Keras' cache, Debian's ``dataset-fashion-mnist``) and are checked
against their own entries of the checksum table. Trains on the 60,000 training images and
validates on the official 10,000 test images (``val_fraction`` does not apply).
"""

from __future__ import annotations

from harness.data import Dataset
from harness.data.locate import locate
from harness.data.mnist import read_mnist
from harness.data.preprocess import DATA_SEED, finish, permutation, to_unit
from harness.specs import DataSpec

NAME = "fashion-mnist"


def load_fashion_mnist(spec: DataSpec) -> Dataset:
    """``fashion-mnist``: 60,000 training images, the official 10,000 test images as validation."""
    found = locate(NAME, spec.data_dir)
    x_train, y_train, x_test, y_test = read_mnist(found, dataset=NAME)
    train, val = permutation(len(y_train)), permutation(len(y_test), DATA_SEED + 1)
    split = (to_unit(x_train[train]), y_train[train], to_unit(x_test[val]), y_test[val])
    return finish(NAME, split, spec, source=found.describe())
