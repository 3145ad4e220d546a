"""The example topologies on Debian's stock kernel (6.1): those whose kinds this machine's kernel lacks,
topologies/vlan.yaml (module 8021q) and topologies/ipvlan.yaml (module ipvlan), each proved with traffic,
read back with iproute2 and destroyed to nothing; and the others of issue 11 (macvlan.yaml, vxlan.yaml,
tuntap.yaml, proved in full on this machine by tests/test_kernel_topologies.py) applied and pinged there
too, since 6.1 makes a link whose parent is in another namespace differently; topologies/impaired.yaml
(issue 12: module sch_netem, which this machine's kernel lacks), the tutorial's chapter on impairments
played through: applied, read back with tc, a ping across the impaired link as slow as both ends' delays,
drift made with tc found and repaired, a foreign root qdisc refused, destroyed to nothing.

Marked `stock_kernel` (tests/conftest.py): CI runs them in the guest lane (.ci/stock-kernel), where netlab
is driven through its Python API in this process (a new Python process costs 20-25 s of imports under
emulation); elsewhere a kernel without the module skips them with the reason. Like
tests/test_kernel_topologies.py, the files are applied with their own plain names (h1, srv, c1...): a
test fails before any change if one of them is taken already.
"""

from __future__ import annotations

import json
import re
import statistics
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
IMPAIRED = ROOT / "topologies" / "impaired.yaml"


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


# -- topologies/impaired.yaml -----------------------------------------------------------------------------

def tc_root(ns: str, dev: str) -> dict[str, Any]:
    """The root qdisc of `dev` as iproute2 reports it (`tc -j qdisc show`)."""
    out = subprocess.run(["tc", "-j", "-n", ns, "qdisc", "show", "dev", dev], check=True, capture_output=True,
                         text=True, timeout=30).stdout
    roots = [q for q in json.loads(out) if q.get("root")]
    assert len(roots) == 1, out
    found: dict[str, Any] = roots[0]
    return found


def tc(ns: str, *args: str) -> None:
    subprocess.run(["tc", "-n", ns, "qdisc", *args], check=True, capture_output=True, timeout=30)


def rtts(ns: str, dst: str, count: int) -> list[float]:
    """The round-trip times (ms) of `count` pings 0.2 s apart that were answered."""
    out = subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", dst],
                         capture_output=True, text=True, timeout=60, check=False).stdout
    return [float(t) for t in re.findall(r"time=([0-9.]+) ms", out)]


IMPAIRMENT = "netem delay 40ms, jitter 5ms, loss 1%, rate 10mbit, limit 1000"


@pytest.mark.stock_kernel("sch_netem")
def test_impaired_slows_the_link_to_ns2_both_ways_and_repairs_drift_made_with_tc(lab):
    """docs/tutorial.md's impairments chapter, on the file as shipped. Applied: both ends of ns2's veth
    carry netlab's netem (handle 6e6d:) with the declared values as tc reads them (40 ms, 5 ms, 1%,
    10 Mbit/s, the derived limit 1000), the clean link keeps the veth's default noqueue. A ping from ns1 to
    ns2 crosses each impaired end once: no answer comes sooner than 2 x (40 - 5) = 70 ms (netem never
    sends a packet before its time; jitter is uniform over +-5 ms), and the mean of at least 20 answers
    is at least 80 - 3 ms (the sum of the delays; the mean of n >= 20 round trips, each the sum of two
    uniform +-5 ms jitters, has a standard deviation under 0.92 ms: 3 ms is over 3 of them, and emulation
    only adds) and at most 20 ms above 80 ms plus the clean link's mean (a rate or delay applied wrong
    would show). `tc qdisc change` (delay 100ms; jitter and loss 0, as tc sends them) and `tc qdisc del`
    by hand: `diff` exits 2 naming each parameter; `apply` changes vth3's in place (same handle) and adds
    vth2's. A root qdisc of someone else's (handle 1:) on an impaired link: CONFLICT, exit 1, it stays.
    Destroyed: nothing left."""
    topo = shipped(lab, IMPAIRED)
    plan = api.apply(topo)
    text = plan.render()
    assert plan.summary() == {"add": 8, "change": 0, "destroy": 0}, text  # 3 namespaces, br0, 2 veths, 2 qdiscs
    for where in ("ns0/vth2", "ns2/vth3"):
        assert f"+   impair {where}: {IMPAIRMENT}\n" in text, text
    assert api.diff(topo).empty
    for ns, dev in (("ns0", "vth2"), ("ns2", "vth3")):
        q = tc_root(ns, dev)
        opts = q["options"]
        assert q["kind"] == "netem" and q["handle"] == "6e6d:", q
        assert opts["limit"] == 1000 and opts["rate"]["rate"] == 1_250_000, q  # 10 mbit/s in bytes/s
        assert opts["delay"]["delay"] == pytest.approx(0.040) and opts["delay"]["jitter"] == pytest.approx(0.005), q
        assert opts["loss-random"]["loss"] == pytest.approx(0.01, rel=1e-6), q
    for ns, dev in (("ns0", "vth0"), ("ns1", "vth1")):
        assert tc_root(ns, dev)["kind"] == "noqueue"
    shown = lab.netlab("show", str(IMPAIRED), check=0).stdout
    assert f"  impair vth3: {IMPAIRMENT}\n" in shown, shown

    assert ping("ns1", "10.0.0.3") and ping("ns1", "10.0.0.1")  # neighbours resolved before timing
    clean = rtts("ns1", "10.0.0.1", 10)
    slow = rtts("ns1", "10.0.0.3", 30)
    assert len(clean) >= 8 and len(slow) >= 20, (clean, slow)
    assert min(slow) >= 70, slow
    assert 77 <= statistics.mean(slow) <= 80 + statistics.mean(clean) + 20, (slow, clean)

    tc("ns2", "change", "dev", "vth3", "root", "netem", "delay", "100ms")
    tc("ns0", "del", "dev", "vth2", "root")
    drift = lab.netlab("diff", str(IMPAIRED), check=2).stdout
    assert drift.splitlines() == [
        f"  +   impair ns0/vth2: {IMPAIRMENT}",
        "  ~   impair ns2/vth3: delay 100ms -> 40ms, jitter 0ms -> 5ms, loss 0% -> 1%",
        "",
        "Plan: 1 to add, 1 to change, 0 to destroy."], drift
    plan = api.apply(topo)
    assert plan.summary() == {"add": 1, "change": 1, "destroy": 0}, plan.render()
    assert [s.op for s in plan.steps] == ["add_qdisc", "change_qdisc"], plan.render()
    assert api.diff(topo).empty
    for ns, dev in (("ns0", "vth2"), ("ns2", "vth3")):
        q = tc_root(ns, dev)
        assert q["handle"] == "6e6d:" and q["options"]["delay"]["delay"] == pytest.approx(0.040), q

    tc("ns2", "del", "dev", "vth3", "root")
    tc("ns2", "add", "dev", "vth3", "root", "handle", "1:", "netem", "delay", "1ms")
    refused = lab.netlab("apply", str(IMPAIRED), check=1).stderr
    assert "CONFLICT" in refused and "qdisc netem 1: is link ns2/vth3's root qdisc" in refused, refused
    assert tc_root("ns2", "vth3")["handle"] == "1:"
    tc("ns2", "del", "dev", "vth3", "root")
    api.apply(topo)
    assert tc_root("ns2", "vth3")["handle"] == "6e6d:" and api.diff(topo).empty

    destroyed(topo)
