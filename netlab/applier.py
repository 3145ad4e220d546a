"""The applier: runs a plan's steps in order through an adapter, recording each step's undo before it
runs; on failure or interrupt it runs the undos in reverse and confirms, by reading the kernel again, that
the state is what it was before. It does what the plan says and nothing else.

An adapter is anything with `execute(step, topology)` that raises `KernelError` when a step fails without
effect (`kernel.Kernel` in production; tests hand in one that fails at step k).
"""

from __future__ import annotations

from typing import Callable, Protocol

from .errors import KernelError, RollbackIncomplete, RolledBack
from .plan import Plan, Step
from .state import State, differences


class Adapter(Protocol):
    def execute(self, step: Step, topology: str) -> None: ...


class Interrupted(BaseException):
    """Raised by a signal handler (SIGTERM) so that an apply stops between or inside steps and rolls back."""


def run(plan: Plan, adapter: Adapter, before: State, observe: Callable[[], State],
        on_step: Callable[[int, Step], None] | None = None) -> None:
    """Apply `plan`. `before` is the live state the plan was made from; `observe` re-reads the same scope.
    Raises RolledBack (the kernel is as before) or RollbackIncomplete (it is not; what is left is listed)."""
    done: list[Step] = []
    for index, step in enumerate(plan.steps, 1):
        try:
            if on_step:
                on_step(index, step)
            adapter.execute(step, plan.topology)
        except (KernelError, KeyboardInterrupt, Interrupted) as exc:
            if isinstance(exc, KernelError):
                why = f"step {index}/{len(plan.steps)} failed: {step.action} {step.describe()}: {exc}"
                cause = exc
            else:
                why = f"interrupted at step {index}/{len(plan.steps)} ({step.action} {step.where})"
                cause = KernelError(why)
                # The step may have run whole before the signal arrived: undo it too (undo is idempotent).
                done.append(step)
            _roll_back(plan, adapter, done, before, observe, why, cause)  # always raises
        done.append(step)


def _roll_back(plan, adapter, done, before, observe, why, cause):
    failed_undos = []
    for step in reversed(done):
        for undo in step.undo:
            try:
                adapter.execute(undo, plan.topology)
            except KernelError as exc:
                failed_undos.append(f"could not undo '{step.describe()}': {undo.action} {undo.where}: {exc}")
            except (KeyboardInterrupt, Interrupted):
                failed_undos.append(f"rollback interrupted while undoing '{step.describe()}'")
                break
    try:
        leftovers = failed_undos + differences(before, observe())
    except KernelError as exc:
        leftovers = failed_undos + [f"could not read the kernel back: {exc}"]
    if leftovers:
        raise RollbackIncomplete(
            f"{why}\nROLLBACK INCOMPLETE: the kernel is not as it was before the apply. Left over:\n  "
            + "\n  ".join(leftovers)
            + "\n  fix: run 'netlab apply' again to converge, or 'netlab destroy' to remove the topology",
            leftovers) from cause
    raise RolledBack(f"{why}\nrolled back: {len(done)} step(s) undone; the kernel is as it was before the apply",
                     cause) from cause
