"""Interrupts (part of issue 4): SIGINT or SIGTERM during `netlab apply` never leaves a partial topology.
Inside the steps or the final check it rolls back and exits 1 (ROLLED_BACK), the kernel as it was;
before the first change it exits 1 having changed nothing; after the last step (closing sockets,
printing) the topology is complete, whatever the exit code says. During `netlab destroy`, it stops
between steps and exits 1 (or finishes), and the next `destroy` completes. A user's objects beside the
topology (tests/canaries.py) come through byte-identical. The topology is routed (tests/interrupts.py):
routes in every namespace and the root one, and forwarding, must not be left half made either.

NETLAB_SIGNAL_POINTS sets the number of interrupts per signal and command (default 10).
"""

import os
import signal
import subprocess

import pytest

from conftest import Lab, count
from interrupts import ours, spread, start

pytestmark = pytest.mark.kernel
POINTS = int(os.environ.get("NETLAB_SIGNAL_POINTS", "10"))
SIGNALS = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])


def interrupt(lab: Lab, path: str, command: str, moment: tuple[bool, float], sig: int) -> tuple[int, str]:
    proc = start(lab, path, command, moment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    # 1 from netlab; the signal's own code if it came while Python was still importing, or Python's own
    # exit 1 with a KeyboardInterrupt in its traceback if it came while Python was starting up (netlab's
    # code had not started: nothing was changed, as the callers check)
    starting = "Fatal Python error: init_import_site" in err and err.rstrip().endswith("KeyboardInterrupt")
    assert proc.returncode in (0, 1, -sig), err
    assert "Traceback" not in err or proc.returncode == -sig or starting, err
    return proc.returncode, err


@SIGNALS
def test_a_signal_during_apply_rolls_back(lab, canaries, figures, sig):
    rolled_back, seen = 0, []
    path, moments = spread(lab, "apply", POINTS, seed=99)
    for i, moment in enumerate(moments):
        code, err = interrupt(lab, path, "apply", moment, sig)
        seen.append(f"{moment}: exit {code}: {err.strip().splitlines()[:1]}")
        if "ROLLED_BACK" in err:
            rolled_back += 1
            assert ours(lab) == [], f"signal {i} at {moment}: {err}\nleft {ours(lab)}"
        elif ours(lab):  # complete, never partial
            assert lab.netlab("diff", path).returncode == 0, f"signal {i} at {moment}: {err}"
        assert canaries.changes() == []
        lab.netlab("destroy", path, check=0)
        assert ours(lab) == [] and canaries.changes() == []
    count(figures, "signals: SIGINT/SIGTERM during apply", POINTS)
    count(figures, "signals: during apply, rolled back", rolled_back)
    assert rolled_back >= 1, "no signal landed inside an apply:\n" + "\n".join(seen)


@SIGNALS
def test_a_signal_during_destroy_stops_between_steps_and_destroy_completes(lab, canaries, figures, sig):
    stopped, seen = 0, []
    path, moments = spread(lab, "destroy", POINTS, seed=77)
    for i, moment in enumerate(moments):
        lab.netlab("apply", path, check=0)
        canaries.join(f"{lab.p}sbr")
        code, err = interrupt(lab, path, "destroy", moment, sig)
        why = f"signal {i} at {moment}: exit {code}: {err}"
        seen.append(f"{moment}: exit {code}: {err.strip().splitlines()[:1]}")
        if code == 0:
            assert ours(lab) == [], why
        elif ours(lab) and lab.netlab("diff", path).returncode == 2:
            stopped += 1  # stopped part way
            assert "interrupted" in err, why
        assert canaries.changes(port_freed=True) == [], why
        out = lab.netlab("destroy", path, check=0).stdout
        assert ours(lab) == [], f"{why}\nthen: {out}\nleft {ours(lab)}"
        assert canaries.changes(port_freed=True) == [], why
    count(figures, "signals: SIGINT/SIGTERM during destroy", POINTS)
    count(figures, "signals: during destroy, stopped part way and finished by the next destroy", stopped)
    assert stopped >= 1, "no signal landed inside a destroy:\n" + "\n".join(seen)
