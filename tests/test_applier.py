"""The applier's rollback, at every step k of large plans, against an in-memory kernel (tests/fakekernel.py).
The same is done against the real kernel in test_kernel_rollback.py."""

import errno

import pytest

from netlab import applier
from netlab.errors import RollbackIncomplete, RolledBack, Stopped
from netlab.model import Topology, desired, loads
from netlab.planner import plan
from netlab.state import differences

from fakekernel import FakeKernel, host_only
from scenarios import BIG, BIG_CHANGED

TOPO = loads(BIG)
CHANGED = loads(BIG_CHANGED)


def applied(topo: Topology) -> FakeKernel:
    fake = FakeKernel(host_only())
    p = plan(desired(topo), fake.observe(), topo.name)
    applier.run(p, fake, fake.observe(), fake.observe)
    return fake


def transitions():
    """(name, starting fake state, desired State) for the three kinds of run: create, change, destroy."""
    yield "create", host_only(), desired(TOPO)
    yield "change", applied(TOPO).observe(), desired(CHANGED)
    yield "destroy", applied(TOPO).observe(), host_only()


@pytest.mark.parametrize("name,start,want", list(transitions()), ids=lambda x: x if isinstance(x, str) else "")
def test_success_converges(name, start, want):
    fake = FakeKernel(start)
    p = plan(want, fake.observe(), "big")
    assert len(p.steps) >= (5 if name == "destroy" else 20), p.render()
    applier.run(p, fake, start, fake.observe)
    assert plan(want, fake.observe(), "big").empty
    assert len(fake.executed) == len(p.steps)


@pytest.mark.parametrize("name,start,want", list(transitions()), ids=lambda x: x if isinstance(x, str) else "")
@pytest.mark.parametrize("code", [errno.EEXIST, errno.ENODEV, errno.EBUSY, errno.EPERM, errno.EINVAL])
@pytest.mark.parametrize("tail", [0, 3], ids=["last-in-batch", "mid-batch"])
def test_failure_at_every_step_rolls_back(name, start, want, code, tail):
    p = plan(want, FakeKernel(start).observe(), "big")
    for k in range(1, len(p.steps) + 1):
        fake = FakeKernel(start, fail_at={k}, errno_=code, batch_tail=tail)
        with pytest.raises(RolledBack) as info:
            applier.run(p, fake, start, fake.observe)
        assert differences(start, fake.observe()) == [], f"k={k}"
        step = p.steps[k - 1]
        assert f"step {k}/{len(p.steps)} failed" in str(info.value)
        assert step.where in str(info.value)
        assert info.value.cause.errno == code


@pytest.mark.parametrize("name,start,want", list(transitions()), ids=lambda x: x if isinstance(x, str) else "")
def test_interrupt_at_every_step_rolls_back_an_apply_and_stops_a_destroy(name, start, want):
    p = plan(want, FakeKernel(start).observe(), "big")
    n = len(p.steps)
    for k in range(1, n + 1):
        fake = FakeKernel(start, interrupt_after=k)  # the signal arrives just after step k ran
        if name != "destroy":
            with pytest.raises(RolledBack, match="interrupted"):
                applier.run(p, fake, start, fake.observe)
            assert differences(start, fake.observe()) == [], f"k={k}"
            continue
        with pytest.raises(Stopped) as info:
            applier.run(p, fake, start, fake.observe, "destroy")
        assert str(info.value).startswith(
            f"interrupted after the last step ({n}/{n}): every step has run" if k == n else
            f"interrupted before step {k + 1}/{n}: the destroy stopped there, {k} step(s) done and none undone")
        assert len(fake.executed) == k  # nothing undone
        again = plan(want, fake.observe(), "big")  # the next destroy does the rest
        fake.interrupt_after = None
        applier.run(again, fake, fake.observe(), fake.observe, "destroy")
        assert plan(want, fake.observe(), "big").empty, f"k={k}"


@pytest.mark.parametrize("name,start,want", list(transitions()), ids=lambda x: x if isinstance(x, str) else "")
def test_failed_rollback_is_reported_and_a_later_apply_converges(name, start, want):
    """A fault in the rollback is judged by the kernel: if the state is as before anyway (a namespace took
    the link whose undo failed with it), that is a rollback; if not, it is reported as incomplete with what
    is left, never as success. Either way a later apply converges."""
    p = plan(want, FakeKernel(start).observe(), "big")
    incomplete = 0
    for k in range(2, len(p.steps) + 1):
        fake = FakeKernel(start, fail_at={k, k + 1})  # the step, then the first undo after it
        with pytest.raises((RolledBack, RollbackIncomplete)) as info:
            applier.run(p, fake, start, fake.observe)
        if isinstance(info.value, RollbackIncomplete):
            incomplete += 1
            assert info.value.leftovers and differences(start, fake.observe()), f"k={k}"
            assert "ROLLBACK INCOMPLETE" in str(info.value)
        else:
            assert differences(start, fake.observe()) == [], f"k={k}"
        fake.fail_at = set()
        again = plan(want, fake.observe(), "big")
        applier.run(again, fake, fake.observe(), fake.observe)
        assert plan(want, fake.observe(), "big").empty, f"k={k}"
    assert incomplete > 0  # the suite does exercise incomplete rollbacks
