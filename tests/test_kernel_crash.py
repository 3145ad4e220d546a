"""Crashes (part of issue 4): `netlab apply` killed with SIGKILL at moments spread over its run. After
each kill, either the next `apply` converges (and `diff` then exits 0) or the next `destroy` leaves no
namespace, link or /run/netns entry of the topology; and a user's objects next to it are untouched.

NETLAB_CRASH_POINTS sets the number of kills (default 12; a soak run may use 200).
"""

import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from interrupts import ours, spread_applies

pytestmark = pytest.mark.kernel
POINTS = int(os.environ.get("NETLAB_CRASH_POINTS", "12"))


def test_sigkill_during_apply_then_apply_or_destroy_recovers(lab):
    partial = 0
    with spread_applies(lab, POINTS, seed=1234) as (path, offsets, user_objects_intact):
        for i, offset in enumerate(offsets):
            proc = subprocess.Popen([sys.executable, "-m", "netlab", "apply", path], cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(offset)
            proc.kill()
            proc.wait()
            if ours(lab) and lab.netlab("diff", path).returncode == 2:
                partial += 1  # killed in the middle: some of the topology exists, not all
            if i % 2 == 0:
                lab.netlab("apply", path, check=0)
                lab.netlab("diff", path, check=0)
                assert lab.ping(f"{lab.p}n1", "10.0.0.3")
            lab.netlab("destroy", path, check=0)
            assert ours(lab) == [], f"kill {i} at {offset:.3f} s left {ours(lab)}"
            assert user_objects_intact()
    assert partial >= max(1, POINTS // 8), f"only {partial} of {POINTS} kills landed inside an apply"
