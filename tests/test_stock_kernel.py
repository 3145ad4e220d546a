"""What this machine's kernel cannot test: link kinds whose modules it lacks, on Debian's stock kernel.

Every test here is marked `stock_kernel` (tests/conftest.py): CI runs them in the guest lane
(.ci/stock-kernel: Debian's linux-image-amd64 under QEMU, one pytest process), and a developer's machine
whose kernel lacks a module reports them as skipped with the reason. netlab is driven through its Python
API in this process (a new Python process costs 20-25 s of imports under emulation); the kernel's state
is read back with iproute2, as in every kernel suite.
"""

import errno
import json
import subprocess
from typing import Any

import pytest

from netlab import api
from netlab.errors import ConflictError
from netlab.model import Topology, loads

from conftest import Lab, ip_json, netns_names

pytestmark = pytest.mark.kernel

# Dummy interfaces carrying addresses of both families, one with an MTU and a MAC, one declared down; a
# gateway route through one and an on-link route through another; and a dummy in the root namespace.
DUMMIES = """
name: "@"
namespaces:
  host:
    interfaces:
      "@d": {kind: dummy}
  "@n0":
    interfaces:
      d0: {kind: dummy, addresses: [192.0.2.1/32, "2001:db8::1/128"]}
      d1: {kind: dummy, addresses: [198.51.100.1/24], mtu: 9000, mac: "02:00:5e:00:53:01"}
      d2: {kind: dummy, up: false}
    routes:
      - {to: 203.0.113.0/24, via: 198.51.100.254}
      - {to: 198.18.1.0/24, dev: d0}
"""


def _load(lab: Lab, text: str) -> Topology:
    """The topology under the test's prefix, loaded from text (the lab's teardown destroys it)."""
    lab.topologies.add(lab.p)
    return loads(text.replace("@", lab.p))


def _link(ns: str | None, name: str) -> dict[str, Any]:
    """iproute2's detailed view of one link (`ip -j -d link show`), with its addresses (`ip -j addr`)."""
    pre = ["-n", ns] if ns else []
    link: dict[str, Any] = ip_json(*pre, "-d", "link", "show", "dev", name)[0]
    addrs = ip_json(*pre, "addr", "show", "dev", name)[0].get("addr_info", [])
    link["addresses"] = sorted(f"{a['local']}/{a['prefixlen']}" for a in addrs if a.get("scope") != "link")
    return link


def _routes(ns: str) -> dict[str, dict[str, Any]]:
    """netlab's routes in a namespace (route protocol 201), by destination."""
    return {r["dst"]: r for r in ip_json("-n", ns, "-4", "route", "show", "proto", "201")}


@pytest.mark.stock_kernel("dummy")
def test_dummy_interfaces_with_addresses_and_routes_are_built(lab):
    topo = _load(lab, DUMMIES)
    p = lab.p
    plan = api.apply(topo)
    assert plan.summary()["add"] >= 4, plan.render()
    ns = f"{p}n0"
    d0, d1, d2, hd = _link(ns, "d0"), _link(ns, "d1"), _link(ns, "d2"), _link(None, f"{p}d")
    for link in (d0, d1, d2, hd):
        assert link["linkinfo"]["info_kind"] == "dummy" and link["ifalias"] == f"netlab:{p}", link
    assert d0["addresses"] == ["192.0.2.1/32", "2001:db8::1/128"] and "UP" in d0["flags"]
    assert d1["addresses"] == ["198.51.100.1/24"] and d1["mtu"] == 9000 and d1["address"] == "02:00:5e:00:53:01"
    assert "UP" not in d2["flags"] and d2["addresses"] == [] and d0["mtu"] == 1500
    routes = _routes(ns)
    assert set(routes) == {"203.0.113.0/24", "198.18.1.0/24"}, routes
    assert routes["203.0.113.0/24"]["gateway"] == "198.51.100.254" and routes["203.0.113.0/24"]["dev"] == "d1"
    assert routes["198.18.1.0/24"]["dev"] == "d0" and "gateway" not in routes["198.18.1.0/24"]
    # a packet to the on-link route's prefix leaves by d0 (the kernel's own lookup agrees)
    got = ip_json("-n", ns, "route", "get", "198.18.1.7")[0]
    assert got["dev"] == "d0" and got["prefsrc"] == "192.0.2.1", got
    assert api.diff(topo).empty and api.apply(topo).empty  # in sync, and a second apply changes nothing
    lab.netlab("diff", lab.write(DUMMIES), check=0)


@pytest.mark.stock_kernel("dummy")
def test_drift_on_dummies_is_shown_and_repaired(lab):
    topo = _load(lab, DUMMIES)
    p, ns = lab.p, f"{lab.p}n0"
    api.apply(topo)
    before = lab.snapshot()
    subprocess.run(["ip", "-n", ns, "addr", "del", "192.0.2.1/32", "dev", "d0"], check=True)
    subprocess.run(["ip", "-n", ns, "route", "del", "203.0.113.0/24"], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "d2", "up"], check=True)
    subprocess.run(["ip", "link", "set", f"{p}d", "down"], check=True)
    text = api.diff(topo).render()
    assert f"~   link {ns}/d0: address +192.0.2.1/32" in text, text
    assert f"~   link {ns}/d2: up -> down" in text, text
    assert f"~   link host/{p}d: down -> up" in text, text
    assert f"+   route {ns} 203.0.113.0/24: via 198.51.100.254 dev d1" in text, text
    # d0's last IPv4 address went, and the kernel took the route through d0 with it
    assert f"+   route {ns} 198.18.1.0/24: dev d0" in text, text
    assert "Plan: 2 to add, 3 to change, 0 to destroy." in text, text
    lab.netlab("diff", lab.write(DUMMIES), check=2)  # the CLI's exit code for drift
    plan = api.apply(topo)
    assert plan.summary() == {"add": 2, "change": 3, "destroy": 0}, plan.render()
    assert api.diff(topo).empty
    assert lab.snapshot() == before


CHANGED = """
name: "@"
namespaces:
  "@n0":
    interfaces:
      d0: {kind: dummy, addresses: [192.0.2.1/32, 192.0.2.2/32], mtu: 1280}
      d3: {kind: dummy, addresses: [198.51.100.3/24]}
    routes:
      - {to: 203.0.113.0/24, via: 198.51.100.254, metric: 7}
"""


@pytest.mark.stock_kernel("dummy")
def test_changing_the_file_converges_and_destroy_leaves_only_a_users_dummy(lab):
    topo = _load(lab, DUMMIES)
    p, ns = lab.p, f"{lab.p}n0"
    api.apply(topo)
    lab.ip("link", "add", f"{p}u0", "type", "dummy")  # a user's, beside the topology's
    subprocess.run(["ip", "-n", ns, "link", "add", "u1", "type", "dummy"], check=True)  # a user's, inside it
    changed = _load(lab, CHANGED)
    api.apply(changed)
    links = lab.links(ns)
    assert set(links) == {"lo", "d0", "d3", "u1"}, links
    assert links["d0"]["addresses"] == ["192.0.2.1/32", "192.0.2.2/32"] and links["d0"]["mtu"] == 1280
    assert links["d3"]["addresses"] == ["198.51.100.3/24"] and links["d3"]["kind"] == "dummy"
    routes = _routes(ns)
    assert set(routes) == {"203.0.113.0/24"} and routes["203.0.113.0/24"]["metric"] == 7, routes
    assert f"{p}d" not in lab.links() and f"{p}u0" in lab.links()
    assert api.diff(changed).empty
    with pytest.raises(ConflictError, match="u1"):
        api.destroy(changed)  # u1 would die with the namespace
    subprocess.run(["ip", "-n", ns, "link", "del", "u1"], check=True)
    api.destroy(changed)
    assert not [n for n in netns_names() if n.startswith(p)]
    assert [n for n in lab.links() if n.startswith(p)] == [f"{p}u0"]
    assert api.destroy(changed).empty  # nothing left to destroy


def _info(ns: str, name: str) -> dict[str, Any]:
    info: dict[str, Any] = _link(ns, name)["linkinfo"]
    return info


@pytest.mark.stock_kernel
def test_the_guest_kernel_has_what_the_lane_is_for(lab):
    """The lane's premise: the kernel it boots makes each thing this machine's kernel cannot, read back
    with its attributes (a kernel that took the request and ignored an option would not pass)."""
    ns = f"{lab.p}k"
    lab.ip("netns", "add", ns)

    def ip(*args: str) -> None:
        subprocess.run(["ip", "-n", ns, *args], check=True)

    ip("link", "add", "p0", "type", "veth", "peer", "name", "p1")
    ip("link", "add", "d0", "type", "dummy")
    ip("link", "add", "link", "p0", "name", "p0.10", "type", "vlan", "id", "10", "protocol", "802.1ad")
    ip("link", "add", "link", "p1", "name", "iv0", "type", "ipvlan", "mode", "l3")
    ip("link", "add", "br0", "type", "bridge", "vlan_filtering", "1")
    ip("link", "set", "d0", "master", "br0")
    subprocess.run(["bridge", "-n", ns, "vlan", "add", "dev", "d0", "vid", "20", "pvid", "untagged"], check=True)
    subprocess.run(["tc", "-n", ns, "qdisc", "add", "dev", "p0", "root", "netem", "delay", "5ms"], check=True)
    assert _info(ns, "d0")["info_kind"] == "dummy"
    vlan = _info(ns, "p0.10")
    assert vlan["info_kind"] == "vlan" and vlan["info_data"]["id"] == 10
    assert vlan["info_data"]["protocol"] == "802.1ad", vlan
    ipvlan = _info(ns, "iv0")
    assert ipvlan["info_kind"] == "ipvlan" and ipvlan["info_data"]["mode"] == "l3", ipvlan
    bridge = _info(ns, "br0")
    assert bridge["info_kind"] == "bridge" and bridge["info_data"]["vlan_filtering"] == 1, bridge
    out = subprocess.run(["bridge", "-n", ns, "-j", "vlan", "show", "dev", "d0"], check=True, capture_output=True,
                         text=True).stdout
    vlans = {v["vlan"]: v.get("flags", []) for port in json.loads(out) for v in port["vlans"]}
    assert set(vlans.get(20, [])) == {"PVID", "Egress Untagged"}, vlans
    qdiscs = json.loads(subprocess.run(["tc", "-n", ns, "-j", "qdisc", "show", "dev", "p0"], check=True,
                                       capture_output=True, text=True).stdout)
    netem = [q for q in qdiscs if q["kind"] == "netem"]
    assert netem and netem[0]["root"] is True, qdiscs


# ---------------------------------------------------------------------------------------------------------
# The kinds this machine's kernel lacks (vlan, ipvlan), and the cross-namespace create path of 6.1 (a child
# whose parent is in another namespace: the kernel makes it in the parent's namespace, then moves it).

# Two namespaces trunked over a veth: VLANs 10 and 20 on each side, an 802.1ad VLAN with an 802.1Q VLAN on
# it (QinQ), a vxlan carried over VLAN 10, and in a third namespace a VLAN whose parent is a's eth0. The
# 10.99.0.0/24 addresses sit on VLAN 10 in a and on VLAN 20 in b: the same subnet on two VLANs, which must
# not reach each other.
VLANS = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {kind: veth, peer: "@b/eth0"}
      eth0.10: {kind: vlan, parent: eth0, id: 10, addresses: [10.10.0.1/24, 10.99.0.1/24]}
      eth0.20: {kind: vlan, parent: eth0, id: 20, addresses: [10.20.0.1/24]}
      qinq: {kind: vlan, parent: eth0, id: 100, protocol: 802.1ad}
      qinq.5: {kind: vlan, parent: qinq, id: 5, addresses: [10.5.0.1/24]}
      vx0: {kind: vxlan, vni: 42, remote: 10.10.0.2, local: 10.10.0.1, parent: eth0.10, addresses: [10.42.0.1/24]}
  "@b":
    interfaces:
      eth0: {}
      eth0.10: {kind: vlan, parent: eth0, id: 10, addresses: [10.10.0.2/24]}
      eth0.20: {kind: vlan, parent: eth0, id: 20, addresses: [10.20.0.2/24, 10.99.0.2/24]}
      eth0.30: {kind: vlan, parent: eth0, id: 30, addresses: [10.30.0.2/24]}
      qinq: {kind: vlan, parent: eth0, id: 100, protocol: 802.1ad}
      qinq.5: {kind: vlan, parent: qinq, id: 5, addresses: [10.5.0.2/24]}
      vx0: {kind: vxlan, vni: 42, remote: 10.10.0.1, local: 10.10.0.2, parent: eth0.10, addresses: [10.42.0.2/24]}
  "@c":
    interfaces:
      v30: {kind: vlan, parent: "@a/eth0", id: 30, addresses: [10.30.0.1/24]}
"""


def _reaches(ns: str, address: str) -> bool:
    """One ping, one second's wait (a ping that must fail costs that second)."""
    return subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", address],
                          capture_output=True, timeout=30, check=False).returncode == 0


def _data(ns: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = _info(ns, name).get("info_data", {})
    return data


def _by_index(ns: str) -> dict[int, str]:
    return {link["ifindex"]: link["ifname"] for link in ip_json("-n", ns, "link", "show")}


def _ipvlan_flags(data: dict[str, Any]) -> str | None:
    """An ipvlan's flags as `ip -j -d` gives them: a key set true ("bridge", "private" or "vepa")."""
    return next((flag for flag in ("bridge", "private", "vepa") if data.get(flag) is True), None)


def _kinds(lab: Lab) -> dict[str, dict[str, Any]]:
    """What lab.snapshot() does not compare, for every link under the prefix: its kind's attributes as
    iproute2 reads them (a vlan's id and protocol, an ipvlan's mode and flags, a macvlan's mode, a vxlan's
    VNI, port and far end) and its parent (by name in its namespace; in another: that namespace's name, by
    the nsid, and the parent's name there, by its ifindex)."""
    keep = {"vlan": ("id", "protocol"), "ipvlan": ("mode", "flags"), "macvlan": ("mode",),
            "vxlan": ("id", "port", "remote", "local", "learning")}
    out: dict[str, dict[str, Any]] = {}
    for ns in [n for n in netns_names() if n.startswith(lab.p)]:
        ids = {i["nsid"]: i.get("name") for i in ip_json("-n", ns, "netns", "list-id")}
        for link in ip_json("-n", ns, "-d", "link", "show"):
            info = link.get("linkinfo", {})
            kind = info.get("info_kind")
            if kind not in keep:
                continue
            data = dict(info.get("info_data", {}))
            if kind == "ipvlan":
                data["flags"] = _ipvlan_flags(data)
            parent: Any = link.get("link")
            if "link_netnsid" in link:
                other = ids.get(link["link_netnsid"])
                parent = (other, _by_index(other).get(link["link_index"]) if other else link["link_index"])
            out[f"{ns}/{link['ifname']}"] = {"kind": kind, "parent": parent,
                                              **{k: data.get(k) for k in keep[kind]}}
    return out


@pytest.mark.stock_kernel("8021q")
def test_vlans_trunked_over_a_veth_carry_each_vlan_apart(lab):
    """Per-VLAN traffic (and none across two VLANs), QinQ, a vxlan over a VLAN, and a VLAN in another
    namespace than its parent (made in a's namespace by 6.1, then moved to c), each read back with iproute2."""
    topo = _load(lab, VLANS)
    p = lab.p
    a, b, c = f"{p}a", f"{p}b", f"{p}c"
    api.apply(topo)
    for ns, name, vid, proto, parent in [(a, "eth0.10", 10, "802.1Q", "eth0"), (a, "eth0.20", 20, "802.1Q", "eth0"),
                                         (a, "qinq", 100, "802.1ad", "eth0"), (a, "qinq.5", 5, "802.1Q", "qinq"),
                                         (b, "eth0.30", 30, "802.1Q", "eth0"), (b, "qinq", 100, "802.1ad", "eth0")]:
        link = _link(ns, name)
        data = link["linkinfo"]["info_data"]
        assert link["linkinfo"]["info_kind"] == "vlan" and (data["id"], data["protocol"]) == (vid, proto), link
        assert link["link"] == parent and link["ifalias"] == f"netlab:{p}" and "UP" in link["flags"], link
    for ns, there in [(a, "10.10.0.2"), (a, "10.20.0.2"), (a, "10.5.0.2"), (b, "10.5.0.1"), (a, "10.42.0.2"),
                      (c, "10.30.0.2")]:
        assert _reaches(ns, there), f"{ns} cannot reach {there}"
    # not across: b answers ARP only for an address of the link it came in on (Linux's default answers for
    # any of its addresses, and so would carry a's VLAN 10 to b's address on VLAN 20 through b's VLAN 10)
    subprocess.run(["ip", "netns", "exec", b, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"], check=True)
    assert _reaches(a, "10.20.0.2") and not _reaches(a, "10.99.0.2"), "VLAN 10 in a reached VLAN 20 in b"
    # c's VLAN: in c (and not left in a, where 6.1 made it), marked, its parent a's eth0 by a's nsid in c
    v30 = _link(c, "v30")
    assert v30["linkinfo"]["info_data"]["id"] == 30 and v30["ifalias"] == f"netlab:{p}", v30
    assert v30["addresses"] == ["10.30.0.1/24"] and "v30" not in lab.links(a)
    ids = {i["nsid"]: i.get("name") for i in ip_json("-n", c, "netns", "list-id")}
    assert ids[v30["link_netnsid"]] == a and _by_index(a)[v30["link_index"]] == "eth0", (ids, v30)
    vx = _data(a, "vx0")
    assert (vx["id"], vx["port"], vx["remote"], vx["local"]) == (42, 4789, "10.10.0.2", "10.10.0.1"), vx
    assert _kinds(lab)[f"{a}/vx0"]["parent"] is None  # the vxlan's parent is in its data, not IFLA_LINK
    assert api.diff(topo).empty


# A veth trunk with VLANs 10 (carrying a vxlan) on both sides, and in a VLAN 20 with an MTU of its own and
# QinQ (an 802.1Q VLAN on an 802.1ad one).
TRUNK = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {kind: veth, peer: "@b/eth0", mtu: 1500}
      eth0.10: {kind: vlan, parent: eth0, id: 10, addresses: [10.10.0.1/24]}
      eth0.20: {kind: vlan, parent: eth0, id: 20, mtu: 1400}
      qinq: {kind: vlan, parent: eth0, id: 100, protocol: 802.1ad}
      qinq.5: {kind: vlan, parent: qinq, id: 5}
      vx0: {kind: vxlan, vni: 42, remote: 10.10.0.2, local: 10.10.0.1, parent: eth0.10, addresses: [10.42.0.1/24]}
  "@b":
    interfaces:
      eth0: {}
      eth0.10: {kind: vlan, parent: eth0, id: 10, addresses: [10.10.0.2/24]}
      vx0: {kind: vxlan, vni: 42, remote: 10.10.0.1, local: 10.10.0.2, parent: eth0.10, addresses: [10.42.0.2/24]}
"""


def _mtus(ns: str) -> dict[str, int]:
    return {link["ifname"]: link["mtu"] for link in ip_json("-n", ns, "link", "show") if link["ifname"] != "lo"}


@pytest.mark.stock_kernel("8021q")
def test_vlan_id_change_replaces_drift_is_repaired_mtus_converge_and_destroy_removes_them(lab):
    topo = _load(lab, TRUNK)
    p = lab.p
    a, b = f"{p}a", f"{p}b"
    api.apply(topo)
    assert _mtus(a) == {"eth0": 1500, "eth0.10": 1500, "eth0.20": 1400, "qinq": 1500, "qinq.5": 1500, "vx0": 1450}
    before = {ns: _link(ns, "eth0.10")["ifindex"] for ns in (a, b)}
    # the id is not changed in place (the kernel would answer success and keep 10): the VLAN is replaced,
    # and the vxlan over it with it
    changed_text = TRUNK.replace("id: 10,", "id: 11,")
    changed = _load(lab, changed_text)
    text = api.diff(changed).render()
    for ns in (a, b):
        assert f"-/+ link {ns}/eth0.10: vlan on {ns}/eth0, id 11" in text and "# id 10 -> 11" in text, text
        assert f"-/+ link {ns}/vx0: " in text and f"its parent {ns}/eth0.10 is replaced" in text, text
    api.apply(changed)
    for ns, address in ((a, "10.10.0.1/24"), (b, "10.10.0.2/24")):
        link = _link(ns, "eth0.10")
        assert link["linkinfo"]["info_data"]["id"] == 11 and link["ifindex"] != before[ns], link
        assert link["addresses"] == [address] and link["ifalias"] == f"netlab:{p}", link
    assert _reaches(a, "10.10.0.2") and _reaches(a, "10.42.0.2") and api.diff(changed).empty
    # drift: a VLAN deleted by hand is listed, and made again
    subprocess.run(["ip", "-n", a, "link", "del", "eth0.20"], check=True)
    text = api.diff(changed).render()
    assert f"+   link {a}/eth0.20: vlan on {a}/eth0, id 20, protocol 802.1Q" in text, text
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in text, text
    api.apply(changed)
    assert _data(a, "eth0.20")["id"] == 20 and _mtus(a)["eth0.20"] == 1400 and api.diff(changed).empty
    # the trunk's MTU down under its VLANs (the one with its own MTU lower still), then up again
    lowered = _load(lab, changed_text.replace("mtu: 1500", "mtu: 1300").replace("mtu: 1400", "mtu: 1200"))
    plan = api.apply(lowered)
    mtus = _mtus(a)
    assert {k: v for k, v in mtus.items() if k != "vx0"} == {"eth0": 1300, "eth0.10": 1300, "eth0.20": 1200,
                                                             "qinq": 1300, "qinq.5": 1300}, (mtus, plan.render())
    assert api.diff(lowered).empty and _reaches(a, "10.10.0.2")
    api.apply(changed)
    mtus = _mtus(a)
    assert mtus["eth0"] == 1500 and mtus["eth0.20"] == 1400 and api.diff(changed).empty, mtus
    api.destroy(changed)
    assert not [n for n in netns_names() if n.startswith(p)]
    assert api.destroy(changed).empty and lab.snapshot() == {"<host>": {}}


@pytest.mark.stock_kernel("8021q")
def test_a_vxlan_over_a_vlan_keeps_room_for_its_header_when_the_trunk_goes_down(lab):
    topo = _load(lab, TRUNK)
    a = f"{lab.p}a"
    api.apply(topo)
    api.apply(_load(lab, TRUNK.replace("mtu: 1500", "mtu: 1300").replace("mtu: 1400", "mtu: 1200")))
    mtus = _mtus(a)
    assert mtus["eth0"] == mtus["eth0.10"] == 1300, mtus
    assert mtus["vx0"] <= 1300 - 50, mtus  # 1450: 1500-byte packets on a 1300-byte wire


# Two dummies in a namespace p: on d0 an ipvlan in each of x and y, on d1 a macvlan in each (the kernel
# makes each in p, then moves it: both ipvlans are named iv0, one after the other).
IPVLANS = """
name: "@"
namespaces:
  "@p":
    interfaces:
      d0: {kind: dummy}
      d1: {kind: dummy}
  "@x":
    interfaces:
      iv0: {kind: ipvlan, parent: "@p/d0", mode: l2, addresses: [10.40.0.1/24]}
      mv0: {kind: macvlan, parent: "@p/d1", mode: bridge, addresses: [10.41.0.1/24]}
  "@y":
    interfaces:
      iv0: {kind: ipvlan, parent: "@p/d0", mode: l2, addresses: [10.40.0.2/24]}
      mv0: {kind: macvlan, parent: "@p/d1", mode: bridge, addresses: [10.41.0.2/24]}
"""


@pytest.mark.stock_kernel("ipvlan", "dummy")
def test_ipvlans_and_macvlans_on_a_parent_in_another_namespace(lab):
    """ipvlans of one parent in two namespaces reach each other in l2 and in l3 mode; a mode change moves
    both in place (same ifindex); flags private parts them. macvlans across namespaces, as 6.1 makes them."""
    topo = _load(lab, IPVLANS)
    p = lab.p
    x, y, pn = f"{p}x", f"{p}y", f"{p}p"
    api.apply(topo)
    kinds = _kinds(lab)
    for ns in (x, y):
        assert kinds[f"{ns}/iv0"] == {"kind": "ipvlan", "parent": (pn, "d0"), "mode": "l2", "flags": "bridge"}
        assert kinds[f"{ns}/mv0"] == {"kind": "macvlan", "parent": (pn, "d1"), "mode": "bridge"}
        links = lab.links(ns)
        assert links["iv0"]["alias"] == links["mv0"]["alias"] == f"netlab:{p}", links
    assert set(lab.links(pn)) == {"lo", "d0", "d1"}  # nothing left where 6.1 made them
    assert _reaches(x, "10.40.0.2") and _reaches(y, "10.40.0.1") and _reaches(x, "10.41.0.2")
    index = {ns: _link(ns, "iv0")["ifindex"] for ns in (x, y)}
    l3 = _load(lab, IPVLANS.replace("mode: l2", "mode: l3"))
    text = api.diff(l3).render()
    assert f"~   link {x}/iv0: mode l2 -> l3" in text and f"~   link {y}/iv0: mode l2 -> l3" in text, text
    assert "Plan: 0 to add, 2 to change, 0 to destroy." in text, text
    api.apply(l3)
    for ns in (x, y):
        assert _data(ns, "iv0")["mode"] == "l3" and _link(ns, "iv0")["ifindex"] == index[ns]
    assert _reaches(x, "10.40.0.2") and api.diff(l3).empty
    private = _load(lab, IPVLANS.replace("mode: l2", "mode: l3, flags: private"))
    api.apply(private)
    assert {_ipvlan_flags(_data(ns, "iv0")) for ns in (x, y)} == {"private"}
    assert not _reaches(x, "10.40.0.2"), "ipvlans with flags private reached each other"
    assert api.diff(private).empty and api.diff(topo).summary() == {"add": 0, "change": 2, "destroy": 0}
    api.destroy(private)
    assert not [n for n in netns_names() if n.startswith(p)]


# The container pattern: a child in a namespace named as its parent in another (eth0 on the "host's" eth0).
# 6.1 makes a child created with IFLA_LINK_NETNSID in its parent's namespace first, under its own name, and
# then moves it: there the name is taken (EEXIST). netlab makes these from the parent's side.
SAME_NAME = """
name: "@"
namespaces:
  "@h":
    interfaces:
      eth0: {kind: dummy}
      eth1: {kind: dummy}
  "@x":
    interfaces:
      eth0: {kind: macvlan, parent: "@h/eth0", addresses: [10.50.0.1/24]}
      eth1: {kind: vlan, parent: "@h/eth1", id: 7}
  "@y":
    interfaces:
      eth0: {kind: macvlan, parent: "@h/eth0", addresses: [10.50.0.2/24]}
"""


@pytest.mark.stock_kernel("8021q", "dummy")
def test_a_child_named_as_its_parent_in_another_namespace(lab):
    topo = _load(lab, SAME_NAME)
    p = lab.p
    h, x = f"{p}h", f"{p}x"
    api.apply(topo)
    kinds = _kinds(lab)
    assert kinds[f"{x}/eth0"] == {"kind": "macvlan", "parent": (h, "eth0"), "mode": "bridge"}, kinds
    assert kinds[f"{x}/eth1"] == {"kind": "vlan", "parent": (h, "eth1"), "id": 7, "protocol": "802.1Q"}, kinds
    assert _reaches(x, "10.50.0.2") and api.diff(topo).empty


# A plan of every kind of step on vlans and ipvlans, for faults: ids replaced (11), the ipvlans' port
# changed in place (l3), a VLAN added beside them and one in b on a's eth0, the trunk's MTU lowered. b's
# ipvlan and its new VLAN on a's links have names a has too (made from a's side on 6.1).
ROLL = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {kind: veth, peer: "@b/eth0"}
      d0: {kind: dummy}
      eth0.10: {kind: vlan, parent: eth0, id: 10, addresses: [10.10.0.1/24]}
      iv0: {kind: ipvlan, parent: d0, mode: l2, addresses: [10.40.0.1/24]}
  "@b":
    interfaces:
      eth0: {}
      eth0.10: {kind: vlan, parent: eth0, id: 10, addresses: [10.10.0.2/24]}
      iv0: {kind: ipvlan, parent: "@a/d0", mode: l2, addresses: [10.40.0.2/24]}
"""
ROLL_CHANGED = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {kind: veth, peer: "@b/eth0", mtu: 1400}
      d0: {kind: dummy}
      eth0.10: {kind: vlan, parent: eth0, id: 11, addresses: [10.10.0.1/24]}
      eth0.20: {kind: vlan, parent: eth0, id: 20, addresses: [10.20.0.1/24]}
      iv0: {kind: ipvlan, parent: d0, mode: l3, addresses: [10.40.0.1/24]}
  "@b":
    interfaces:
      eth0: {}
      eth0.10: {kind: vlan, parent: eth0, id: 11, addresses: [10.10.0.2/24]}
      iv0: {kind: ipvlan, parent: "@a/d0", mode: l3, addresses: [10.40.0.2/24]}
      eth0.20: {kind: vlan, parent: "@a/eth0", id: 30, addresses: [10.30.0.2/24]}
"""


def _faults_roll_back(lab: Lab, topo: Topology) -> list[str]:
    """Inject a fault at three steps of the plan that applies `topo`: its first in-place change, its first
    create of a link whose parent is in another namespace, and its last (everything before it undone);
    after each, the kernel must be as before (lab.snapshot() and _kinds(): ids, modes, parents). The steps
    tried, as 'k/n op where'. (Three, not every k: each costs 10-15 s in the guest.)"""
    from functools import partial

    from netlab.errors import RolledBack

    from faults import Faulty

    before, kinds = lab.snapshot(), _kinds(lab)
    steps = api.diff(topo).steps
    at = [next(k for k, s in enumerate(steps, 1) if s.op == "change_link"),
          next(k for k, s in enumerate(steps, 1) if s.op == "create_link" and s.value.link.parent is not None
               and s.value.link.parent[0] != s.namespace), len(steps)]
    tried = []
    for k in at:
        code = (errno.EBUSY, errno.EINVAL)[k % 2]
        with pytest.raises(RolledBack) as info, api.using(partial(Faulty, {k}, code)):
            api.apply(topo)
        step = steps[k - 1]
        assert f"step {k}/{len(steps)} failed: {step.op} {step.describe()}: " in str(info.value), str(info.value)
        assert lab.snapshot() == before and _kinds(lab) == kinds, f"k={k} ({step.op} {step.where})"
        tried.append(f"{k}/{len(steps)} {step.op} {step.where}")
    return tried


@pytest.mark.stock_kernel("8021q", "ipvlan", "dummy")
def test_a_failure_in_a_plan_of_vlans_and_ipvlans_rolls_back(lab):
    topo, changed = _load(lab, ROLL), _load(lab, ROLL_CHANGED)
    p = lab.p
    api.apply(topo)
    assert _kinds(lab)[f"{p}b/iv0"] == {"kind": "ipvlan", "parent": (f"{p}a", "d0"), "mode": "l2", "flags": "bridge"}
    ops = {s.op for s in api.diff(changed).steps}
    assert {"create_link", "delete_link", "change_link", "set_mtu", "add_address"} <= ops, ops
    assert len(_faults_roll_back(lab, changed)) == 3
    api.apply(changed)  # and without a fault it converges
    kinds = _kinds(lab)
    assert kinds[f"{p}b/eth0.20"] == {"kind": "vlan", "parent": (f"{p}a", "eth0"), "id": 30, "protocol": "802.1Q"}
    assert kinds[f"{p}a/eth0.10"]["id"] == 11 and kinds[f"{p}b/iv0"]["mode"] == "l3", kinds
    assert _mtus(f"{p}a")["eth0.20"] == 1400 and _reaches(f"{p}a", "10.10.0.2") and api.diff(changed).empty
