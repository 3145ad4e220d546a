"""The link kinds of issue 11 that this machine's kernel has (macvlan, vxlan, tun, tap, bridge STP), on the
real kernel through the CLI, read back with iproute2 (`ip -j -d link show`, `ip -j addr`), never with
netlab's own reader; and real traffic between the test's namespaces (macvlans in bridge mode, a vxlan
overlay between two "hosts"). vlan, ipvlan, dummy and bridge VLAN filtering need the guest lane
(tests/test_stock_kernel.py).

What each test pins: a kind's options as the kernel reports them; a change the kernel makes in place keeps
the ifindex, one it cannot make replaces the link (a new ifindex); a change by hand is drift (`diff` exit 2,
naming the option) that `apply` repairs; parents and children (across namespaces, on a host NIC the
topology does not declare, replaced and lowered together); a user's objects are never taken.

The host NIC of the external-parent tests is a veth pair the test makes in the root namespace under its
prefix (CI runs this lane on the real host, not isolated: no test touches the host's own links).
"""

from __future__ import annotations

import grp
import pwd
import subprocess
from typing import Any

import pytest

from conftest import Lab, ip_json, netns_names

pytestmark = pytest.mark.kernel


# --- iproute2's view ------------------------------------------------------------------------------------

def link(ns: str | None, name: str) -> dict[str, Any]:
    """`ip -j -d link show NAME` in namespace `ns` (None: the root namespace)."""
    pre = ["-n", ns] if ns else []
    found: list[dict[str, Any]] = ip_json(*pre, "-d", "link", "show", name)
    assert len(found) == 1, found
    return found[0]


def data(ns: str | None, name: str) -> dict[str, Any]:
    """The kind's own data, as iproute2 prints it (`linkinfo.info_data`)."""
    return dict(link(ns, name)["linkinfo"].get("info_data", {}))


def index(ns: str | None, name: str) -> int:
    return int(link(ns, name)["ifindex"])


def exists(ns: str | None, name: str) -> bool:
    pre = ["-n", ns] if ns else []
    return subprocess.run(["ip", *pre, "link", "show", name], capture_output=True, check=False).returncode == 0


def nsid_names(ns: str) -> dict[int, str | None]:
    """The ids namespace `ns` knows other namespaces by, to their names (None: a namespace without an entry
    in /run/netns, such as the root namespace)."""
    return {i["nsid"]: i.get("name") for i in ip_json("-n", ns, "netns", "list-id")}


def parent(ns: str | None, lk: dict[str, Any]) -> tuple[str | None, str] | None:
    """A macvlan's or vxlan's parent as iproute2 reports it: (namespace, name), the namespace None for the
    root namespace. A parent in the same namespace is `link` (a macvlan's) or `info_data.link` (a
    vxlan's); in another, `link_index` in the namespace `link_netnsid` names."""
    kind = lk.get("linkinfo", {}).get("info_kind")
    if kind == "vxlan":
        name = lk["linkinfo"]["info_data"].get("link")
        return (ns, name) if name else None
    if "link" in lk:
        return ns, lk["link"]
    if "link_index" not in lk:
        return None
    other = nsid_names(ns)[lk["link_netnsid"]] if "link_netnsid" in lk and ns else ns
    pre = ["-n", other] if other else []
    by_index = {x["ifindex"]: x["ifname"] for x in ip_json(*pre, "link", "show")}
    return other, by_index[lk["link_index"]]


# The kind's data that is the topology's (not counters, timers, or what the kernel derives).
KEPT = {"macvlan": ("mode", "macaddr_data"), "vxlan": ("id", "remote", "group", "local", "port", "learning", "ttl"),
        "tun": ("type", "multi_queue", "user", "group", "persist"), "bridge": ("stp_state",)}


def details(ns: str | None) -> dict[str, dict[str, Any]]:
    """Per link of a namespace (None: the root namespace's), what `Lab.links` leaves out for these kinds:
    the kind's own data that is the topology's, and the parent by (namespace, name)."""
    pre = ["-n", ns] if ns else []
    out = {}
    for lk in ip_json(*pre, "-d", "link", "show"):
        info = lk.get("linkinfo", {})
        kind = info.get("info_kind")
        if kind not in KEPT:
            continue
        kept = {k: v for k, v in info.get("info_data", {}).items() if k in KEPT[kind]}
        if "macaddr_data" in kept:
            kept["macaddr_data"] = sorted(kept["macaddr_data"])
        entry: dict[str, Any] = {"data": kept}
        if kind in ("macvlan", "vxlan"):
            entry["parent"] = parent(ns, lk)
        out[lk["ifname"]] = entry
    return out


def kinds_snapshot(lab: Lab) -> dict[str, dict[str, Any]]:
    """Lab.snapshot, and beside each link of these kinds its options and parent (details): a rollback of
    an in-place change or a replace must put those back too."""
    snap = lab.snapshot()
    for ns, links in snap.items():
        extra = details(None if ns == "<host>" else ns)
        for name, entry in links.items():
            if name in extra:
                entry.update(extra[name])
    return snap


def as_ip_shows(uid: int | None = None, gid: int | None = None) -> str | int:
    """A tun's owner or group as iproute2 prints it: the name where one resolves, else the number."""
    try:
        return pwd.getpwuid(uid).pw_name if uid is not None else grp.getgrgid(gid).gr_name  # type: ignore[arg-type]
    except KeyError:
        return uid if uid is not None else gid  # type: ignore[return-value]


def nic(lab: Lab) -> str:
    """A host NIC the topology does not declare: a veth pair in the root namespace, under the prefix, up
    (its other end up too, so that it has carrier); removed at teardown."""
    name = f"{lab.p}nic0"
    lab.ip("link", "add", name, "type", "veth", "peer", "name", f"{lab.p}nic1")
    lab.ip("link", "set", name, "up")
    lab.ip("link", "set", f"{lab.p}nic1", "up")
    return name


# --- macvlan ------------------------------------------------------------------------------------------

MACVLANS = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {kind: veth, peer: "@b/eth0"}
      mv0:  {kind: macvlan, parent: eth0, addresses: [10.61.0.1/24]}
  "@b":
    interfaces:
      eth0: {}
  "@c":
    interfaces:
      mv1:  {kind: macvlan, parent: "@a/eth0", addresses: [10.61.0.2/24]}
  "@d":
    interfaces:
      mv2:  {kind: macvlan, parent: "host/@nic0", addresses: [10.62.0.1/24]}
  "@e":
    interfaces:
      mv3:  {kind: macvlan, parent: "host/@nic0", mode: bridge, addresses: [10.62.0.2/24]}
"""


def test_macvlans_in_one_namespace_across_namespaces_and_on_a_host_nic(lab):
    """A macvlan on a veth of its own namespace (IFLA_LINK), one whose parent is in another namespace and
    two on a host NIC the topology does not declare (IFLA_LINK_NETNSID: iproute2 shows link_netnsid and
    the parent's ifindex there); macvlans in bridge mode on one parent reach each other; the NIC is never
    changed, and destroy leaves it."""
    p = lab.p
    host_nic = nic(lab)
    nic_before = link(None, host_nic)
    path = lab.write(MACVLANS)
    out = lab.netlab("apply", path, check=0).stdout
    assert f"+   link {p}c/mv1: macvlan on {p}a/eth0, mode bridge" in out, out
    assert f"+   link {p}d/mv2: macvlan on host/{host_nic}, mode bridge" in out, out
    lab.netlab("diff", path, check=0)

    mv0 = link(f"{p}a", "mv0")
    assert mv0["linkinfo"]["info_kind"] == "macvlan" and mv0["linkinfo"]["info_data"]["mode"] == "bridge"
    assert mv0["link"] == "eth0" and "link_netnsid" not in mv0 and mv0["ifalias"] == f"netlab:{p}"
    mv1 = link(f"{p}c", "mv1")
    assert "link_netnsid" in mv1 and nsid_names(f"{p}c")[mv1["link_netnsid"]] == f"{p}a"
    assert mv1["link_index"] == index(f"{p}a", "eth0")
    assert parent(f"{p}c", mv1) == (f"{p}a", "eth0")
    for ns, name in ((f"{p}d", "mv2"), (f"{p}e", "mv3")):
        mv = link(ns, name)
        assert "link_netnsid" in mv and nsid_names(ns)[mv["link_netnsid"]] is None  # the root namespace
        assert mv["link_index"] == nic_before["ifindex"] and parent(ns, mv) == (None, host_nic)
        assert mv["linkinfo"]["info_data"]["mode"] == "bridge" and mv["ifalias"] == f"netlab:{p}"
    assert lab.links(f"{p}c")["mv1"]["addresses"] == ["10.61.0.2/24"]
    assert lab.links(f"{p}e")["mv3"]["addresses"] == ["10.62.0.2/24"]

    assert lab.ping(f"{p}a", "10.61.0.2") and lab.ping(f"{p}c", "10.61.0.1")  # on a veth, across namespaces
    assert lab.ping(f"{p}d", "10.62.0.2") and lab.ping(f"{p}e", "10.62.0.1")  # on the host NIC

    nic_after = link(None, host_nic)
    assert "ifalias" not in nic_after
    assert {k: nic_after[k] for k in ("ifindex", "address", "mtu", "flags")} == \
        {k: nic_before[k] for k in ("ifindex", "address", "mtu", "flags")}
    lab.netlab("destroy", path, check=0)
    assert not [n for n in netns_names() if n.startswith(p)]
    assert index(None, host_nic) == nic_before["ifindex"] and "ifalias" not in link(None, host_nic)


MODES = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {kind: veth, peer: "@b/eth0"}
      mv0:  {kind: macvlan, parent: eth0, mode: MODE, addresses: [10.63.0.1/24]}
  "@b":
    interfaces:
      eth0: {}
"""


def test_a_macvlans_mode_changes_in_place_and_a_change_by_hand_is_drift(lab):
    p, ns = lab.p, f"{lab.p}a"
    lab.netlab("apply", lab.write(MODES.replace("MODE", "bridge")), check=0)
    before = index(ns, "mv0")
    out = lab.netlab("apply", lab.write(MODES.replace("MODE", "vepa")), check=0).stdout
    assert f"~   link {p}a/mv0: mode bridge -> vepa" in out and "0 added, 1 changed, 0 destroyed" in out, out
    assert data(ns, "mv0")["mode"] == "vepa" and index(ns, "mv0") == before
    path = lab.write(MODES.replace("MODE", "vepa"))
    lab.netlab("diff", path, check=0)

    subprocess.run(["ip", "-n", ns, "link", "set", "mv0", "type", "macvlan", "mode", "private"], check=True)
    out = lab.netlab("diff", path, check=2).stdout
    assert f"~   link {p}a/mv0: mode private -> vepa" in out, out
    lab.netlab("apply", path, check=0)
    assert data(ns, "mv0")["mode"] == "vepa" and index(ns, "mv0") == before
    assert lab.links(ns)["mv0"]["addresses"] == ["10.63.0.1/24"]
    lab.netlab("diff", path, check=0)


def test_a_macvlan_to_and_from_passthru_is_replaced(lab):
    """The kernel refuses to change a mode to or from passthru: the macvlan is deleted and made again (a
    new ifindex), with its address."""
    p, ns = lab.p, f"{lab.p}a"
    lab.netlab("apply", lab.write(MODES.replace("MODE", "bridge")), check=0)
    first = index(ns, "mv0")
    out = lab.netlab("apply", lab.write(MODES.replace("MODE", "passthru")), check=0).stdout
    assert f"{p}a/mv0" in out and "passthru" in out and "1 added" in out and "1 destroyed" in out, out
    second = index(ns, "mv0")
    assert second != first and data(ns, "mv0")["mode"] == "passthru"
    assert lab.links(ns)["mv0"]["addresses"] == ["10.63.0.1/24"]
    path = lab.write(MODES.replace("MODE", "private"))
    lab.netlab("apply", path, check=0)
    assert index(ns, "mv0") not in (first, second) and data(ns, "mv0")["mode"] == "private"
    assert lab.links(ns)["mv0"]["addresses"] == ["10.63.0.1/24"]
    lab.netlab("diff", path, check=0)


SOURCE = MODES.replace("mode: MODE,", "mode: source, macs: MACS,")


def test_a_source_macvlans_list_changes_in_place_and_drift_on_it_is_repaired(lab):
    p, ns = lab.p, f"{lab.p}a"
    path = lab.write(SOURCE.replace("MACS", '["02:00:00:00:00:01", "02:00:00:00:00:0A"]'))
    lab.netlab("apply", path, check=0)
    assert data(ns, "mv0")["mode"] == "source"
    assert sorted(data(ns, "mv0")["macaddr_data"]) == ["02:00:00:00:00:01", "02:00:00:00:00:0a"]
    lab.netlab("diff", path, check=0)
    before = index(ns, "mv0")
    path = lab.write(SOURCE.replace("MACS", '["02:00:00:00:00:0a", "02:00:00:00:00:0b"]'))
    out = lab.netlab("apply", path, check=0).stdout
    assert f"~   link {p}a/mv0: macs" in out and "0 added, 1 changed, 0 destroyed" in out, out
    assert sorted(data(ns, "mv0")["macaddr_data"]) == ["02:00:00:00:00:0a", "02:00:00:00:00:0b"]
    assert index(ns, "mv0") == before
    subprocess.run(["ip", "-n", ns, "link", "set", "mv0", "type", "macvlan", "macaddr", "add", "02:00:00:00:00:0c"],
                   check=True)
    out = lab.netlab("diff", path, check=2).stdout
    assert f"~   link {p}a/mv0: macs" in out and "02:00:00:00:00:0c" in out, out
    lab.netlab("apply", path, check=0)
    assert sorted(data(ns, "mv0")["macaddr_data"]) == ["02:00:00:00:00:0a", "02:00:00:00:00:0b"]
    assert index(ns, "mv0") == before
    lab.netlab("diff", path, check=0)


# --- vxlan --------------------------------------------------------------------------------------------

# Two "hosts" joined by an underlay veth, a bridge on each with a vxlan port: one L2 segment across them.
OVERLAY = """
name: "@"
namespaces:
  "@h1":
    interfaces:
      eth0: {kind: veth, peer: "@h2/eth0", addresses: [10.70.0.1/24]UNDERLAY_MTU}
      br0:  {kind: bridge, addresses: [192.168.70.1/24]}
      vx0:  {kind: vxlan, vni: VNI, remote: REMOTE, local: 10.70.0.1, parent: eth0, learning: LEARNING, master: br0}
  "@h2":
    interfaces:
      eth0: {addresses: [10.70.0.2/24, 10.70.0.3/24]}
      br0:  {kind: bridge, addresses: [192.168.70.2/24]}
      vx0:  {kind: vxlan, vni: VNI, remote: 10.70.0.1, local: 10.70.0.2, parent: eth0, master: br0}
"""


def overlay(vni: int = 42, remote: str = "10.70.0.2", learning: str = "false", underlay_mtu: int | None = None) -> str:
    return OVERLAY.replace("VNI", str(vni)).replace("REMOTE", remote).replace("LEARNING", learning).replace(
        "UNDERLAY_MTU", f", mtu: {underlay_mtu}" if underlay_mtu else "")


def test_a_vxlan_overlay_between_two_hosts_carries_traffic_and_changes_in_place_or_replaces(lab):
    p = lab.p
    h1, h2 = f"{p}h1", f"{p}h2"
    path = lab.write(overlay())
    lab.netlab("apply", path, check=0)
    lab.netlab("diff", path, check=0)
    vx = link(h1, "vx0")
    got = vx["linkinfo"]["info_data"]
    assert vx["linkinfo"]["info_kind"] == "vxlan" and vx["master"] == "br0"
    assert (got["id"], got["port"], got["local"], got["remote"], got["learning"], got["link"]) == \
        (42, 4789, "10.70.0.1", "10.70.0.2", False, "eth0")
    assert data(h2, "vx0")["learning"] is True and data(h2, "vx0")["port"] == 4789
    assert vx["mtu"] == 1450 and link(h1, "eth0")["mtu"] == 1500  # 50 bytes of room over IPv4
    assert lab.ping(h1, "192.168.70.2") and lab.ping(h2, "192.168.70.1")  # across the overlay

    first = index(h1, "vx0")
    path = lab.write(overlay(remote="10.70.0.3", learning="true"))
    out = lab.netlab("apply", path, check=0).stdout
    assert f"~   link {p}h1/vx0:" in out and "learning off -> on" in out and "remote 10.70.0.2 -> 10.70.0.3" in out, out
    assert "0 added, 1 changed, 0 destroyed" in out, out
    assert index(h1, "vx0") == first
    assert (data(h1, "vx0")["remote"], data(h1, "vx0")["learning"]) == ("10.70.0.3", True)
    lab.netlab("diff", path, check=0)
    assert lab.ping(h1, "192.168.70.2")

    subprocess.run(["ip", "-n", h1, "link", "set", "vx0", "type", "vxlan", "nolearning"], check=True)
    assert data(h1, "vx0")["learning"] is False
    out = lab.netlab("diff", path, check=2).stdout
    assert f"~   link {p}h1/vx0: learning off -> on" in out, out
    lab.netlab("apply", path, check=0)
    assert data(h1, "vx0")["learning"] is True and index(h1, "vx0") == first

    path = lab.write(overlay(vni=43, remote="10.70.0.3", learning="true"))
    out = lab.netlab("apply", path, check=0).stdout
    assert "vni 42 -> 43" in out, out
    assert index(h1, "vx0") != first and data(h1, "vx0")["id"] == 43 and data(h2, "vx0")["id"] == 43
    assert link(h1, "vx0")["master"] == "br0" and link(h2, "vx0")["master"] == "br0"
    assert data(h1, "vx0")["port"] == 4789 and data(h1, "vx0")["remote"] == "10.70.0.3"
    lab.netlab("diff", path, check=0)
    assert lab.ping(h1, "192.168.70.2")


def test_a_vxlans_mtu_leaves_room_for_its_header(lab):
    """A declared MTU that leaves less than 50 bytes under the parent's is refused before any change (the
    file's line); one the kernel derives is the parent's less 50, and follows the parent down."""
    p, h1 = lab.p, f"{lab.p}h1"
    bad = lab.write(overlay(underlay_mtu=9000).replace("parent: eth0, learning: false,",
                                                       "parent: eth0, learning: false, mtu: 8951,"), "bad.yaml")
    err = lab.netlab("apply", bad, check=1).stderr
    assert "mtu 8951 leaves no room for the 50 bytes" in err and "at most 8950" in err and "bad.yaml:" in err, err
    assert not [n for n in netns_names() if n.startswith(p)]
    path = lab.write(overlay(underlay_mtu=9000))
    lab.netlab("apply", path, check=0)
    assert link(h1, "eth0")["mtu"] == 9000 and link(h1, "vx0")["mtu"] == 8950
    lab.netlab("diff", path, check=0)
    path = lab.write(overlay(underlay_mtu=1400))
    lab.netlab("apply", path, check=0)
    assert link(h1, "eth0")["mtu"] == 1400 and link(h1, "vx0")["mtu"] == 1350
    lab.netlab("diff", path, check=0)
    assert lab.ping(h1, "192.168.70.2")


# --- tun and tap --------------------------------------------------------------------------------------

TAPS = """
name: "@"
namespaces:
  "@t":
    interfaces:
      tap0: {kind: tap, owner: OWNER, group: 4343, multi_queue: true}
      tun0: {kind: tun, addresses: [10.64.0.1/24]}
"""


def test_tun_and_tap_read_back_replace_on_a_change_and_are_deleted_by_destroy(lab):
    p, ns = lab.p, f"{lab.p}t"
    path = lab.write(TAPS.replace("OWNER", "4242"))
    lab.netlab("apply", path, check=0)
    lab.netlab("diff", path, check=0)
    tap = link(ns, "tap0")
    got = tap["linkinfo"]["info_data"]
    assert tap["linkinfo"]["info_kind"] == "tun" and tap["ifalias"] == f"netlab:{p}"
    assert (got["type"], got["multi_queue"], got["persist"]) == ("tap", True, True)
    assert (got["user"], got["group"]) == (as_ip_shows(uid=4242), as_ip_shows(gid=4343))
    tun = data(ns, "tun0")
    assert (tun["type"], tun["multi_queue"], tun["persist"]) == ("tun", False, True)
    assert "user" not in tun and "group" not in tun
    assert lab.links(ns)["tun0"]["addresses"] == ["10.64.0.1/24"]

    first = index(ns, "tap0")
    out = lab.netlab("apply", lab.write(TAPS.replace("OWNER", "4244")), check=0).stdout
    assert "owner 4242 -> 4244" in out and "1 added" in out and "1 destroyed" in out, out
    assert index(ns, "tap0") != first and data(ns, "tap0")["user"] == as_ip_shows(uid=4244)
    assert data(ns, "tap0")["multi_queue"] is True

    lab.netlab("destroy", path, check=0)
    assert f"{p}t" not in netns_names()


def test_a_users_tap_with_a_wanted_name_is_a_conflict_and_left_untouched(lab):
    p = lab.p
    subprocess.run(["ip", "tuntap", "add", f"{p}tap9", "mode", "tap"], check=True)
    lab.made_by_hand.append(("link", f"{p}tap9"))
    before = link(None, f"{p}tap9")
    path = lab.write(TAPS.replace("OWNER", "4242") + '  host:\n    interfaces:\n      "@tap9": {kind: tap}\n')
    err = lab.netlab("apply", path, check=1).stderr
    assert "CONFLICT" in err and f"{p}tap9" in err, err
    assert not [n for n in netns_names() if n.startswith(p)]
    after = link(None, f"{p}tap9")
    assert "ifalias" not in after and after["ifindex"] == before["ifindex"]
    assert after["linkinfo"]["info_data"] == before["linkinfo"]["info_data"]
    assert "Nothing to destroy" in lab.netlab("destroy", path, check=0).stdout
    assert index(None, f"{p}tap9") == before["ifindex"]


# --- parents and children -----------------------------------------------------------------------------

FAMILY = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {kind: veth, peer: "@b/PEER"MTU}
      mv0:  {kind: macvlan, parent: eth0, addresses: [10.65.0.1/24]}
  "@b":
    interfaces:
      PEER: {}
  "@c":
    interfaces:
      mv1:  {kind: macvlan, parent: "@a/eth0", addresses: [10.65.0.2/24]}
"""


def family(peer: str = "eth0", mtu: int | None = None) -> str:
    return FAMILY.replace("PEER", peer).replace("MTU", f", mtu: {mtu}" if mtu else "")


def test_a_replaced_parent_replaces_its_children_and_they_come_back_with_their_addresses(lab):
    p = lab.p
    lab.netlab("apply", lab.write(family()), check=0)
    old = {(ns, name): index(ns, name) for ns, name in ((f"{p}a", "eth0"), (f"{p}a", "mv0"), (f"{p}c", "mv1"))}
    path = lab.write(family(peer="eth1"))
    out = lab.netlab("apply", path, check=0).stdout
    assert f"its parent {p}a/eth0 is replaced" in out, out
    for (ns, name), was in old.items():
        assert index(ns, name) != was, f"{ns}/{name} was not replaced"
    assert lab.peer(f"{p}a", "eth0") == (f"{p}b", "eth1")
    assert lab.links(f"{p}a")["mv0"]["addresses"] == ["10.65.0.1/24"]
    assert lab.links(f"{p}c")["mv1"]["addresses"] == ["10.65.0.2/24"]
    assert link(f"{p}c", "mv1")["link_index"] == index(f"{p}a", "eth0")
    lab.netlab("diff", path, check=0)
    assert lab.ping(f"{p}a", "10.65.0.2")


def test_a_parents_lower_mtu_takes_its_children_down_in_one_apply(lab):
    """A macvlan without an MTU of its own gets its parent's at creation; lowering the parent lowers it
    (children first), in the same namespace and across namespaces, and diff is clean at once."""
    p = lab.p
    path = lab.write(family(mtu=9000))
    lab.netlab("apply", path, check=0)
    assert (link(f"{p}a", "eth0")["mtu"], link(f"{p}a", "mv0")["mtu"], link(f"{p}c", "mv1")["mtu"]) == (9000,) * 3
    lab.netlab("diff", path, check=0)
    path = lab.write(family(mtu=1400))
    lab.netlab("apply", path, check=0)
    assert (link(f"{p}a", "eth0")["mtu"], link(f"{p}a", "mv0")["mtu"], link(f"{p}c", "mv1")["mtu"]) == (1400,) * 3
    lab.netlab("diff", path, check=0)
    assert lab.ping(f"{p}a", "10.65.0.2")


USERS_CHILD = """
name: "@"
namespaces:
  host:
    interfaces:
      "@w0": {kind: veth, peer: "@a/up0"}
  "@a":
    interfaces:
      up0:  {}
      eth0: {kind: veth, peer: "@b/PEER", addresses: [10.66.0.2/24]}
  "@b":
    interfaces:
      PEER: {}
"""


def test_a_users_macvlan_on_a_netlab_veth_stops_a_replace_unless_forced(lab):
    """A user's macvlan on a veth that an apply replaces (the kernel would delete it with its parent):
    CONFLICT naming it, nothing changed; with --force it goes, and the veth is replaced."""
    p, ns = lab.p, f"{lab.p}a"
    lab.netlab("apply", lab.write(USERS_CHILD.replace("PEER", "eth0")), check=0)
    subprocess.run(["ip", "-n", ns, "link", "add", "link", "eth0", "name", "umv", "type", "macvlan"], check=True)
    before, veth = lab.snapshot(), index(ns, "eth0")
    path = lab.write(USERS_CHILD.replace("PEER", "eth1"))
    err = lab.netlab("apply", path, check=1).stderr
    assert "CONFLICT" in err and f"{ns}/umv (macvlan on {ns}/eth0" in err and "--force" in err, err
    assert lab.snapshot() == before and index(ns, "eth0") == veth
    lab.netlab("apply", path, "--force", check=0)
    assert not exists(ns, "umv") and index(ns, "eth0") != veth and lab.peer(ns, "eth0") == (f"{p}b", "eth1")
    lab.netlab("diff", path, check=0)


def test_a_users_macvlan_in_a_netlab_namespace_makes_destroy_a_conflict_unless_forced(lab):
    p, ns = lab.p, f"{lab.p}a"
    path = lab.write(USERS_CHILD.replace("PEER", "eth0"))
    lab.netlab("apply", path, check=0)
    subprocess.run(["ip", "-n", ns, "link", "add", "link", "eth0", "name", "umv", "type", "macvlan"], check=True)
    before = lab.snapshot()
    err = lab.netlab("destroy", path, check=1).stderr
    assert "CONFLICT" in err and f"namespace {ns} holds umv (macvlan" in err and "--force" in err, err
    assert lab.snapshot() == before
    lab.netlab("destroy", path, "--force", check=0)
    assert not [n for n in netns_names() if n.startswith(p)] and not exists(None, f"{p}w0")


def test_a_users_macvlan_on_a_netlab_host_veth_makes_destroy_a_conflict_unless_forced(lab):
    p = lab.p
    path = lab.write(USERS_CHILD.replace("PEER", "eth0"))
    lab.netlab("apply", path, check=0)
    lab.ip("link", "add", "link", f"{p}w0", "name", f"{p}umv", "type", "macvlan", "mode", "bridge")
    before = lab.snapshot()
    proc = lab.netlab("destroy", path)
    survived = exists(None, f"{p}umv")
    if proc.returncode == 0:
        lab.netlab("apply", path, check=0)  # put the topology back for the rest of the test's teardown
    assert proc.returncode == 1 and survived, f"exit {proc.returncode}, the user's macvlan " + \
        ("survived" if survived else "was deleted") + f":\n{proc.stdout}{proc.stderr}"
    assert "CONFLICT" in proc.stderr and f"host/{p}umv" in proc.stderr and "--force" in proc.stderr, proc.stderr
    assert lab.snapshot() == before
    lab.netlab("destroy", path, "--force", check=0)
    assert not exists(None, f"{p}umv") and not exists(None, f"{p}w0")
    assert not [n for n in netns_names() if n.startswith(p)]


EXTERNAL = """
name: "@"
namespaces:
  "@d":
    interfaces:
      mv2: {kind: macvlan, parent: "host/@nic0", addresses: [10.62.0.1/24]}
"""


def test_an_external_parent_must_exist_and_diff_reports_it_gone(lab):
    p = lab.p
    path = lab.write(EXTERNAL)
    err = lab.netlab("apply", path, check=1).stderr
    assert "MISSING" in err and f"host/{p}nic0, the parent of {p}d/mv2" in err, err
    assert lab.snapshot() == {"<host>": {}}  # nothing made
    nic(lab)
    lab.netlab("apply", path, check=0)
    assert parent(f"{p}d", link(f"{p}d", "mv2")) == (None, f"{p}nic0")
    lab.netlab("diff", path, check=0)
    subprocess.run(["ip", "link", "del", f"{p}nic0"], check=True)  # its macvlan goes with it
    assert not exists(f"{p}d", "mv2")
    err = lab.netlab("diff", path, check=1).stderr
    assert "MISSING" in err and f"host/{p}nic0" in err, err
    lab.netlab("destroy", path, check=0)


# --- bridge STP ---------------------------------------------------------------------------------------

STP = """
name: "@"
namespaces:
  "@s":
    interfaces:
      br0: {kind: bridge, stp: STP, addresses: [10.67.0.1/24]}
      p0:  {kind: veth, peer: "@s/p1", master: br0}
      p1:  {}
"""


def test_bridge_stp_changes_in_place_and_a_change_by_hand_is_drift(lab):
    p, ns = lab.p, f"{lab.p}s"
    lab.netlab("apply", lab.write(STP.replace("STP", "true")), check=0)
    assert data(ns, "br0")["stp_state"] == 1
    first = index(ns, "br0")
    path = lab.write(STP.replace("STP", "false"))
    out = lab.netlab("apply", path, check=0).stdout
    assert f"~   link {p}s/br0: stp on -> off" in out and "0 added, 1 changed, 0 destroyed" in out, out
    assert data(ns, "br0")["stp_state"] == 0 and index(ns, "br0") == first
    assert link(ns, "p0")["master"] == "br0"
    lab.netlab("diff", path, check=0)
    subprocess.run(["ip", "-n", ns, "link", "set", "br0", "type", "bridge", "stp_state", "1"], check=True)
    out = lab.netlab("diff", path, check=2).stdout
    assert f"~   link {p}s/br0: stp on -> off" in out, out
    lab.netlab("apply", path, check=0)
    assert data(ns, "br0")["stp_state"] == 0 and index(ns, "br0") == first
    lab.netlab("diff", path, check=0)
    # a bridge without `stp:` leaves it as it is
    lab.netlab("apply", lab.write(STP.replace("stp: STP, ", "")), check=0)
    subprocess.run(["ip", "-n", ns, "link", "set", "br0", "type", "bridge", "stp_state", "1"], check=True)
    lab.netlab("diff", lab.write(STP.replace("stp: STP, ", "")), check=0)
