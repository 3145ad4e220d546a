"""The routed example topologies, applied as shipped (topologies/router.yaml and topologies/ring.yaml, by
path, with their own names): every host reaches every other over IPv4 and IPv6, `diff` is clean, the
sysctls the files set are the ones that make them work, and `destroy` leaves nothing behind. Checked with
iproute2, sysctl(8) and ping run inside the namespaces, never with netlab's own reader.

These files use plain names (rt, h11, r1...), not the test's prefix: a test fails, before any change, if
one of them is already taken on the machine.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest

import netlab

from conftest import ROOT, Lab, ip_json, netns_names

pytestmark = pytest.mark.kernel

ROUTER = ROOT / "topologies" / "router.yaml"
RING = ROOT / "topologies" / "ring.yaml"

# router.yaml's hosts and their addresses, as the file declares them
HOSTS = {"h11": ("10.1.0.11", "2001:db8:1::11"), "h12": ("10.1.0.12", "2001:db8:1::12"),
         "h21": ("10.2.0.21", "2001:db8:2::21"), "h22": ("10.2.0.22", "2001:db8:2::22")}
# ring.yaml's routers and their loopback addresses
RING_LO = {f"r{n}": (f"10.255.0.{n}", f"2001:db8:ff::{n}") for n in range(1, 7)}


def ping(ns: str, dst: str, src: str | None = None, tries: int = 4) -> bool:
    """One echo from `ns` to `dst` (from address `src` if given) answered within a second, tried up to
    `tries` times. The retries are for the first packets after an apply: neighbour discovery, and an IPv6
    router's first forwarded packet, which waits for the outgoing link's link-local address to finish DAD
    (about 2 s after the link comes up; the kernel sends a neighbour solicitation only from an address of
    that link)."""
    cmd = ["ip", "netns", "exec", ns, "ping", "-c1", "-W1", *(["-I", src] if src else []), dst]
    return any(subprocess.run(cmd, capture_output=True, timeout=10, check=False).returncode == 0
               for _ in range(tries))


def sysctl(ns: str, key: str, value: str | None = None) -> str:
    """Read (or, as a user would by hand, write) a sysctl inside a namespace."""
    args = ["-w", f"{key}={value}"] if value is not None else ["-n", key]
    out = subprocess.run(["ip", "netns", "exec", ns, "sysctl", *args], capture_output=True, text=True,
                         check=True, timeout=10).stdout
    return out.strip()


def applied(lab: Lab, path: Path) -> list[str]:
    """Apply a shipped topology as is; its namespaces' names. The lab's cleanup destroys it, even if the
    test fails."""
    topo = netlab.load(str(path))
    names = sorted(topo.namespaces)
    taken = set(names) & set(netns_names())
    assert not taken, f"namespaces {sorted(taken)} exist already: {path.name} uses these names as they are"
    lab.topologies.add(topo.name)
    out = lab.netlab("apply", str(path), check=0).stdout
    assert "Apply complete" in out
    assert set(names) <= set(netns_names())
    return names


def destroyed(lab: Lab, path: Path, names: list[str], host_links: set[str]) -> None:
    """Destroy, and check that none of the topology's namespaces is left and the root namespace has the
    links it had before."""
    out = lab.netlab("destroy", str(path), check=0).stdout
    assert f"{len(names)} destroyed" in out
    assert not set(names) & set(netns_names())
    assert {lk["ifname"] for lk in ip_json("link", "show")} == host_links
    lab.netlab("diff", str(path), check=2)  # everything to be made again


def host_links() -> set[str]:
    return {lk["ifname"] for lk in ip_json("link", "show")}


def default_routes(ns: str) -> list[tuple[str, str, str]]:
    """The namespace's default routes of both families, as ip prints them: (gateway, device, protocol)."""
    return sorted((r["gateway"], r["dev"], str(r["protocol"])) for fam in ("-4", "-6")
                  for r in ip_json("-n", ns, fam, "route", "show", "default"))


# -- topologies/router.yaml -------------------------------------------------------------------------------

def test_router_every_host_reaches_every_other_over_both_families(lab):
    before = host_links()
    names = applied(lab, ROUTER)
    assert names == ["h11", "h12", "h21", "h22", "rt", "sw1", "sw2"]
    lab.netlab("diff", str(ROUTER), check=0)
    assert sysctl("rt", "net.ipv4.ip_forward") == "1"
    assert sysctl("rt", "net.ipv6.conf.all.forwarding") == "1"
    assert default_routes("h11") == [("10.1.0.1", "eth0", "201"), ("2001:db8:1::1", "eth0", "201")]
    assert default_routes("h22") == [("10.2.0.1", "eth0", "201"), ("2001:db8:2::1", "eth0", "201")]
    failed = [(src, dst, fam) for src, dst in itertools.permutations(HOSTS, 2) for fam in (0, 1)
              if not ping(src, HOSTS[dst][fam])]
    assert not failed, f"(from, to, 0 for IPv4 / 1 for IPv6) that got no answer: {failed}"
    lab.netlab("diff", str(ROUTER), check=0)
    destroyed(lab, ROUTER, names, before)


def test_router_without_forwarding_the_lans_are_apart_and_apply_repairs_it(lab):
    """The router's `forwarding: true` is what joins the LANs: turned off by hand, a host loses the other
    LAN (and keeps its own), `diff` shows the sysctl and exits 2, and `apply` turns it back on."""
    before = host_links()
    names = applied(lab, ROUTER)
    assert ping("h11", "10.2.0.21")
    sysctl("rt", "net.ipv4.ip_forward", "0")
    subprocess.run(["ip", "-n", "h12", "route", "del", "default"], check=True)
    assert not ping("h11", "10.2.0.21", tries=1)
    assert ping("h11", "10.1.0.12")
    out = lab.netlab("diff", str(ROUTER), check=2).stdout
    assert "~   sysctl rt net.ipv4.ip_forward: 0 -> 1" in out, out
    assert "+   route h12 default: via 10.1.0.1 dev eth0" in out, out
    assert "Plan: 1 to add, 1 to change, 0 to destroy." in out, out
    assert "1 added, 1 changed, 0 destroyed" in lab.netlab("apply", str(ROUTER), check=0).stdout
    lab.netlab("diff", str(ROUTER), check=0)
    assert sysctl("rt", "net.ipv4.ip_forward") == "1"
    assert ping("h11", "10.2.0.21") and ping("h12", "10.2.0.22")
    destroyed(lab, ROUTER, names, before)


# -- topologies/ring.yaml ---------------------------------------------------------------------------------

def test_ring_every_loopback_reaches_every_other_over_both_families(lab):
    before = host_links()
    names = applied(lab, RING)
    assert names == sorted(RING_LO)
    lab.netlab("diff", str(RING), check=0)
    for ns, (v4, v6) in RING_LO.items():
        lo = lab.links(ns)["lo"]
        assert lo["addresses"] == sorted([f"{v4}/32", f"{v6}/128"]) and lo["up"]
        assert sysctl(ns, "net.ipv4.conf.all.rp_filter") == "2"
        assert sysctl(ns, "net.ipv4.ip_forward") == "1"
    # five routes of each family on every router, all of them netlab's (protocol 201)
    for ns in RING_LO:
        for fam in ("-4", "-6"):
            ours = [r for r in ip_json("-n", ns, fam, "route", "show") if str(r.get("protocol")) == "201"]
            assert len(ours) == 5, (ns, fam, ours)
    failed = [(src, dst, fam) for src, dst in itertools.permutations(RING_LO, 2) for fam in (0, 1)
              if not ping(src, RING_LO[dst][fam], src=RING_LO[src][fam])]
    assert not failed, f"(from, to, 0 for IPv4 / 1 for IPv6) that got no answer: {failed}"
    lab.netlab("diff", str(RING), check=0)
    destroyed(lab, RING, names, before)


def test_ring_routes_the_opposite_router_asymmetrically_which_rp_filter_must_allow(lab):
    """What ring.yaml's comment says: r1 reaches r4 clockwise and r4 answers clockwise, so r4 receives
    r1's packets on to-r3 but routes r1 through to-r5. Strict rp_filter on the interfaces, as a host with
    strict filtering would hand down, is overridden by the file's loose conf/all (and is no drift: the
    file does not declare it); strict conf/all drops the pings, `diff` shows it and `apply` repairs it."""
    before = host_links()
    names = applied(lab, RING)
    r1, r4 = RING_LO["r1"][0], RING_LO["r4"][0]
    assert ping("r1", r4, src=r1)
    routes = {r["dst"]: r["dev"] for r in ip_json("-n", "r4", "route", "show")}
    assert routes[r1] == "to-r5"  # the answer goes the other way round
    for ifname in ("to-r3", "to-r5"):
        sysctl("r4", f"net.ipv4.conf.{ifname}.rp_filter", "1")
    assert ping("r1", r4, src=r1)
    lab.netlab("diff", str(RING), check=0)
    sysctl("r4", "net.ipv4.conf.all.rp_filter", "1")
    assert not ping("r1", r4, src=r1, tries=1)
    assert ping("r3", r4, src=RING_LO["r3"][0])  # a neighbour's answers come back the way they went
    out = lab.netlab("diff", str(RING), check=2).stdout
    assert "~   sysctl r4 net.ipv4.conf.all.rp_filter: 1 -> 2" in out, out
    lab.netlab("apply", str(RING), check=0)
    lab.netlab("diff", str(RING), check=0)
    assert ping("r1", r4, src=r1)
    destroyed(lab, RING, names, before)
