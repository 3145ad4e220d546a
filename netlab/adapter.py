"""The adapter interface: what the library needs of a kernel. `kernel.Kernel` is the real one; a test
wraps it (to inject a fault at step k), and later a pytest plugin or a remote host can stand in for it.
`api.using()` makes the library, and the CLI in the same process, use another adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence, Set
from typing import Protocol

from .errors import KernelError
from .plan import Step
from .state import State

Results = list[tuple[int, KernelError | None]]


class Executor(Protocol):
    """What the applier needs of a kernel: running steps (a test's in-memory kernel is one)."""

    def execute(self, steps: Sequence[Step], topology: str, results: Results) -> None:
        """Run `steps` in order, appending (position, None or the error) for each step that ran, as soon as
        its result is known; stop after a failure (steps sent in the same batch may still have run, and
        have their results). A failed step has changed nothing."""


class Adapter(Executor, Protocol):
    """What the library needs of a kernel: running steps, reading the live state, and tidying up."""

    def observe(self, topology: str, namespaces: Set[str], host_links: Set[str]) -> State:
        """The live State of `namespaces` (those that exist), of every namespace marked as `topology`'s,
        and of the root namespace's links named in `host_links` or marked as `topology`'s (with the
        user's links that depend on them)."""

    def remove_empty_mount_points(self, names: Iterable[str]) -> None:
        """Remove /run/netns files of these names that are empty and not namespaces (an interrupted
        create's)."""

    def close(self) -> None:
        """Release what the adapter holds."""
