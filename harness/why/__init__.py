"""Why BatchNorm works: the core's own SGD loop and measurements of the research suites.

``noise-injection`` (Santurkar et al. 2018), ``precise-bn`` (Wu & Johnson 2021) and ``bn-only``
(Frankle et al. 2021) need what a backend's ``train`` does not offer: noise drawn by the core
after every BN layer, masks of trainable parameters, gradients at parameters the core chooses
(internal covariate shift, the loss landscape along the gradient) and BN statistics recomputed
after training. They use two optional backend probes, ``loss_and_grads`` and
``batch_statistics`` (docs/backend-contract.md), and do the rest here in NumPy, identically for
every backend: a backend without the probes gets its cells skipped with the reason.
"""
