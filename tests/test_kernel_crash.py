"""Crashes (part of issue 4): `netlab apply` and `netlab destroy` killed with SIGKILL at moments spread
over their writes. After each kill, the next `apply` converges (and `diff` then exits 0) and the next
`destroy` leaves no namespace, link or /run/netns entry of the topology; a user's objects beside it
(tests/canaries.py) come through byte-identical.

NETLAB_CRASH_POINTS sets the number of kills per command (default 12; a soak run may use 200).
"""

import os
import subprocess

import pytest

from conftest import count
from interrupts import ours, spread, start

pytestmark = pytest.mark.kernel
POINTS = int(os.environ.get("NETLAB_CRASH_POINTS", "12"))


def kill_at(lab, path: str, command: str, moment) -> None:
    proc = start(lab, path, command, moment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc.kill()
    proc.wait()


def recover(lab, canaries, path: str, i: int, why: str) -> None:
    """Every other time apply first (it converges, `diff` is clean); then destroy leaves nothing."""
    if i % 2 == 0:
        lab.netlab("apply", path, check=0)
        lab.netlab("diff", path, check=0)
        assert lab.ping(f"{lab.p}n1", "10.0.0.3")
        assert canaries.changes(port_freed=True) == [], why
    lab.netlab("destroy", path, check=0)
    assert ours(lab) == [], f"{why}: left {ours(lab)}"
    assert canaries.changes(port_freed=True) == [], why


def test_sigkill_during_apply_then_apply_or_destroy_recovers(lab, canaries, figures):
    partial = 0
    path, moments = spread(lab, "apply", POINTS, seed=1234)
    for i, moment in enumerate(moments):
        kill_at(lab, path, "apply", moment)
        if ours(lab) and lab.netlab("diff", path).returncode == 2:
            partial += 1  # killed in the middle: some of the topology exists, not all
        recover(lab, canaries, path, i, f"kill {i} at {moment}")
    count(figures, "crash: SIGKILL during apply, recovered", POINTS)
    count(figures, "crash: SIGKILL during apply that left it partial, recovered", partial)
    assert partial >= max(1, POINTS // 8), f"only {partial} of {POINTS} kills landed inside an apply"


def test_sigkill_during_destroy_then_destroy_or_apply_recovers(lab, canaries, figures):
    partial = 0
    path, moments = spread(lab, "destroy", POINTS, seed=4321)
    for i, moment in enumerate(moments):
        lab.netlab("apply", path, check=0)
        canaries.join(f"{lab.p}sbr")  # a user's port on the topology's bridge, freed when it goes
        kill_at(lab, path, "destroy", moment)
        left = ours(lab)
        if left and lab.netlab("diff", path).returncode == 2:
            partial += 1  # killed in the middle: some of the topology is gone, not all
        recover(lab, canaries, path, i, f"kill {i} at {moment}")
    count(figures, "crash: SIGKILL during destroy, recovered", POINTS)
    count(figures, "crash: SIGKILL during destroy that left it partial, recovered", partial)
    assert partial >= max(1, POINTS // 8), f"only {partial} of {POINTS} kills landed inside a destroy"
