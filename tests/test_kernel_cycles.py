"""Destroy and re-create back to back (part of issue 4). The kernel tears namespaces down asynchronously,
so the veths they take with them die late; `destroy` waits for that, so that an `apply` right after it
never finds a name still taken ("File exists") or a device going away ("No such device").

NETLAB_CYCLES sets the number of destroy/apply cycles (default 100).
"""

import os

import pytest

from netlab import api
from netlab.model import load

from test_kernel_reconcile import HOST_BRIDGE, SEED

pytestmark = pytest.mark.kernel
CYCLES = int(os.environ.get("NETLAB_CYCLES", "100"))


def leftovers(prefix: str) -> list[str]:
    netns = [n for n in os.listdir("/run/netns") if n.startswith(prefix)] if os.path.isdir("/run/netns") else []
    return netns + [l for l in os.listdir("/sys/class/net") if l.startswith(prefix)]


def test_destroy_then_apply_back_to_back(lab):
    topo = load(lab.write(SEED + "\n".join(HOST_BRIDGE.split("\n")[3:])))
    api.apply(topo)
    for cycle in range(CYCLES):
        destroyed = api.destroy(topo)
        assert not destroyed.empty and leftovers(lab.p) == [], f"cycle {cycle}: {leftovers(lab.p)}"
        applied = api.apply(topo)  # raises on any failure, NOT_CONVERGED included
        assert not applied.empty and api.diff(topo).empty, f"cycle {cycle}"
    assert lab.ping(f"{lab.p}c1", "10.1.0.12") and lab.ping(f"{lab.p}n1", "10.0.0.3")
