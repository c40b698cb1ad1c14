"""Reaching Ray safely: a local instance on loopback only, a cluster joined within a bound.

- A local Ray instance started for a run uses ``127.0.0.1`` as its node address, so every
  server it starts (GCS, raylet, agents, workers) listens on loopback only: nobody else who can
  reach the machine can submit work to it. Ray only does that when told the machine is not part
  of a cluster (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when ``ray`` is imported); the same
  holds for a cluster at a loopback address, which Ray's driver would otherwise rewrite to the
  machine's network address and never reach.
- Joining a cluster at an explicit address is bounded by ``$HARNESS_RAY_CONNECT_TIMEOUT``
  seconds (default 30): first a probe (a TCP connection, then a gRPC handshake, which a port
  that accepts and says nothing never completes), then ``ray.init``, both in a thread of
  their own (Ray retries in C++ for minutes, where no signal handler runs). The main thread
  waits in short slices under a :class:`~harness.interrupt.SignalGuard`, so SIGINT, SIGTERM
  and SIGHUP end the wait at once.
- Ray never sends its token to an explicit address unless ``RAY_AUTH_MODE=token``: without it,
  a warning.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
import sys
import threading
import time
from types import ModuleType
from typing import Any

from harness.errors import HarnessError
from harness.interrupt import SignalGuard

AUTH_MODE = "RAY_AUTH_MODE"
"""Ray never turns token authentication on for an explicit address: the user says so here."""
TIMEOUT_ENV = "HARNESS_RAY_CONNECT_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""``0``: Ray takes 127.0.0.1 as this node's address (read once, when ``ray`` is imported)."""
LOOPBACK_IP = "127.0.0.1"
SLICE_S = 0.2
NO_ANSWER = "no Ray (gRPC) answer"
"""The longest the main thread blocks at once while it waits to join (see :func:`join`)."""


def host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of ``HOST:PORT``, ``[V6]:PORT`` or ``ray://HOST:PORT``; None for
    ``auto`` and anything else Ray resolves itself."""
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback IP (an IPv4-mapped one included)."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return bool((mapped or ip).is_loopback)


def use_loopback(address: str) -> bool:
    """Whether this node's Ray address must be loopback: a local instance (``address`` empty),
    or a cluster at a loopback address."""
    target = host_port(address)
    return not address or (target is not None and is_loopback(target[0]))


def prepare(address: str) -> None:
    """Before ``import ray``: make Ray use loopback where :func:`use_loopback` says so."""
    if use_loopback(address):
        os.environ[LOOPBACK_ENV] = "0"


def connect_timeout(environ: dict[str, str] | None = None) -> float:
    """``$HARNESS_RAY_CONNECT_TIMEOUT`` in seconds (default 30); anything else than a positive
    number is a one-line error."""
    raw = (os.environ if environ is None else environ).get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise HarnessError(f"${TIMEOUT_ENV} must be a number of seconds > 0, not {raw!r}")
    return value


def warn_unauthenticated(address: str) -> None:
    """One line on stderr when a driver would join ``address`` without Ray's token."""
    if address in ("", "auto") or os.environ.get(AUTH_MODE, "").lower() == "token":
        return
    print(
        f"harness: warning: the connection to the Ray cluster at {address} is not "
        f"authenticated ({AUTH_MODE} is not 'token'): anyone who can reach the cluster can run "
        f"code on it; set {AUTH_MODE}=token and start the cluster with token authentication",
        file=sys.stderr,
    )


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail in one line, not after minutes of Ray's retries, when ``HOST:PORT`` (or
    ``ray://HOST:PORT``) refuses connections; ``auto`` and other names are left to Ray."""
    target = host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout).close()
    except OSError as exc:
        why = exc.strerror or str(exc) or type(exc).__name__
        raise HarnessError(f"cannot reach the Ray cluster at {address}: {why}") from None


def unjoinable(address: str, timeout: float, what: str) -> HarnessError:
    """The one-line error for a cluster that accepts connections but cannot be joined."""
    return HarnessError(
        f"cannot join the Ray cluster at {address}: {what} within {timeout:g} s "
        f"(${TIMEOUT_ENV}); check that it is the head node's address as `ray start --head` "
        f"printed it, that Ray's versions match, that every node can be reached from here, "
        f"and {AUTH_MODE}=token if the cluster uses token authentication"
    )


def probe(address: str, deadline: float, timeout: float) -> None:
    """TCP, then a gRPC handshake with ``address`` (Ray's GCS or Ray Client both speak gRPC),
    before ``deadline`` (``time.monotonic()``, the end of the connect ``timeout``); skipped for
    ``auto`` and under TLS (``RAY_USE_TLS``)."""
    target = host_port(address)
    if target is None:
        return
    check_reachable(address, max(deadline - time.monotonic(), 0.1))
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return
    import grpc  # a dependency of ray

    host, port = target
    channel = grpc.insecure_channel(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=max(deadline - time.monotonic(), 0.1))
    except grpc.FutureTimeoutError:
        raise unjoinable(address, timeout, NO_ANSWER) from None
    finally:
        channel.close()


def join(ray: ModuleType, address: str, kwargs: dict[str, Any]) -> None:
    """:func:`probe`, then ``ray.init(address=address, **kwargs)``, both within the connect
    timeout, with signals live.

    Both run in a daemon thread (``ray.init`` retries in C++ where no signal handler runs; a
    gRPC wait is no better). The main thread waits in slices of :data:`SLICE_S`: CPython runs a
    signal's handler between bytecodes of the main thread, and a signal that lands just before
    the main thread blocks, or that the kernel hands to another thread, does not wake a blocked
    wait; a slice bounds how late the handler runs. Raises what the probe or ``ray.init``
    raised, :class:`HarnessError` after the timeout, or
    :class:`~harness.interrupt.Interrupted` for a signal. A thread still stuck is left behind;
    it does not hold up the exit.
    """
    timeout = connect_timeout()
    deadline = time.monotonic() + timeout
    failed: list[BaseException] = []
    stage = "probe"

    def connect() -> None:
        nonlocal stage
        try:
            probe(address, deadline, timeout)
            stage = "init"
            ray.init(address=address, **kwargs)
        except BaseException as exc:  # handed to the main thread
            failed.append(exc)

    thread = threading.Thread(target=connect, name="harness-ray-join", daemon=True)
    with SignalGuard():
        thread.start()
        while thread.is_alive() and (left := deadline - time.monotonic()) > 0:
            thread.join(min(SLICE_S, left))
    if thread.is_alive():
        what = NO_ANSWER if stage == "probe" else "Ray did not connect"
        raise unjoinable(address, timeout, what)
    if failed:
        raise failed[0]
