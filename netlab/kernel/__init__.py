"""The kernel adapter: the only package that talks to the kernel (netlink, setns, unshare, mount).

    namespaces.py  handles: namespace fds and netlink sockets; creating and deleting namespaces
    reader.py      observe(): the live State, from link, address and route dumps and sysctls
    sysctl.py      reading and writing /proc/sys/net from inside a namespace
    writer.py      execute(): plan steps as netlink batches, each result attributed to its step

`Kernel` puts the three together behind the Adapter interface (netlab/adapter.py), which is all that the
rest of netlab, and a test that wraps it, sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..adapter import Scope
from ..errors import KernelError
from ..plan import Step
from ..state import State
from .namespaces import Namespaces
from .reader import Reader
from .writer import Writer


class Kernel:
    """The running kernel, as an Adapter. One instance per run; `close()` releases its sockets and fds."""

    def __init__(self) -> None:
        self.namespaces = Namespaces()
        self._reader = Reader(self.namespaces)
        self._writer = Writer(self.namespaces)

    def observe(self, scope: Scope) -> State:
        return self._reader.observe(scope)

    def execute(self, steps: Sequence[Step], topology: str, results: list[tuple[int, KernelError | None]]) -> None:
        self._writer.execute(steps, topology, results)

    def remove_empty_mount_points(self, names: Iterable[str]) -> None:
        self.namespaces.remove_empty_mount_points(names)

    def close(self) -> None:
        self.namespaces.close()

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
