"""The example topologies, applied as shipped (by path, with their own names): the routed ones
(topologies/router.yaml and ring.yaml: every host reaches every other over IPv4 and IPv6, and the sysctls
the files set are the ones that make them work) and those of issue 11's kinds this machine's kernel has
(macvlan.yaml, vxlan.yaml, tuntap.yaml: each proved with traffic across the kind). `diff` is clean, and
`destroy` leaves nothing behind. Checked with iproute2, sysctl(8), ping run inside the namespaces and a
program of our own on the tun and tap, never with netlab's own reader. vlan.yaml and ipvlan.yaml need
modules this kernel lacks: tests/test_stock_kernel_topologies.py.

These files use plain names (rt, h11, r1, c1...), not the test's prefix: a test fails, before any
change, if one of them is already taken on the machine.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# -- topologies/macvlan.yaml, vxlan.yaml, tuntap.yaml (issue 11's kinds this machine's kernel has) ---------

MACVLAN = ROOT / "topologies" / "macvlan.yaml"
VXLAN = ROOT / "topologies" / "vxlan.yaml"
TUNTAP = ROOT / "topologies" / "tuntap.yaml"


def link_json(ns: str | None, name: str) -> dict[str, Any]:
    """iproute2's detailed view of one link (`ip -j -d link show`)."""
    pre = ["-n", ns] if ns else []
    found: dict[str, Any] = ip_json(*pre, "-d", "link", "show", "dev", name)[0]
    return found


def parent_of(ns: str, name: str) -> tuple[str, str]:
    """The link a macvlan (vlan, ipvlan) sits on, as iproute2 reports it: (namespace, name), found by its
    link_index in the namespace its link_netnsid names (its own if none; "host" for the root namespace,
    which has no name)."""
    link = link_json(ns, name)
    other: str | None = ns
    if "link_netnsid" in link:
        ids = {i["nsid"]: i.get("name") for i in ip_json("-n", ns, "netns", "list-id")}
        other = ids[link["link_netnsid"]]
    by_index = {lk["ifindex"]: lk["ifname"] for lk in ip_json(*(["-n", other] if other else []), "link", "show")}
    return other or "host", by_index[link["link_index"]]


def ping_size(ns: str, dst: str, size: int) -> bool:
    """One echo of `size` bytes of data, not to be fragmented (-M do), answered within 2 s."""
    cmd = ["ip", "netns", "exec", ns, "ping", "-c1", "-W2", "-M", "do", "-s", str(size), dst]
    return subprocess.run(cmd, capture_output=True, timeout=10, check=False).returncode == 0


def changed(lab: Lab, path: Path, old: str, new: str) -> str:
    """A copy of a shipped topology (same name) with one text replaced everywhere it occurs; its path."""
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path.name}"
    return lab.write(text.replace(old, new), f"changed-{path.name}")


def test_macvlan_containers_reach_each_other_and_the_network_outside(lab):
    """macvlan.yaml: two macvlans of srv's nic0 (one end of a veth, standing in for a NIC), each in a
    container namespace with a MAC of its own; in mode bridge they reach each other inside the parent, and
    both reach the router on the other end of the 'NIC', which knows each by its own MAC."""
    before = host_links()
    names = applied(lab, MACVLAN)
    assert names == ["c1", "c2", "lan", "srv"]
    lab.netlab("diff", str(MACVLAN), check=0)
    nic = link_json("srv", "nic0")
    macs = {nic["address"]}
    for ns in ("c1", "c2"):
        mv = link_json(ns, "eth0")
        assert mv["linkinfo"]["info_kind"] == "macvlan" and mv["linkinfo"]["info_data"]["mode"] == "bridge", mv
        assert mv["ifalias"] == "netlab:macvlan" and mv["mtu"] == nic["mtu"] == 1500
        assert parent_of(ns, "eth0") == ("srv", "nic0")
        macs.add(mv["address"])
    assert len(macs) == 3, macs  # each macvlan has a MAC of its own, and not the parent's
    pairs = [("c1", "10.0.0.12"), ("c2", "10.0.0.11"), ("c1", "10.0.0.1"), ("c2", "10.0.0.1"),
             ("lan", "10.0.0.11"), ("lan", "10.0.0.12")]
    failed = [(src, dst) for src, dst in pairs if not ping(src, dst)]
    assert not failed, f"(from, to) that got no answer: {failed}"
    # the router learned each container at the container's own MAC, not the NIC's
    neigh = {n["dst"]: n.get("lladdr") for n in ip_json("-n", "lan", "neigh", "show", "dev", "eth0")}
    assert neigh.get("10.0.0.11") == link_json("c1", "eth0")["address"], neigh
    assert neigh.get("10.0.0.12") == link_json("c2", "eth0")["address"], neigh
    lab.netlab("diff", str(MACVLAN), check=0)
    destroyed(lab, MACVLAN, names, before)


def test_macvlan_mode_private_is_changed_in_place_and_keeps_the_containers_apart(lab):
    """A macvlan's mode changes in place (the same ifindex): in mode private the two containers no longer
    reach each other, and still reach the network outside; back to bridge, they do again."""
    before = host_links()
    names = applied(lab, MACVLAN)
    index = {ns: link_json(ns, "eth0")["ifindex"] for ns in ("c1", "c2")}
    assert ping("c1", "10.0.0.12")
    private = changed(lab, MACVLAN, "mode: bridge", "mode: private")
    out = lab.netlab("apply", private, check=0).stdout
    assert "~   link c1/eth0: mode bridge -> private" in out, out
    assert "0 added, 2 changed, 0 destroyed" in out, out
    for ns in ("c1", "c2"):
        mv = link_json(ns, "eth0")
        assert mv["linkinfo"]["info_data"]["mode"] == "private" and mv["ifindex"] == index[ns], mv
    lab.netlab("diff", private, check=0)
    lab.netlab("diff", str(MACVLAN), check=2)
    assert not ping("c1", "10.0.0.12", tries=2) and not ping("c2", "10.0.0.11", tries=1)
    assert ping("c1", "10.0.0.1") and ping("c2", "10.0.0.1")
    assert "0 added, 2 changed, 0 destroyed" in lab.netlab("apply", str(MACVLAN), check=0).stdout
    assert {ns: link_json(ns, "eth0")["ifindex"] for ns in ("c1", "c2")} == index
    assert ping("c1", "10.0.0.12") and ping("c2", "10.0.0.11")
    lab.netlab("diff", str(MACVLAN), check=0)
    destroyed(lab, MACVLAN, names, before)


# The tutorial's `parent: host/eth0`: macvlans on a NIC of the root namespace that the topology does not
# declare (external). The "NIC" is a user's veth, `@nic`, whose other end is the network outside.
ON_A_NIC = """
name: "@"
namespaces:
  "@c1":
    interfaces:
      eth0: {kind: macvlan, parent: host/@nic, addresses: [10.0.0.11/24]}
  "@c2":
    interfaces:
      eth0: {kind: macvlan, parent: host/@nic, addresses: [10.0.0.12/24]}
"""


def test_macvlans_on_an_external_nic_leave_it_as_it_was(lab):
    """An external parent must exist (MISSING, exit 1, nothing made), is never changed by apply or
    destroy (its MTU, alias, state and addresses as the user left them; the macvlans take its MTU), and
    when it goes its macvlans go with it: `diff` and `apply` say it is missing."""
    p = lab.p
    path = lab.write(ON_A_NIC)
    out = lab.netlab("apply", path, check=1)
    assert "MISSING" in out.stderr and f"host/{p}nic, the parent of {p}c1/eth0" in out.stderr, out.stderr
    assert not [n for n in netns_names() if n.startswith(p)]
    lab.ip("netns", "add", f"{p}out")
    lab.ip("link", "add", f"{p}nic", "mtu", "1400", "type", "veth", "peer", "name", "eth0", "netns", f"{p}out")
    subprocess.run(["ip", "link", "set", f"{p}nic", "alias", "uplink", "up"], check=True)
    subprocess.run(["ip", "-n", f"{p}out", "addr", "add", "10.0.0.1/24", "dev", "eth0"], check=True)
    subprocess.run(["ip", "-n", f"{p}out", "link", "set", "eth0", "up"], check=True)

    def nic() -> dict[str, Any]:
        found: dict[str, Any] = lab.links()[f"{p}nic"]
        found["ifindex"] = link_json(None, f"{p}nic")["ifindex"]
        return found

    user = nic()
    assert user["alias"] == "uplink" and user["mtu"] == 1400 and user["up"]
    lab.netlab("apply", path, check=0)
    assert nic() == user
    for ns in (f"{p}c1", f"{p}c2"):
        mv = link_json(ns, "eth0")
        assert parent_of(ns, "eth0") == ("host", f"{p}nic")
        assert mv["mtu"] == 1400 and mv["linkinfo"]["info_data"]["mode"] == "bridge", mv
    lab.netlab("diff", path, check=0)
    failed = [(src, dst) for src, dst in [(f"{p}c1", "10.0.0.12"), (f"{p}c1", "10.0.0.1"), (f"{p}c2", "10.0.0.1"),
                                          (f"{p}out", "10.0.0.11"), (f"{p}out", "10.0.0.12")] if not ping(src, dst)]
    assert not failed, f"(from, to) that got no answer: {failed}"
    lab.netlab("destroy", path, check=0)
    assert nic() == user
    assert not [n for n in netns_names() if n.startswith(p) and n != f"{p}out"]
    # made again, then the user deletes the NIC: the kernel takes the macvlans with it
    lab.netlab("apply", path, check=0)
    subprocess.run(["ip", "link", "del", f"{p}nic"], check=True)
    assert [n for n in lab.links(f"{p}c1") if n != "lo"] == []
    for command in ("diff", "apply"):
        out = lab.netlab(command, path, check=1)
        assert "MISSING" in out.stderr and f"host/{p}nic" in out.stderr, (command, out.stderr)
    assert lab.links(f"{p}c1").keys() == {"lo"}


def test_vxlan_overlay_joins_two_hosts_containers_across_the_underlay(lab):
    """vxlan.yaml: c1 and c2, on bridges of two hosts, reach each other over VNI 42; a frame of the
    overlay's full MTU (1450) passes and one byte more is refused at c1; the hosts' bridges learn the far
    container behind their vxlan port; with the underlay down the overlay is cut, `diff` shows it (exit 2)
    and `apply` puts it back."""
    before = host_links()
    names = applied(lab, VXLAN)
    assert names == ["c1", "c2", "host1", "host2"]
    lab.netlab("diff", str(VXLAN), check=0)
    for host, local, remote in (("host1", "192.168.0.1", "192.168.0.2"), ("host2", "192.168.0.2", "192.168.0.1")):
        vx = link_json(host, "vx42")
        data = vx["linkinfo"]["info_data"]
        assert vx["linkinfo"]["info_kind"] == "vxlan" and vx["master"] == "br0" and vx["mtu"] == 1450, vx
        assert (data["id"], data["port"], data["local"], data["remote"], data["link"], data["learning"]) == \
            (42, 4789, local, remote, "eth0", True), data
        assert link_json(host, "br0")["mtu"] == 1450
    # the first packets over a fresh overlay took up to 4-6 s on a loaded machine (neighbour discovery
    # across the bridges and the vxlan's default FDB entry): more tries than a plain link needs
    assert ping("c1", "10.42.0.2", tries=10) and ping("c2", "10.42.0.1", tries=10)
    assert ping_size("c1", "10.42.0.2", 1422) and not ping_size("c1", "10.42.0.2", 1423)  # 1450 and 1451 bytes
    c2_mac = link_json("c2", "eth0")["address"]
    fdb = json.loads(subprocess.run(["bridge", "-n", "host1", "-j", "fdb", "show", "br", "br0"], check=True,
                                    capture_output=True, text=True).stdout)
    assert any(e["mac"] == c2_mac and e.get("ifname") == "vx42" for e in fdb), fdb
    subprocess.run(["ip", "-n", "host2", "link", "set", "eth0", "down"], check=True)
    assert not ping("c1", "10.42.0.2", tries=2)
    out = lab.netlab("diff", str(VXLAN), check=2).stdout
    assert "~   link host2/eth0: down -> up" in out, out
    assert "0 added, 1 changed, 0 destroyed" in lab.netlab("apply", str(VXLAN), check=0).stdout
    assert ping("c1", "10.42.0.2", tries=10) and ping("c2", "10.42.0.1", tries=10)
    lab.netlab("diff", str(VXLAN), check=0)
    destroyed(lab, VXLAN, names, before)


# A program on a tun or tap, as the user it runs as: it attaches to the device (TUNSETIFF, no
# IFF_TUN_EXCL: the device is there), prints "attached" or the errno's name, then answers ARP for its
# address (tap) and ICMP echo requests to it (both) until it is killed or 30 s pass. argv: device, tun|tap,
# its IPv4 address, uid.
RESPONDER = r"""
import errno, fcntl, os, select, socket, struct, sys, time
dev, mode, me, uid = sys.argv[1], sys.argv[2], socket.inet_aton(sys.argv[3]), int(sys.argv[4])
os.setgroups([]); os.setgid(uid); os.setuid(uid)
mac = bytes.fromhex("020000000002")
fd = os.open("/dev/net/tun", os.O_RDWR)
try:
    fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH22x", dev.encode(), (1 if mode == "tun" else 2) | 0x1000))
except OSError as exc:
    print(errno.errorcode[exc.errno], flush=True); sys.exit(3)
print("attached", flush=True)

def csum(data):
    data += b"\0" * (len(data) % 2)
    s = sum(struct.unpack(f"!{len(data) // 2}H", data)); s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF

def echo_reply(ip):
    n = (ip[0] & 15) * 4
    if ip[0] >> 4 != 4 or ip[9] != 1 or ip[16:20] != me or ip[n] != 8:
        return None
    icmp = bytearray(ip[n:]); icmp[0] = 0; icmp[2:4] = b"\0\0"; icmp[2:4] = struct.pack("!H", csum(bytes(icmp)))
    return ip[:12] + ip[16:20] + ip[12:16] + ip[20:n] + bytes(icmp)

end = time.time() + 30
while time.time() < end:
    if not select.select([fd], [], [], 1)[0]:
        continue
    pkt = os.read(fd, 65536)
    if mode == "tun":
        out = echo_reply(pkt)
    elif pkt[12:14] == b"\x08\x06" and pkt[20:22] == b"\0\1" and pkt[38:42] == me:
        out = pkt[6:12] + mac + b"\x08\x06" + pkt[14:20] + b"\0\2" + mac + me + pkt[22:32]
    elif pkt[12:14] == b"\x08\x00":
        reply = echo_reply(pkt[14:])
        out = pkt[6:12] + mac + b"\x08\x00" + reply if reply else None
    else:
        out = None
    if out:
        os.write(fd, out)
"""


def attach(dev: str, mode: str, address: str, uid: int) -> tuple[subprocess.Popen[str], str]:
    """A RESPONDER on vmhost's `dev`, running as `uid`, and what it said: "attached" or an errno's name."""
    proc = subprocess.Popen(["ip", "netns", "exec", "vmhost", sys.executable, "-I", "-c", RESPONDER, dev, mode,
                             address, str(uid)], stdout=subprocess.PIPE, text=True, cwd="/")
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_tuntap_a_tap_on_a_bridge_and_a_tun_answer_through_their_owners_programs(lab):
    """tuntap.yaml: a persistent tap on br0 and a tun with an address, both owned by user 1000. Nothing
    answers until a program attaches (no carrier); user 1001 may not attach (EPERM); user 1000's program
    (as a VM on the tap, 10.0.0.2, and a VPN on the tun, 10.8.0.2) answers vmhost's pings through them.
    Programs coming and going is no drift, and destroy leaves nothing."""
    before = host_links()
    names = applied(lab, TUNTAP)
    assert names == ["vmhost"]
    lab.netlab("diff", str(TUNTAP), check=0)
    tap, tun = link_json("vmhost", "tap0"), link_json("vmhost", "tun0")
    assert tap["linkinfo"]["info_data"]["type"] == "tap" and tap["master"] == "br0", tap
    assert tun["linkinfo"]["info_data"]["type"] == "tun" and tun["linkinfo"]["info_data"]["persist"], tun
    owners = subprocess.run(["ip", "netns", "exec", "vmhost", "cat", "/sys/class/net/tap0/owner",
                             "/sys/class/net/tun0/owner"], check=True, capture_output=True, text=True).stdout
    assert owners.split() == ["1000", "1000"]
    assert lab.links("vmhost")["tun0"]["addresses"] == ["10.8.0.1/24"]
    assert "NO-CARRIER" in tap["flags"] and "NO-CARRIER" in tun["flags"]
    assert not ping("vmhost", "10.8.0.2", tries=1)
    for dev, mode in (("tap0", "tap"), ("tun0", "tun")):
        other, said = attach(dev, mode, "10.0.0.2", 1001)
        assert other.wait(timeout=30) == 3 and said == "EPERM", (dev, said)
    started = [attach("tap0", "tap", "10.0.0.2", 1000), attach("tun0", "tun", "10.8.0.2", 1000)]
    programs = [proc for proc, _ in started]
    try:
        assert [said for _, said in started] == ["attached", "attached"]
        assert ping("vmhost", "10.0.0.2"), "no answer from the program on tap0, through br0"
        assert ping("vmhost", "10.8.0.2"), "no answer from the program on tun0"
        neigh = {n["dst"]: n.get("lladdr") for n in ip_json("-n", "vmhost", "neigh", "show", "dev", "br0")}
        assert neigh.get("10.0.0.2") == "02:00:00:00:00:02", neigh
        lab.netlab("diff", str(TUNTAP), check=0)
    finally:
        for proc in programs:
            proc.kill()
            proc.wait(timeout=30)
    assert not ping("vmhost", "10.8.0.2", tries=1)
    lab.netlab("diff", str(TUNTAP), check=0)  # the devices stay (persistent), as the file has them
    destroyed(lab, TUNTAP, names, before)
