"""harness: run the same Batch Normalization experiments on PyTorch, Keras and JAX.

The core (this package) never imports a framework; adapters live in ``harness.backends``.
"""

__version__ = "0.1.0"

from harness import _checkout

_checkout.install(__file__)
