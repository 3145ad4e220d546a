"""The example topologies on Debian's stock kernel (6.1): those whose kinds this machine's kernel lacks,
topologies/vlan.yaml (module 8021q) and topologies/ipvlan.yaml (module ipvlan), each proved with traffic,
read back with iproute2 and destroyed to nothing; and the others of issue 11 (macvlan.yaml, vxlan.yaml,
tuntap.yaml, proved in full on this machine by tests/test_kernel_topologies.py) applied and pinged there
too, since 6.1 makes a link whose parent is in another namespace differently (last test).

Marked `stock_kernel` (tests/conftest.py): CI runs them in the guest lane (.ci/stock-kernel), where netlab
is driven through its Python API in this process (a new Python process costs 20-25 s of imports under
emulation); elsewhere a kernel without the module skips them with the reason. Like
tests/test_kernel_topologies.py, the files are applied with their own plain names (h1, srv, c1...): a
test fails before any change if one of them is taken already.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from netlab import api
from netlab.model import Topology, load, loads

from conftest import ROOT, Lab, ip_json, netns_names

pytestmark = pytest.mark.kernel

VLAN = ROOT / "topologies" / "vlan.yaml"
IPVLAN = ROOT / "topologies" / "ipvlan.yaml"
MACVLAN = ROOT / "topologies" / "macvlan.yaml"
VXLAN = ROOT / "topologies" / "vxlan.yaml"
TUNTAP = ROOT / "topologies" / "tuntap.yaml"


def shipped(lab: Lab, path: Path) -> Topology:
    """A shipped topology as it is, its namespaces' names free (the lab's teardown destroys it)."""
    topo = load(str(path))
    taken = set(topo.namespaces) & set(netns_names())
    assert not taken, f"namespaces {sorted(taken)} exist already: {path.name} uses these names as they are"
    lab.topologies.add(topo.name)
    return topo


def edited(path: Path, old: str, new: str) -> Topology:
    """The shipped topology (same name) with one text replaced everywhere it occurs."""
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path.name}"
    return loads(text.replace(old, new))


def link(ns: str, name: str) -> dict[str, Any]:
    """iproute2's detailed view of one link (`ip -j -d link show`), with its addresses (`ip -j addr`)."""
    found: dict[str, Any] = ip_json("-n", ns, "-d", "link", "show", "dev", name)[0]
    addrs = ip_json("-n", ns, "addr", "show", "dev", name)[0].get("addr_info", [])
    found["addresses"] = sorted(f"{a['local']}/{a['prefixlen']}" for a in addrs if a.get("scope") != "link")
    return found


def parent_of(ns: str, name: str) -> tuple[str, str]:
    """The link a vlan or ipvlan sits on, as iproute2 reports it: (namespace, name). iproute2 names a
    parent of the link's own namespace ("link"), and gives one in another by its link_index and the
    link_netnsid of that namespace."""
    found = link(ns, name)
    if "link" in found:
        return ns, found["link"]
    other = ns
    if "link_netnsid" in found:
        ids = {i["nsid"]: i.get("name") for i in ip_json("-n", ns, "netns", "list-id")}
        other = ids[found["link_netnsid"]]
    by_index = {lk["ifindex"]: lk["ifname"] for lk in ip_json("-n", other, "link", "show")}
    return other, by_index[found["link_index"]]


def ping(ns: str, dst: str, tries: int = 4) -> bool:
    """One echo from `ns` to `dst` answered within a second, tried up to `tries` times (the first packets
    after an apply wait for neighbour discovery)."""
    cmd = ["ip", "netns", "exec", ns, "ping", "-c1", "-W1", dst]
    return any(subprocess.run(cmd, capture_output=True, timeout=10, check=False).returncode == 0
               for _ in range(tries))


def unreached(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(src, dst) for src, dst in pairs if not ping(src, dst)]


def destroyed(topo: Topology) -> None:
    plan = api.destroy(topo)
    assert plan.summary()["destroy"] == len(topo.namespaces), plan.render()
    assert not set(topo.namespaces) & set(netns_names())
    assert api.destroy(topo).empty


# -- topologies/vlan.yaml ---------------------------------------------------------------------------------

@pytest.mark.stock_kernel("8021q")
def test_vlan_trunk_carries_each_vlan_to_its_own_and_not_across(lab):
    """Two VLANs over one veth: each VLAN's pair of interfaces reaches the other (both ways), the trunk
    carries no address; when h2's second interface is made VLAN 30 instead of 20 (a replace: the kernel
    does not change a VLAN's id), h1's VLAN 20 frames find nothing on h2, while VLAN 10 still answers;
    the file applied again restores VLAN 20."""
    topo = shipped(lab, VLAN)
    plan = api.apply(topo)
    assert plan.summary() == {"add": 7, "change": 0, "destroy": 0}, plan.render()  # 2 namespaces, the veth, 4 VLANs
    assert api.diff(topo).empty
    for ns, host in (("h1", 1), ("h2", 2)):
        assert link(ns, "eth0")["addresses"] == []
        for vid in (10, 20):
            vlan = link(ns, f"eth0.{vid}")
            info = vlan["linkinfo"]
            assert info["info_kind"] == "vlan" and info["info_data"]["id"] == vid, vlan
            assert info["info_data"]["protocol"] == "802.1Q" and vlan["ifalias"] == "netlab:vlan", vlan
            assert parent_of(ns, f"eth0.{vid}") == (ns, "eth0")
            assert vlan["addresses"] == [f"10.{vid}.0.{host}/24"] and "UP" in vlan["flags"]
    pairs = [("h1", "10.10.0.2"), ("h1", "10.20.0.2"), ("h2", "10.10.0.1"), ("h2", "10.20.0.1")]
    assert not unreached(pairs), f"(from, to) that got no answer: {unreached(pairs)}"

    mismatched = edited(VLAN, "id: 20, addresses: [10.20.0.2/24]", "id: 30, addresses: [10.20.0.2/24]")
    plan = api.apply(mismatched)
    text = plan.render()
    assert plan.summary() == {"add": 1, "change": 0, "destroy": 1} and "-/+" in text and "h2/eth0.20" in text, text
    assert link("h2", "eth0.20")["linkinfo"]["info_data"]["id"] == 30
    assert api.diff(mismatched).empty and not api.diff(topo).empty
    assert not ping("h1", "10.20.0.2", tries=2) and not ping("h2", "10.20.0.1", tries=1)
    assert ping("h1", "10.10.0.2") and ping("h2", "10.10.0.1")

    plan = api.apply(topo)
    assert plan.summary() == {"add": 1, "change": 0, "destroy": 1}, plan.render()
    assert link("h2", "eth0.20")["linkinfo"]["info_data"]["id"] == 20
    assert not unreached(pairs), f"(from, to) that got no answer: {unreached(pairs)}"
    assert api.diff(topo).empty
    destroyed(topo)


# -- topologies/ipvlan.yaml -------------------------------------------------------------------------------

@pytest.mark.stock_kernel("ipvlan")
def test_ipvlan_l3_containers_share_the_nics_mac_and_reach_each_other_across_subnets(lab):
    """Two ipvlans of srv's nic0 in mode l3, in c1 and c2, in two subnets: both carry the NIC's MAC and no
    ARP; they reach each other with no router between them, and the LAN's router reaches both through
    srv's address, knowing one MAC (srv's) for all three. Flags private (in place, the same ifindexes)
    keeps the containers apart and the LAN still reaches them; the file applied again joins them."""
    topo = shipped(lab, IPVLAN)
    api.apply(topo)
    assert api.diff(topo).empty
    nic = link("srv", "nic0")
    index = {}
    for ns, address in (("c1", "10.1.0.11/24"), ("c2", "10.2.0.12/24")):
        iv = link(ns, "eth0")
        info = iv["linkinfo"]
        assert info["info_kind"] == "ipvlan" and info["info_data"]["mode"] == "l3", iv
        assert iv["address"] == nic["address"] and "NOARP" in iv["flags"], (iv, nic["address"])
        assert iv["addresses"] == [address] and iv["ifalias"] == "netlab:ipvlan"
        assert parent_of(ns, "eth0") == ("srv", "nic0")
        index[ns] = iv["ifindex"]
    pairs = [("c1", "10.2.0.12"), ("c2", "10.1.0.11"), ("c1", "10.0.0.1"), ("c2", "10.0.0.1"),
             ("lan", "10.1.0.11"), ("lan", "10.2.0.12")]
    assert not unreached(pairs), f"(from, to) that got no answer: {unreached(pairs)}"
    neigh = {n["dst"]: n.get("lladdr") for n in ip_json("-n", "lan", "neigh", "show", "dev", "eth0")}
    assert neigh.get("10.0.0.10") == nic["address"] and not {"10.1.0.11", "10.2.0.12"} & set(neigh), neigh

    private = edited(IPVLAN, "mode: l3,", "mode: l3, flags: private,")
    plan = api.apply(private)
    assert plan.summary()["add"] == 0 and plan.summary()["destroy"] == 0 and plan.summary()["change"] >= 1, \
        plan.render()
    for ns in ("c1", "c2"):
        iv = link(ns, "eth0")
        data = iv["linkinfo"]["info_data"]  # iproute2 6.1 prints the port's flags as "private": true
        assert iv["ifindex"] == index[ns] and (data.get("private") is True or data.get("flags") == "private"), iv
    assert api.diff(private).empty
    assert not ping("c1", "10.2.0.12", tries=2) and not ping("c2", "10.1.0.11", tries=1)
    assert ping("lan", "10.1.0.11") and ping("lan", "10.2.0.12")

    api.apply(topo)
    assert {ns: link(ns, "eth0")["ifindex"] for ns in ("c1", "c2")} == index
    assert not unreached(pairs), f"(from, to) that got no answer: {unreached(pairs)}"
    assert api.diff(topo).empty
    destroyed(topo)


# -- macvlan.yaml, vxlan.yaml, tuntap.yaml on 6.1 -----------------------------------------------------------

@pytest.mark.stock_kernel
@pytest.mark.parametrize("path, pairs", [
    (MACVLAN, [("c1", "10.0.0.12"), ("c2", "10.0.0.11"), ("c1", "10.0.0.1"), ("lan", "10.0.0.12")]),
    (VXLAN, [("c1", "10.42.0.2"), ("c2", "10.42.0.1")]),
    (TUNTAP, []),
], ids=["macvlan", "vxlan", "tuntap"])
def test_the_other_examples_apply_and_answer_on_the_stock_kernel(lab, path, pairs):
    """The examples this machine proves in full, on 6.1: applied, in sync, the pings across the kind
    answered (tun/tap need a program: made, persistent and owned is what is checked), destroyed."""
    topo = shipped(lab, path)
    api.apply(topo)
    assert api.diff(topo).empty
    assert not unreached(pairs), f"(from, to) that got no answer: {unreached(pairs)}"
    if path == TUNTAP:
        for name, kind in (("tap0", "tap"), ("tun0", "tun")):
            data = link("vmhost", name)["linkinfo"]["info_data"]
            assert data["type"] == kind and data["persist"] is True, data
        assert link("vmhost", "tap0")["master"] == "br0" and link("vmhost", "tun0")["addresses"] == ["10.8.0.1/24"]
    assert api.diff(topo).empty
    destroyed(topo)


# A macvlan in a container named like a link of its parent's namespace: c1's eth0 on srv's eth0.
SAME_NAME = """
name: "@"
namespaces:
  "@lan":
    interfaces:
      eth0: {kind: veth, peer: "@srv/eth0", addresses: [10.0.0.1/24]}
  "@srv":
    interfaces:
      eth0: {}
  "@c1":
    interfaces:
      eth0: {kind: macvlan, parent: "@srv/eth0", addresses: [10.0.0.11/24]}
"""


@pytest.mark.stock_kernel
def test_a_child_named_as_its_parent_in_another_namespace_is_made_from_the_parents_side(lab):
    """c1's macvlan `eth0` on srv's `eth0`, the container pattern: made from the child's side (with
    IFLA_LINK_NETNSID), 6.1 would make it in srv first and refuse it there (EEXIST); netlab sends that
    create from srv's side with IFLA_NET_NS_FD, as `ip link add ... netns` does, and marks it in c1."""
    p = lab.p
    lab.topologies.add(p)
    topo = loads(SAME_NAME.replace("@", p))
    api.apply(topo)
    assert api.diff(topo).empty
    got = ip_json("-n", f"{p}c1", "-d", "link", "show", "dev", "eth0")[0]
    assert got["ifalias"] == f"netlab:{p}" and got["linkinfo"]["info_kind"] == "macvlan", got
    assert parent_of(f"{p}c1", "eth0") == (f"{p}srv", "eth0") and ping(f"{p}c1", "10.0.0.1")
    destroyed(topo)
