"""The library API that the CLI is a thin shell over: validate, diff, apply, destroy, show.

Each function takes a loaded Topology. The kernel adapter (and with it pyroute2) is imported only by the
functions that need the kernel, so `validate` starts fast and needs no root.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import ConflictError, NotConverged, PrivilegeError
from .model import Topology, desired, load
from .plan import Plan
from .planner import plan as make_plan
from .state import HOST, Namespace, State

DEFAULT_LOCK_TIMEOUT = 30.0

CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21


def require_privileges() -> None:
    """Fail before touching anything when the capabilities that netlink writes and setns() need are
    missing, and say which."""
    try:
        with open("/proc/self/status") as f:
            caps = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    except (OSError, StopIteration):
        return
    missing = [name for bit, name in ((CAP_NET_ADMIN, "CAP_NET_ADMIN"), (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"))
               if not caps >> bit & 1]
    if missing:
        raise PrivilegeError(
            f"missing capability {' and '.join(missing)}: netlab needs CAP_NET_ADMIN to change links and "
            "CAP_SYS_ADMIN to enter and create network namespaces; run it as root (e.g. with sudo). "
            "'netlab validate' needs neither.")


@dataclass(frozen=True)
class Scope:
    """What to read from the kernel for a topology: its namespaces, its root-namespace links, and
    (always) everything that carries its mark."""

    topology: str
    namespaces: frozenset[str]
    host_links: frozenset[str]

    @classmethod
    def of(cls, topo: Topology) -> "Scope":
        host = topo.namespaces.get(HOST)
        return cls(topo.name, frozenset(topo.namespaces) - {HOST},
                   frozenset(host.interfaces) if host else frozenset())


def _kernel():
    from .kernel import Kernel

    return Kernel()


def _observe(kernel, scope: Scope) -> State:
    return kernel.observe(scope.topology, set(scope.namespaces), set(scope.host_links))


def validate(path: str) -> Topology:
    return load(path)


def diff(topo: Topology) -> Plan:
    """What apply would do. Reads the kernel, never writes, never waits for the lock.

    While another run changes the kernel, what is read can be mid-change: a link just created is unmarked
    for an instant (the kernel takes no alias in the request that creates a link; the mark follows in
    the same batch), and a veth end whose marked peer was just deleted is unowned until the kernel's
    teardown removes it. Either would read as a CONFLICT. So a conflict read while a run held the lock
    (before or after the read) is read again, a few times; one that stays is reported with that run's
    PID."""
    from .lock import writer

    require_privileges()
    with _kernel() as kernel:
        for attempt in range(1, 6):
            holder = writer()  # a run that holds the lock before or after the read may have changed it
            try:
                return make_plan(desired(topo), _observe(kernel, Scope.of(topo)), topo.name)
            except ConflictError as exc:
                holder = writer() or holder
                if holder is None:
                    raise
                if attempt == 5:
                    raise ConflictError(f"{exc}\n  (read while another netlab run, pid {holder}, was changing "
                                        "the kernel)") from None
                time.sleep(0.01 * attempt)


def show(topo: Topology) -> State:
    """The live state of what the topology concerns. Reads the kernel, never writes."""
    require_privileges()
    with _kernel() as kernel:
        return _observe(kernel, Scope.of(topo))


def apply(topo: Topology, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Plan:
    """Make the kernel match the topology; roll back on failure. Returns the plan that was applied."""
    return _converge("apply", topo.name, desired(topo), Scope.of(topo), lock_timeout)


def destroy(topo: Topology | str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> Plan:
    """Remove every namespace and link that carries the topology's mark, and nothing else. Given the
    Topology, also remove the empty mount points its namespaces' names may have left in /run/netns (a
    create interrupted between making the file and mounting the namespace on it): they are not
    namespaces, nobody's, and `ip netns` would list them."""
    name = topo if isinstance(topo, str) else topo.name
    stale = frozenset() if isinstance(topo, str) else frozenset(topo.namespaces) - {HOST}
    return _converge("destroy", name, State({HOST: Namespace(HOST)}), Scope(name, frozenset(), frozenset()),
                     lock_timeout, stale_mount_points=stale)


def _converge(command: str, topology: str, want: State, scope: Scope, lock_timeout: float, *,
              stale_mount_points: frozenset[str] = frozenset()) -> Plan:
    """Lock, read, plan, apply, and read again to confirm. An apply is all or nothing: an interrupt while
    confirming rolls the whole plan back. A destroy that is interrupted stops (see applier.run); once
    every step has run, the interrupt is let through: the next destroy finds nothing left to do."""
    from . import applier
    from .lock import Lock

    require_privileges()
    with Lock(lock_timeout), _kernel() as kernel:
        kernel.remove_empty_mount_points(stale_mount_points)
        before = _observe(kernel, scope)
        plan = make_plan(want, before, topology)
        if plan.empty:
            return plan
        observe = lambda: _observe(kernel, scope)  # noqa: E731
        applier.run(plan, kernel, before, observe, command)
        try:
            left = make_plan(want, observe(), topology)
        except KeyboardInterrupt:
            if command != "apply":
                raise
            applier.roll_back(plan, kernel, before, observe, "interrupted while checking the result")
        if not left.empty:
            raise NotConverged("every step succeeded, but the kernel still differs from the topology:\n"
                               + left.render())
        return plan
