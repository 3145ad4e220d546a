"""What this machine's kernel cannot test: link kinds whose modules it lacks, on Debian's stock kernel.

Every test here is marked `stock_kernel` (tests/conftest.py): CI runs them in the guest lane
(.ci/stock-kernel: Debian's linux-image-amd64 under QEMU, one pytest process), and a developer's machine
whose kernel lacks a module reports them as skipped with the reason. netlab is driven through its Python
API in this process (a new Python process costs 20-25 s of imports under emulation); the kernel's state
is read back with iproute2, as in every kernel suite.
"""

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
