"""``harness run --resume RUN`` on the command line: refuse an option that would change what the
run's cells compute.

An option given (on the command line or in ``--config``) with a value other than the run's
stored one (suite, backends, devices, dataset, epochs, seeds, batch size, lr, init...) is a
one-line error naming the option and the stored value; ``--threads``, ``--cell-timeout``,
``--out``, ``--store``, ``--no-report``, ``--executor`` and ``--ray-address`` may differ and
travel to :func:`harness.resume.resume` as :class:`~harness.resume.ResumeOptions`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from harness.errors import HarnessError
from harness.plugins import Plugins
from harness.resume import ResumeOptions
from harness.runs import absolute_dir, pick_backends, pick_devices


def resume_options(args: argparse.Namespace) -> ResumeOptions:
    """What of the command line a resume uses, typed."""
    return ResumeOptions(
        run_id=args.resume,
        store=args.store,
        out=args.out,
        threads=args.threads,
        executor=args.executor,
        ray_address=args.ray_address,
        cell_timeout=args.cell_timeout,
        dry_run=bool(args.dry_run),
    )


def refusing_changes(
    args: argparse.Namespace, plugins: Plugins
) -> Callable[[dict[str, Any]], None]:
    """The check :func:`harness.resume.resume` runs on the stored settings."""
    return lambda settings: refuse_changes(args, plugins, settings)


def stored_options(settings: dict[str, Any]) -> dict[str, Any]:
    """The run's settings under the names of the command-line options that set them."""
    data = settings["data"]
    return {
        "suite": settings["suite"],
        "backend": list(settings["backends"]),
        "device": list(settings["devices"]),
        "dataset": data["name"],
        "data_dir": data["data_dir"],
        "standardize": data["standardize"],
        "limit": data["limit"] or None,
        "quick": settings["quick"],
        **{k: settings[k] for k in ("epochs", "seeds", "batch_size", "lr", "init")},
        "defaults": settings.get("defaults"),
    }


def _given(args: argparse.Namespace, plugins: Plugins) -> dict[str, Callable[[], Any]]:
    """How to compare a given option with the stored value (names resolved like a run)."""
    return {
        "backend": lambda: pick_backends(plugins, args.backend)[0],
        "device": lambda: list(pick_devices(args.device)),
        "data_dir": lambda: absolute_dir(args.data_dir),
    }


def refuse_changes(args: argparse.Namespace, plugins: Plugins, settings: dict[str, Any]) -> None:
    """Raise :class:`HarnessError` for the first given option that differs from the run's."""
    stored = stored_options(settings)
    resolve = _given(args, plugins)
    for key in sorted(set(getattr(args, "given", ())) & stored.keys()):
        value = resolve[key]() if key in resolve else getattr(args, key)
        if value != stored[key]:
            shown = "the suite's default" if stored[key] is None else repr(stored[key])
            raise HarnessError(
                f"--resume {args.resume}: --{key.replace('_', '-')} {getattr(args, key)} "
                f"differs from the run's setting ({shown}); leave it out to resume the run"
            )
