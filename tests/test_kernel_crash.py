"""Crashes (part of issue 4): `netlab apply` killed with SIGKILL at moments spread over its run. After
each kill, either the next `apply` converges (and `diff` then exits 0) or the next `destroy` leaves no
namespace, link or /run/netns entry of the topology; and a user's objects next to it are untouched.

NETLAB_CRASH_POINTS sets the number of kills (default 12; a soak run may use 200).
"""

import os
import random
import subprocess
import sys
import time

import pytest

from conftest import ROOT, ip_json, netns_names
from test_kernel_reconcile import HOST_BRIDGE, SEED

pytestmark = pytest.mark.kernel
POINTS = int(os.environ.get("NETLAB_CRASH_POINTS", "12"))


def canaries(lab):
    """A user's namespace and a user's bridge with the test's prefix: must come through byte-identical."""
    subprocess.run(["ip", "netns", "add", f"{lab.p}user"], check=True)
    subprocess.run(["ip", "link", "add", f"{lab.p}ubr", "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "192.0.2.1/24", "dev", f"{lab.p}ubr"], check=True)

    def state():
        link = ip_json("-d", "addr", "show", f"{lab.p}ubr")[0]
        return (link["ifindex"], link["address"], [a["local"] for a in link["addr_info"]],
                f"{lab.p}user" in netns_names())
    return state


def ours(lab) -> list[str]:
    names = [n for n in netns_names() if n.startswith(lab.p) and n != f"{lab.p}user"]
    links = [n for n in lab.links() if n.startswith(lab.p) and n != f"{lab.p}ubr"]
    return names + links


def star(lab, n: int) -> str:
    """The seed topology plus a star of n namespaces on a root-namespace bridge (about 8n+40 steps)."""
    ports = "".join(f"      \"@v{i}\": {{kind: veth, peer: \"@s{i}/eth0\", master: \"@sbr\"}}\n" for i in range(n))
    host = "\n".join(HOST_BRIDGE.split("\n")[3:]).replace(
        '      "@h2"', '      "@sbr": {kind: bridge}\n' + ports + '      "@h2"')
    text = SEED + host.rstrip("\n") + "\n"
    text += "".join(f"  \"@s{i}\":\n    interfaces:\n      eth0: {{addresses: [10.9.0.{i + 1}/24]}}\n" for i in range(n))
    return lab.write(text)


def timed(lab, *args, check=0) -> float:
    start = time.perf_counter()
    lab.netlab(*args, check=check)
    return time.perf_counter() - start


def test_sigkill_during_apply_then_apply_or_destroy_recovers(lab):
    path = star(lab, 30)
    canary = canaries(lab)
    before = canary()
    # The kernel is written between the end of reading (about when a diff would return) and the end.
    first_write = timed(lab, "diff", path, check=2)
    full = timed(lab, "apply", path)
    lab.netlab("destroy", path, check=0)
    rng = random.Random(1234 if "CI" in os.environ else None)
    partial = 0
    try:
        for i in range(POINTS):
            offset = first_write * 0.9 + (full - first_write * 0.9) * (i + rng.random()) / POINTS
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
            assert canary() == before
        assert partial >= max(1, POINTS // 8), f"only {partial} of {POINTS} kills landed inside an apply"
    finally:
        subprocess.run(["ip", "netns", "del", f"{lab.p}user"], check=False)
        subprocess.run(["ip", "link", "del", f"{lab.p}ubr"], check=False)
