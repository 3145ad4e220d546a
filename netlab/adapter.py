"""The adapter interface: what the library needs of a kernel. `kernel.Kernel` is the real one; a test
wraps it (to inject a fault at step k), and later a pytest plugin or a remote host can stand in for it.
`api.using()` makes the library, and the CLI in the same process, use another adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .errors import KernelError
from .plan import Step
from .state import HOST, RouteKey, State

if TYPE_CHECKING:
    from .model import Topology

Results = list[tuple[int, KernelError | None]]


@dataclass(frozen=True)
class Scope:
    """What to read from the kernel for a topology: its namespaces, its root-namespace links (those it
    declares, and the external parents of its links), and (always)
    everything that carries its mark; the sysctls it declares per namespace (paths; an interface part of
    '*' means every interface's), and the keys of its root-namespace routes (a route of the host with one
    of them is read, to be reported as a CONFLICT)."""

    topology: str
    namespaces: frozenset[str]
    host_links: frozenset[str]
    sysctls: Mapping[str, frozenset[str]] = field(default_factory=dict)
    host_routes: frozenset[RouteKey] = frozenset()
    missing_sysctls_are_errors: bool = True  # a destroy reads them only to put them back if it fails
    vlans: frozenset[str] = frozenset()  # the namespaces where it declares bridge VLANs (read there)
    impair: frozenset[str] = frozenset()  # the namespaces where it impairs links (their qdiscs are read)

    @classmethod
    def of(cls, topo: Topology, want: State | None = None) -> Scope:
        """The scope of `topo`, whose desired State (`want`) is computed if not given."""
        from . import sysctls
        from .model import desired

        want = want if want is not None else desired(topo)
        keys = {}
        for name, ns in want.namespaces.items():
            if ns.sysctls:
                keys[name] = frozenset(ns.sysctls) | {sysctls.CLOBBERS[p] for p in ns.sysctls if p in sysctls.CLOBBERS}
        host = topo.namespaces.get(HOST)
        # the root namespace's links the topology declares, and those it sits links on (external parents)
        host_links = set(host.interfaces) if host else set()
        host_links.update(link.parent[1] for ns in want.namespaces.values() for link in ns.links.values()
                          if link.parent is not None and link.parent[0] == HOST)
        vlans = frozenset(name for name, ns in want.namespaces.items()
                          if any(link.vlans is not None for link in ns.links.values()))
        impair = frozenset(name for name, ns in want.namespaces.items()
                           if any(link.qdisc is not None for link in ns.links.values()))
        return cls(topo.name, frozenset(topo.namespaces) - {HOST}, frozenset(host_links), keys,
                   frozenset(want.namespaces[HOST].routes), vlans=vlans, impair=impair)


class Executor(Protocol):
    """What the applier needs of a kernel: running steps (a test's in-memory kernel is one)."""

    def execute(self, steps: Sequence[Step], topology: str, results: Results) -> None:
        """Run `steps` in order, appending (position, None or the error) for each step that ran, as soon as
        its result is known; stop after a failure (steps sent in the same batch may still have run, and
        have their results). A failed step has changed nothing."""


class Adapter(Executor, Protocol):
    """What the library needs of a kernel: running steps, reading the live state, and tidying up."""

    def observe(self, scope: Scope) -> State:
        """The live State of the scope's namespaces (those that exist), of every namespace marked as its
        topology's, and of the root namespace's links named in its `host_links` or marked as the
        topology's (with the user's links that depend on them); with their routes and the sysctls it
        names."""

    def remove_empty_mount_points(self, names: Iterable[str]) -> None:
        """Remove /run/netns files of these names that are empty and not namespaces (an interrupted
        create's)."""

    def close(self) -> None:
        """Release what the adapter holds."""
