"""The applier: runs a plan's steps in order through an adapter, recording each step's undo before it
runs; on failure or interrupt it runs the undos in reverse and confirms, by reading the kernel again, that
the state is what it was before. It does what the plan says and nothing else.

An adapter is anything with `execute(steps, topology, results)` (netlab/adapter.py): `kernel.Kernel` in
production, which sends steps in batches; tests hand in one that fails at step k. Rollback is judged by
the kernel, not by the undo log: the kernel is read again and compared with the state before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NoReturn

from .adapter import Executor
from .errors import KernelError, RollbackIncomplete, RolledBack, Stopped
from .plan import Plan, Step
from .state import State, differences


def run(plan: Plan, adapter: Executor, before: State, observe: Callable[[], State], command: str = "apply") -> None:
    """Run `plan` for `command` (apply or destroy). `before` is the live state the plan was made from;
    `observe` re-reads the same scope. On a failed step, raises RolledBack (the kernel is as before) or
    RollbackIncomplete (it is not; what is left is listed). On an interrupt, an apply rolls back the same
    way (all or nothing); a destroy stops between two steps and raises Stopped: the user asked it to stop,
    not to rebuild what it removed, and running it again finishes the job."""
    results: list[tuple[int, KernelError | None]] = []
    n = len(plan.steps)
    try:
        adapter.execute(plan.steps, plan.topology, results)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the CLI raises it for both)
        done = [plan.steps[i] for i, error in results if error is None]
        ran = max((i for i, _ in results), default=-1) + 1
        why = (f"interrupted after the last step ({n}/{n})" if ran == n else
               f"interrupted before step {ran + 1}/{n}")
        if command == "destroy":
            raise Stopped(f"{why}: " + (
                "every step has run, but the destroy was not confirmed; 'netlab destroy' again confirms it"
                if ran == n else f"the destroy stopped there, {len(done)} step(s) done and none undone; "
                                 "run 'netlab destroy' again to finish")) from None
        _roll_back(plan, adapter, done, before, observe, why, KernelError(why), command)  # always raises
    failures = [(i, error) for i, error in results if error is not None]
    # A step can be recorded as done and then as failed (a namespace deleted, whose teardown did not
    # finish): it is undone like the others.
    done = [plan.steps[i] for i, error in results if error is None]
    if failures:
        i, error = failures[0]
        step = plan.steps[i]
        why = f"step {i + 1}/{n} failed: {step.op} {step.describe()}: {error}"
        _roll_back(plan, adapter, done, before, observe, why, error, command)  # always raises


def roll_back(plan: Plan, adapter: Executor, before: State, observe: Callable[[], State], why: str,
              command: str = "apply") -> NoReturn:
    """Undo a plan whose steps all ran. Raises RolledBack or RollbackIncomplete, like run()."""
    _roll_back(plan, adapter, list(plan.steps), before, observe, why, KernelError(why), command)


def _roll_back(plan: Plan, adapter: Executor, done: Sequence[Step], before: State, observe: Callable[[], State],
               why: str, cause: KernelError, command: str) -> NoReturn:
    """Run the undos of `done` in reverse, past any that fail, then compare the kernel with `before`."""
    undos = [(step, undo) for step in reversed(done) for undo in step.undo]
    failed_undos: list[str] = []
    start = 0
    while start < len(undos):
        results: list[tuple[int, KernelError | None]] = []
        try:
            adapter.execute([undo for _, undo in undos[start:]], plan.topology, results)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (the CLI raises it for both)
            failed_undos.append("the rollback was interrupted")
            break
        for i, error in results:
            if error is not None:
                step, undo = undos[start + i]
                failed_undos.append(f"could not undo '{step.describe()}': {undo.op} {undo.where}: {error}")
        if not results:
            break
        start += max(i for i, _ in results) + 1
    try:
        leftovers = differences(before, observe())
    except KernelError as exc:
        leftovers = [f"could not read the kernel back: {exc}"]
    if leftovers:
        raise RollbackIncomplete(
            f"{why}\nROLLBACK INCOMPLETE: the kernel is not as it was before the {command}. Left over:\n  "
            + "\n  ".join(failed_undos + leftovers)
            + "\n  fix: run 'netlab apply' again to converge, or 'netlab destroy' to remove the topology",
            failed_undos + leftovers) from cause
    outcome = f"rolled back: {len(done)} step(s) undone" if done else "nothing was changed (no step had been done)"
    raise RolledBack(f"{why}\n{outcome}; the kernel is as it was before the {command}", cause) from cause
