"""Concurrency (issue 4, guarantee 5): several `netlab` processes at once, on the same topology and on
two different ones. Runs that change the kernel are serialized by the lock: every apply and destroy
succeeds (no spurious "File exists" or "No such device"), and what is left matches the run that finished
last. `diff` runs beside them without waiting for the lock: it exits 0 or 2, never 1. A user's objects
beside the topologies come through byte-identical. (The lock's timeout naming the holder, and a dead
holder's lock released by the kernel: test_kernel_reconcile.py.)

NETLAB_CONCURRENCY_ROUNDS sets the number of rounds (default 6).
"""

import os
import random
import subprocess
import sys

import pytest

from conftest import ROOT, Lab, count, netns_names
from test_kernel_reconcile import HOST_BRIDGE, SEED

pytestmark = pytest.mark.kernel
ROUNDS = int(os.environ.get("NETLAB_CONCURRENCY_ROUNDS", "6"))
SPURIOUS = ("File exists", "No such device", "Traceback", "EEXIST", "ENODEV")


def two_topologies(lab: Lab) -> dict[str, str]:
    a = SEED.replace('name: "@"', 'name: "@a"').replace('"@n', '"@an')
    b = HOST_BRIDGE.replace('name: "@"', 'name: "@b"').replace('"@', '"@b')
    return {"a": lab.write(a, "a.yaml"), "b": lab.write(b, "b.yaml")}


def objects_of(lab: Lab, which: str) -> list[str]:
    prefix = lab.p + which
    return [n for n in netns_names() if n.startswith(prefix)] + [n for n in lab.links() if n.startswith(prefix)]


# `netlab` itself, except that a run that changes the kernel appends its tag to a log once it holds the
# lock: the lock serializes those runs, so the log's order is the order in which they ran.
RUN = """
import sys
import netlab.lock
log, tag = sys.argv[1:3]
enter = netlab.lock.Lock.__enter__
def logged(self):
    held = enter(self)
    with open(log, "a") as f:
        f.write(tag + "\\n")
    return held
netlab.lock.Lock.__enter__ = logged
sys.argv = ["netlab", *sys.argv[3:]]
from netlab.cli import main
main()
"""


def run_all(commands: list[tuple[str, str, str]], log: str) -> tuple[list[tuple[str, str, int, str]], list[str]]:
    """Start every (command, which, path) at nearly the same time. Returns (command, which, exit code,
    stderr) of each, and the order in which those that took the lock held it ("command which")."""
    open(log, "w").close()
    procs = []
    for command, which, path in commands:
        extra = ["--lock-timeout", "120"] if command != "diff" else []
        procs.append((command, which, subprocess.Popen(
            [sys.executable, "-c", RUN, log, f"{command} {which}", command, path, *extra], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
    ended = []
    for command, which, proc in procs:
        assert proc.stderr is not None  # stderr=PIPE
        ended.append((command, which, proc.wait(timeout=300), proc.stderr.read()))
    with open(log) as f:
        return ended, f.read().split("\n")[:-1]


def test_applies_destroys_and_diffs_at_once(lab, canaries, figures):
    paths = two_topologies(lab)
    rng = random.Random(7 if "CI" in os.environ else None)
    diffs = {0: 0, 2: 0}
    for round_ in range(ROUNDS):
        commands = [(c, w, paths[w]) for c, w in [("apply", "a"), ("apply", "a"), ("destroy", "a"),
                                                   ("apply", "b"), ("destroy", "b"), ("apply", "b"),
                                                   ("diff", "a"), ("diff", "a"), ("diff", "b"), ("diff", "b")]]
        rng.shuffle(commands)
        ended, order = run_all(commands, str(lab.tmp / "order"))
        for command, which, code, err in ended:
            why = f"round {round_}: {command} {which} exited {code}: {err}"
            assert not any(s in err for s in SPURIOUS), why
            if command == "diff":
                assert code in (0, 2), why
                diffs[code] += 1
            else:
                assert code == 0, why
        assert sorted(order) == sorted(f"{c} {w}" for c, w, _ in commands if c != "diff"), order
        for which in paths:
            last = [run for run in order if run.endswith(which)][-1]
            if last.startswith("apply"):
                assert lab.netlab("diff", paths[which]).returncode == 0, f"round {round_}: {which} after {order}"
            else:
                assert objects_of(lab, which) == [], f"round {round_}: {which} after {order}"
        assert canaries.changes() == [], f"round {round_}"
    assert lab.ping(f"{lab.p}an1", "10.0.0.3") or objects_of(lab, "a") == []
    count(figures, "concurrency: processes run at once, in rounds of 10", 10 * ROUNDS)
    count(figures, "concurrency: diffs beside them that found the kernel in sync", diffs[0])
    count(figures, "concurrency: diffs beside them that found drift", diffs[2])
    assert diffs[0] and diffs[2], f"diffs never saw both a clean and a drifted state: {diffs}"


def test_diff_reads_with_run_read_only(lab):
    """`diff` writes no file: it works in a mount namespace where /run and /run/netns are read-only."""
    path = lab.write(SEED)
    lab.netlab("apply", path, check=0)
    subprocess.run(["ip", "-n", f"{lab.p}n1", "link", "set", "vth1", "down"], check=True)
    script = ("mount --rbind /run /run && mount -o remount,bind,ro /run && mount -o remount,bind,ro /run/netns && "
              f"exec {sys.executable} -m netlab diff {path}")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert proc.returncode == 2 and f"link {lab.p}n1/vth1: down -> up" in proc.stdout, proc.stderr
