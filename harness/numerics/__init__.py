"""The BatchNorm numerics audit (suite ``bn-numerics``): every backend's own BN layer vs float64.

:mod:`~harness.numerics.reference` is the float64 NumPy reference of one BN layer,
:mod:`~harness.numerics.cases` the seeded inputs and tolerances,
:mod:`~harness.numerics.conventions` infers each framework's momentum, variance and epsilon
conventions from its outputs, :mod:`~harness.tasks.numerics` runs everything inside a worker and
:mod:`~harness.numerics.analysis` turns the stored results into the report's numbers. Nothing here
imports a framework: the backend is reached only through :meth:`harness.backend.Backend.batchnorm`
and :meth:`~harness.backend.Backend.train`.
"""
