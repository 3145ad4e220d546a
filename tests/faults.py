"""Fault injection through the adapter seam (netlab/adapter.py): `Faulty` wraps the real kernel adapter
and makes the steps it is asked to run as numbers `fail_at` (counting across calls, so a rollback's steps
count too) fail with errno `code`, on the real kernel:

- a link step fails inside its netlink batch, as a request the kernel really refuses (a step on a link
  that does not exist stands in for it), so the steps after it in the batch still run;
- a namespace step fails before it does anything, after the steps before it have run;
- a namespace deletion with ETIMEDOUT takes the real path of a timeout: the deletions of its run are done
  and the wait for the kernel's teardown runs (it really waits); the timeout is then charged to the last
  deletion of the run, as the adapter charges a real one.

Used with `netlab.api.using(lambda: Faulty(...))`; nothing private of the adapter is touched."""

from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence

from netlab.adapter import Results, Scope
from netlab.errors import KernelError
from netlab.kernel import Kernel
from netlab.plan import Step
from netlab.state import State

ABSENT = "netlab-fault"  # no test makes a link of this name: a step on it is refused with ENODEV


def timed_out(step: Step, code: int) -> bool:
    return code == errno.ETIMEDOUT and step.op == "delete_netns"


class Faulty:
    def __init__(self, fail_at: set[int], code: int):
        self.inner = Kernel()
        self.fail_at, self.code, self.calls = set(fail_at), code, 0

    def observe(self, scope: Scope) -> State:
        return self.inner.observe(scope)

    def remove_empty_mount_points(self, names: Iterable[str]) -> None:
        self.inner.remove_empty_mount_points(names)

    def close(self) -> None:
        self.inner.close()

    def execute(self, steps: Sequence[Step], topology: str, results: Results) -> None:
        targets = {k - self.calls - 1 for k in self.fail_at if self.calls < k <= self.calls + len(steps)}
        first = len(results)
        namespace_faults = sorted(p for p in targets if steps[p].op.endswith("_netns"))
        stop = namespace_faults[0] if namespace_faults else len(steps)
        if namespace_faults and timed_out(steps[stop], self.code):
            while stop < len(steps) and steps[stop].op == "delete_netns":
                stop += 1  # the deletions of the run are done, and their teardown waited for
        run = [Step("set_mtu", s.namespace, ABSENT, 1500) if i in targets and not s.op.endswith("_netns") else s
               for i, s in enumerate(steps[:stop])]
        self.inner.execute(run, topology, results)
        for i in range(first, len(results)):
            position, error = results[i]
            if position in targets and error is not None:
                results[i] = (position, KernelError.of(self.code, "injected"))
        ran_all = len(results) > first and max(p for p, _ in results[first:]) == stop - 1 \
            and all(e is None for _, e in results[first:])
        if namespace_faults and (ran_all or stop == 0):
            at = stop - 1 if timed_out(steps[namespace_faults[0]], self.code) else stop
            results.append((at, KernelError.of(self.code, "injected")))
        self.calls += max((p for p, _ in results[first:]), default=-1) + 1
