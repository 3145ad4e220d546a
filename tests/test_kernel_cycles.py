"""Destroy and re-create back to back (part of issue 4). The kernel tears namespaces down asynchronously,
so the veths they take with them die late; `destroy` waits for that, so that an `apply` right after it
never finds a name still taken ("File exists") or a device going away ("No such device").

NETLAB_CYCLES sets the number of destroy/apply cycles (default 100).
"""

import os

import pytest

from netlab import api
from netlab.model import load

from conftest import count
from test_kernel_reconcile import HOST_BRIDGE, SEED

pytestmark = pytest.mark.kernel
CYCLES = int(os.environ.get("NETLAB_CYCLES", "100"))


def leftovers(prefix: str) -> list[str]:
    """The topology's namespaces and root-namespace links (the user's canaries, `<prefix>u...`, aside)."""
    netns = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
    return [n for n in netns + os.listdir("/sys/class/net") if n.startswith(prefix)
            and not n.startswith(prefix + "u")]


def test_destroy_then_apply_back_to_back(lab, canaries, figures):
    topo = load(lab.write(SEED + "\n".join(HOST_BRIDGE.split("\n")[3:])))
    api.apply(topo)
    for cycle in range(CYCLES):
        canaries.join(f"{lab.p}br")  # a user's port on the topology's bridge, freed by the destroy
        destroyed = api.destroy(topo)
        assert not destroyed.empty and leftovers(lab.p) == [], f"cycle {cycle}: {leftovers(lab.p)}"
        applied = api.apply(topo)  # raises on any failure, NOT_CONVERGED included
        assert not applied.empty and api.diff(topo).empty, f"cycle {cycle}"
        assert canaries.changes(port_freed=True) == [], f"cycle {cycle}"
    assert lab.ping(f"{lab.p}c1", "10.1.0.12") and lab.ping(f"{lab.p}n1", "10.0.0.3")
    count(figures, "cycles: destroy then apply, back to back", CYCLES)
