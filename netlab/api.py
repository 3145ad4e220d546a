"""The library API that the CLI is a thin shell over: validate, diff, apply, destroy, show.

Each function takes a loaded Topology. The kernel adapter (and with it the netlink codec) is imported
only by the functions that need the kernel, so `validate` starts fast and needs no root.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from .adapter import Scope
from .errors import ConflictError, NotConverged, PrivilegeError
from .model import Topology, desired, load
from .plan import Plan
from .planner import plan as make_plan
from .state import HOST, Namespace, State

if TYPE_CHECKING:
    from .adapter import Adapter

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


def _kernel() -> Adapter:
    from .kernel import Kernel

    return Kernel()


_factory: ContextVar[Callable[[], Adapter]] = ContextVar("adapter", default=_kernel)


@contextmanager
def using(factory: Callable[[], Adapter]) -> Iterator[None]:
    """Within the block, every library call (and a CLI command run in this process) talks to the kernel
    through `factory()` instead of the real adapter: the seam where tests inject faults, and where a
    pytest plugin or a remote host can stand in (netlab/adapter.py)."""
    token = _factory.set(factory)
    try:
        yield
    finally:
        _factory.reset(token)


@contextmanager
def _adapter() -> Iterator[Adapter]:
    adapter = _factory.get()()
    try:
        yield adapter
    finally:
        adapter.close()


def _observe(kernel: Adapter, scope: Scope) -> State:
    return kernel.observe(scope)


def validate(path: str) -> Topology:
    return load(path)


def diff(topo: Topology) -> Plan:
    """What apply would do. Reads the kernel, never writes, never waits for the lock."""
    require_privileges()
    with _adapter() as kernel:
        want = desired(topo)
        return _read_and_plan(kernel, Scope.of(topo, want), want, topo.name, concurrent=True)[1]


SETTLE_SECONDS = 2.0


def _read_and_plan(kernel: Adapter, scope: Scope, want: State, topology: str, concurrent: bool, *,
                   destroy: bool = False, force: bool = False) -> tuple[State, Plan]:
    """Read the kernel and plan. A CONFLICT can be a state in passing, so it is read again (for up to
    SETTLE_SECONDS) while either holds:

    - a veth end that nobody owns has a peer that cannot be found: it may be dying with its marked peer's
      namespace, deleted by a run that was killed before it waited for the kernel's teardown;
    - `concurrent` (diff, which takes no lock) and another run held the lock before or after the read: it
      may have read a link between its creation and its mark (the kernel takes no alias in the request
      that creates a link; the mark follows in the same batch), or a veth whose marked peer was just
      deleted. A conflict that stays is then reported with that run's PID.

    A real conflict of the first kind is reported SETTLE_SECONDS late; one of the second, a moment late."""
    from .lock import writer

    deadline, pause = time.monotonic() + SETTLE_SECONDS, 0.01
    while True:
        holder = writer() if concurrent else None
        state = _observe(kernel, scope)
        try:
            return state, make_plan(want, state, topology, destroy=destroy, force=force)
        except ConflictError as exc:
            holder = (writer() or holder) if concurrent else None
            dying = any(link.kind == "veth" and link.peer is None and link.owner is None
                        for ns in state.namespaces.values() for link in ns.links.values())
            if not (holder or dying):
                raise
            if time.monotonic() > deadline:
                if holder is None:
                    raise
                raise ConflictError(f"{exc}\n  (read while another netlab run, pid {holder}, was changing "
                                    "the kernel)") from None
            time.sleep(pause)
            pause = min(pause * 2, 0.2)


def show(topo: Topology) -> State:
    """The live state of what the topology concerns. Reads the kernel, never writes."""
    require_privileges()
    with _adapter() as kernel:
        return _observe(kernel, Scope.of(topo))


def apply(topo: Topology, lock_timeout: float = DEFAULT_LOCK_TIMEOUT, force: bool = False) -> Plan:
    """Make the kernel match the topology; roll back on failure. Returns the plan that was applied.
    `force`: a namespace the topology no longer has may be deleted with links in it that are not the
    topology's (otherwise that is a CONFLICT)."""
    want = desired(topo)
    return _converge("apply", topo.name, want, Scope.of(topo, want), lock_timeout, force=force)


def destroy(topo: Topology | str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT, force: bool = False) -> Plan:
    """Remove every namespace and link that carries the topology's mark, and nothing else: a namespace
    that holds links that are not the topology's (the kernel would destroy them with it) is a CONFLICT
    unless `force`. Given the Topology, also remove the empty mount points its namespaces' names may
    have left in /run/netns (a create interrupted between making the file and mounting the namespace
    on it): they are not namespaces, nobody's, and `ip netns` would list them; and read the sysctls it
    declares, so that a destroy that fails and is rolled back puts them back (by name alone, netlab cannot
    know which sysctls a namespace had been given)."""
    name = topo if isinstance(topo, str) else topo.name
    stale = frozenset() if isinstance(topo, str) else frozenset(topo.namespaces) - {HOST}
    sysctls = {} if isinstance(topo, str) else Scope.of(topo).sysctls
    return _converge("destroy", name, State({HOST: Namespace(HOST)}), Scope(name, frozenset(), frozenset(), sysctls,
                                                                            missing_sysctls_are_errors=False),
                     lock_timeout, stale_mount_points=stale, force=force)


def _converge(command: str, topology: str, want: State, scope: Scope, lock_timeout: float, *,
              stale_mount_points: frozenset[str] = frozenset(), force: bool = False) -> Plan:
    """Lock, read, plan, apply, and read again to confirm. An apply is all or nothing: an interrupt while
    confirming rolls the whole plan back. A destroy that is interrupted stops (see applier.run); once
    every step has run, the interrupt is let through: the next destroy finds nothing left to do."""
    from . import applier
    from .lock import Lock

    require_privileges()
    flags = {"destroy": command == "destroy", "force": force}
    with Lock(lock_timeout), _adapter() as kernel:
        kernel.remove_empty_mount_points(stale_mount_points)
        before, plan = _read_and_plan(kernel, scope, want, topology, concurrent=False, **flags)
        if plan.empty:
            return plan

        def observe() -> State:
            return _observe(kernel, scope)

        applier.run(plan, kernel, before, observe, command)
        try:
            left = make_plan(want, observe(), topology, **flags)
        except KeyboardInterrupt:
            if command != "apply":
                raise
            applier.roll_back(plan, kernel, before, observe, "interrupted while checking the result")
        if not left.empty:
            raise NotConverged(
                f"every step succeeded, but the kernel still differs from the topology. The {len(plan.steps)} "
                f"steps are in place (nothing was rolled back); what still differs:\n{left.render()}\n"
                "fix: 'netlab apply' again to converge, or 'netlab destroy' to remove the topology")
        return plan
