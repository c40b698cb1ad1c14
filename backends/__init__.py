"""Built-in backends, one package per framework; installed as ``harness.backends``.

Each package's ``__init__`` is a pluggy plugin that registers a :class:`BackendInfo` without
importing its framework; the adapter module itself is imported only inside a worker process.
"""
