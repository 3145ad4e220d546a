"""Bridge VLAN filtering and port VLANs as a topology declares them (issue 11), on Debian's stock kernel:
this machine's kernel is built without CONFIG_BRIDGE_VLAN_FILTERING, so these run in the guest lane
(.ci/stock-kernel), netlab driven through its Python API in this process, the kernel read back with
`bridge -j vlan show` and checked by traffic. On a kernel without VLAN filtering outside CI they skip."""

import json
import subprocess
from typing import Any

import pytest

from netlab import api
from netlab.model import Topology, loads

from conftest import Lab

pytestmark = [pytest.mark.kernel, pytest.mark.stock_kernel("bridge_vlan_filtering")]

# A switch namespace with a VLAN-filtering bridge: h1 on an access port of VLAN 10 (untagged), h2 on an
# access port of VLAN 20 (the same subnet, so only the VLANs keep them apart), h3 on a trunk (10 and 20
# tagged, no pvid). The bridge's own address is in VLAN 10 (its "self" VLAN).
SWITCH = """
name: "@"
namespaces:
  "@sw":
    interfaces:
      br0: {kind: bridge, vlan_filtering: true, addresses: [10.10.0.1/24], pvid: 10}
      p1:  {kind: veth, peer: "@h1/eth0", master: br0, pvid: 10}
      p2:  {kind: veth, peer: "@h2/eth0", master: br0, pvid: 20}
      p3:  {kind: veth, peer: "@h3/eth0", master: br0, vlans: [10, 20]}
  "@h1":
    interfaces:
      eth0: {addresses: [10.10.0.11/24]}
  "@h2":
    interfaces:
      eth0: {addresses: [10.10.0.12/24]}
  "@h3":
    interfaces:
      eth0: {}
"""


def _load(lab: Lab, text: str) -> Topology:
    lab.topologies.add(lab.p)
    return loads(text.replace("@", lab.p))


def _vlans(ns: str) -> dict[str, list[str]]:
    """`bridge -j vlan show` in a namespace: each port's (and the bridge's) VLANs, as '10 pvid untagged'."""
    out = subprocess.run(["bridge", "-n", ns, "-j", "vlan", "show"], check=True, capture_output=True, text=True).stdout
    found: dict[str, list[str]] = {}
    for entry in json.loads(out or "[]"):
        words = []
        for v in entry.get("vlans", []):
            flags = v.get("flags", [])
            words.append(" ".join([str(v["vlan"])] + ["pvid"] * ("PVID" in flags)
                                  + ["untagged"] * ("Egress Untagged" in flags)))
        found[entry["ifname"]] = words
    return found


def _ping(lab: Lab, ns: str, address: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "2", address],
                          capture_output=True, check=False).returncode == 0


def test_ports_carry_exactly_their_vlans_and_traffic_follows_them(lab):
    topo = _load(lab, SWITCH)
    p = lab.p
    sw = f"{p}sw"
    api.apply(topo)
    vlans: dict[str, Any] = _vlans(sw)
    # exactly the declared VLANs: the kernel's default VLAN 1 is gone from every declared port and the bridge
    assert vlans == {"br0": ["10 pvid untagged"], "p1": ["10 pvid untagged"], "p2": ["20 pvid untagged"],
                     "p3": ["10", "20"]}, vlans
    assert _ping(lab, f"{p}h1", "10.10.0.1")  # VLAN 10 reaches the bridge's own address
    assert not _ping(lab, f"{p}h2", "10.10.0.1")  # VLAN 20 does not (same subnet, other VLAN)
    assert not _ping(lab, f"{p}h1", "10.10.0.12")
    assert api.diff(topo).empty


def test_vlan_drift_is_shown_and_repaired_and_a_change_converges(lab):
    topo = _load(lab, SWITCH)
    p = lab.p
    sw = f"{p}sw"
    api.apply(topo)
    subprocess.run(["bridge", "-n", sw, "vlan", "del", "dev", "p3", "vid", "20"], check=True)
    subprocess.run(["bridge", "-n", sw, "vlan", "add", "dev", "p1", "vid", "30"], check=True)
    text = api.diff(topo).render()
    assert f"~   link {sw}/p3: vlans 10 -> 10, 20" in text, text
    assert f"~   link {sw}/p1: vlans 10 pvid untagged, 30 -> 10 pvid untagged" in text, text
    api.apply(topo)
    assert _vlans(sw)["p3"] == ["10", "20"] and _vlans(sw)["p1"] == ["10 pvid untagged"]
    changed = _load(lab, SWITCH.replace("pvid: 20}", "pvid: 10}").replace("vlans: [10, 20]}", "vlans: [20]}"))
    plan = api.apply(changed)
    assert plan.summary() == {"add": 0, "change": 2, "destroy": 0}, plan.render()
    assert _vlans(sw)["p2"] == ["10 pvid untagged"] and _vlans(sw)["p3"] == ["20"]
    assert _ping(lab, f"{p}h2", "10.10.0.1")  # h2 is in VLAN 10 now
    assert api.diff(changed).empty
    api.destroy(changed)
