"""Bridge VLAN filtering, STP and port VLANs on the real kernel (netlab/kernel/bridge_vlan.py): each request
netlab sends, and what the kernel does with it, read back both by netlab's own AF_BRIDGE dump and by
iproute2 (`bridge -j vlan show`, `ip -j -d link show`).

This machine's kernel lacks bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING): the tests that need it
are marked stock_kernel("bridge_vlan_filtering") and run in the guest lane (.ci/stock-kernel, Debian's
6.1), driven in this process. The first two tests run on any kernel: STP, and what the kernel answers to
VLAN filtering where it has it or lacks it (the wording of netlab's "missing kernel feature" error).

Every test works in a network namespace of its own, `<prefix>bv`, deleted at teardown with all it holds.
"""

from __future__ import annotations

import errno
import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from netlab.kernel import bridge_vlan
from netlab.kernel.bridge_vlan import Vlans
from netlab.kernel.namespaces import Namespaces
from netlab.netlink import rtnl, transport
from netlab.netlink.transport import NetlinkError

from conftest import ip_json, kernel_lacks

pytestmark = pytest.mark.kernel
vlan_filtering = pytest.mark.stock_kernel("bridge_vlan_filtering")

TAGGED, PVID_UNTAGGED, PVID_ONLY, UNTAGGED_ONLY = (False, False), (True, True), (True, False), (False, True)


@dataclass
class Box:
    """A namespace, netlab's netlink socket in it, and iproute2 run in it."""

    ns: str
    sock: transport.Socket

    def ip(self, *args: str) -> None:
        subprocess.run(["ip", "-n", self.ns, *args], check=True, capture_output=True, text=True, timeout=30)

    def ip_batch(self, *commands: str) -> None:
        """Several `ip` commands in one process (`ip -batch`): under emulation each process costs."""
        subprocess.run(["ip", "-n", self.ns, "-batch", "-"], input="\n".join(commands) + "\n", check=True,
                       capture_output=True, text=True, timeout=30)

    def indexes(self) -> dict[str, int]:
        return {link["ifname"]: int(link["ifindex"]) for link in ip_json("-n", self.ns, "link", "show")}

    def index(self, name: str) -> int:
        return self.indexes()[name]

    def link(self, name: str) -> dict[str, Any]:
        """`ip -j -d link show`: the link's details, the bridge options under linkinfo.info_data."""
        return dict(ip_json("-n", self.ns, "-d", "link", "show", "dev", name)[0])

    def bridge_options(self, name: str) -> dict[str, Any]:
        data = self.link(name)["linkinfo"]["info_data"]
        return {k: data.get(k) for k in ("stp_state", "vlan_filtering", "vlan_default_pvid")}

    def bridge(self, name: str, *options: str) -> int:
        self.ip_batch(f"link add {name} type bridge {' '.join(options)}", f"link set {name} up")
        return self.index(name)

    def ports(self, bridge: str, *names: str) -> list[int]:
        """Veth ends `names` (each with its peer `<name>x`) made ports of `bridge`, in this order, all up."""
        self.ip_batch(*[c for n in names for c in (f"link add {n} type veth peer name {n}x",
                                                   f"link set {n} master {bridge}", f"link set {n} up",
                                                   f"link set {n}x up")])
        indexes = self.indexes()
        return [indexes[n] for n in names]

    def port(self, name: str, bridge: str) -> int:
        return self.ports(bridge, name)[0]

    def iproute2_vlans(self) -> dict[int, Vlans]:
        """`bridge -j vlan show`, as bridge_vlan.read gives it: ifindex -> {vid: (pvid, untagged)}. iproute2
        lists only the links that have VLANs."""
        out = subprocess.run(["bridge", "-n", self.ns, "-j", "vlan", "show"], check=True, capture_output=True,
                             text=True, timeout=30).stdout
        index = self.indexes()
        got: dict[int, Vlans] = {}
        for entry in json.loads(out or "[]"):
            vlans = got.setdefault(index[entry["ifname"]], {})
            for v in entry.get("vlans", []):
                flags = v.get("flags", [])
                for vid in range(v["vlan"], v.get("vlanEnd", v["vlan"]) + 1):
                    vlans[vid] = ("PVID" in flags, "Egress Untagged" in flags)
        return got

    def read(self) -> dict[int, Vlans]:
        """netlab's read, checked against iproute2's on every call: the same VLANs for every link that has
        any."""
        ours = bridge_vlan.read(self.sock)
        assert {i: v for i, v in ours.items() if v} == self.iproute2_vlans()
        return ours

    def send(self, *requests: transport.Request) -> list[int]:
        """The requests in one batch; the errno of each (0: done)."""
        return self.sock.batch(list(requests))


@pytest.fixture
def box(lab: Any) -> Iterator[Box]:
    ns = f"{lab.p}bv"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    handles = Namespaces()
    try:
        yield Box(ns, handles.sock(ns))
    finally:
        handles.close()
        subprocess.run(["ip", "netns", "del", ns], check=False)


# --- any kernel -------------------------------------------------------------------------------------------

def test_stp_on_and_off_by_change_link(box):
    """IFLA_BR_STP_STATE through RTM_NEWLINK without NLM_F_CREATE: on (the kernel's own STP, state 1, in a
    namespace other than the initial one) and off again, read back by iproute2 and by netlab."""
    br = box.bridge("br0")
    assert box.bridge_options("br0")["stp_state"] == 0
    box.sock.request(bridge_vlan.options(index=br, stp=True))
    assert box.bridge_options("br0")["stp_state"] == bridge_vlan.STP_KERNEL == 1
    link = rtnl.decode_link(box.sock.get(rtnl.RTM_GETLINK, rtnl.link_by_name("br0").body))
    assert bridge_vlan.decode_options(link["info_data"])["stp_state"] == 1
    box.sock.request(bridge_vlan.options(name="br0", stp=False))  # by name this time
    assert box.bridge_options("br0")["stp_state"] == 0
    # a request for another kind is refused, the bridge unchanged
    with pytest.raises(NetlinkError) as refused:
        box.sock.request(rtnl.change_link("vxlan", b"", index=br))
    assert refused.value.errno == errno.EOPNOTSUPP
    assert box.bridge_options("br0")["stp_state"] == 0


def test_vlan_filtering_on_a_kernel_that_lacks_it_or_has_it(box):
    """What netlab's requests get where CONFIG_BRIDGE_VLAN_FILTERING is missing (this machine's kernel):
    vlan_filtering 1 (and 0) and a VLAN add are refused EOPNOTSUPP with no extended-ack message,
    vlan_default_pvid is accepted and ignored, and the dump lists the bridge and its port with no VLANs.
    Where the kernel has it (a stock kernel), the same requests work."""
    br = box.bridge("br0")
    p1 = box.port("p1", "br0")
    lacks = kernel_lacks("bridge_vlan_filtering")
    codes = box.send(bridge_vlan.options(index=br, vlan_filtering=True), bridge_vlan.add(p1, 10, True, True),
                     bridge_vlan.options(index=br, default_pvid=0))
    if lacks:
        assert codes == [errno.EOPNOTSUPP, errno.EOPNOTSUPP, 0], codes
        # vlan_filtering 0 is refused too (the kernel's stub refuses any value): send it only to change it;
        # a self VLAN is refused; a VLAN delete is accepted (and does nothing)
        assert box.send(bridge_vlan.options(index=br, vlan_filtering=False), bridge_vlan.add(br, 10, self_=True),
                        bridge_vlan.delete(p1, 10)) == [errno.EOPNOTSUPP, errno.EOPNOTSUPP, 0]
        with pytest.raises(NetlinkError) as refused:
            box.sock.request(bridge_vlan.options(index=br, vlan_filtering=True))
        assert str(refused.value).startswith("[Errno 95] Operation not supported"), str(refused.value)
        assert box.bridge_options("br0") == {"stp_state": 0, "vlan_filtering": 0, "vlan_default_pvid": None}
        assert bridge_vlan.read(box.sock) == {br: {}, p1: {}}
        assert box.iproute2_vlans() == {}
        # what the dump request gets from such a kernel does not depend on the VLAN mask
        assert bridge_vlan.decode_options(rtnl.decode_link(box.sock.get(
            rtnl.RTM_GETLINK, rtnl.link_by_name("br0").body))["info_data"])["vlan_filtering"] == 0
    else:
        assert codes == [0, 0, 0], codes
        assert box.bridge_options("br0")["vlan_filtering"] == 1
        assert box.read() == {br: {}, p1: {10: PVID_UNTAGGED}}  # default pvid 0 removed VLAN 1 from both


# --- a kernel with bridge VLAN filtering (the guest lane) ----------------------------------------------------

@vlan_filtering
def test_port_vlans_added_read_changed_and_deleted(box):
    """A bridge made with vlan_filtering 1 and vlan_default_pvid 0 (one RTM_NEWLINK): its ports start with
    no VLAN. VLANs added (pvid+untagged, tagged, pvid only, untagged only) read back the same by netlab and
    iproute2; an add on a VLAN that is there replaces its flags; a delete removes just that VLAN."""
    box.sock.request(rtnl.new_link("br0", "bridge", info_data=rtnl.BRIDGE_INFO.encode(
        {"vlan_filtering": 1, "vlan_default_pvid": 0})))
    box.ip("link", "set", "br0", "up")
    br = box.index("br0")
    assert box.bridge_options("br0") == {"stp_state": 0, "vlan_filtering": 1, "vlan_default_pvid": 0}
    p1, p2 = box.ports("br0", "p1", "p2")
    assert box.read() == {br: {}, p1: {}, p2: {}}

    codes = box.send(bridge_vlan.add(p1, 10, pvid=True, untagged=True), bridge_vlan.add(p1, 20),
                     bridge_vlan.add(p1, 30), bridge_vlan.add(p2, 20, pvid=True),
                     bridge_vlan.add(p2, 30, untagged=True), bridge_vlan.add(p2, 4094))
    assert codes == [0] * 6, codes
    assert box.read() == {br: {}, p1: {10: PVID_UNTAGGED, 20: TAGGED, 30: TAGGED},
                          p2: {20: PVID_ONLY, 30: UNTAGGED_ONLY, 4094: TAGGED}}

    # re-adding replaces the flags: 10 loses pvid and untagged; 20 on p1 takes the pvid (and is untagged)
    assert box.send(bridge_vlan.add(p1, 10)) == [0]
    assert box.read()[p1] == {10: TAGGED, 20: TAGGED, 30: TAGGED}  # no pvid left on p1
    assert box.send(bridge_vlan.add(p1, 20, pvid=True, untagged=True)) == [0]
    assert box.read()[p1] == {10: TAGGED, 20: PVID_UNTAGGED, 30: TAGGED}
    # a VLAN added as pvid takes it from the one that had it, which keeps its untagged flag
    assert box.send(bridge_vlan.add(p1, 30, pvid=True)) == [0]
    assert box.read()[p1] == {10: TAGGED, 20: UNTAGGED_ONLY, 30: PVID_ONLY}
    # the same add again changes nothing
    assert box.send(bridge_vlan.add(p1, 30, pvid=True)) == [0]
    assert box.read()[p1] == {10: TAGGED, 20: UNTAGGED_ONLY, 30: PVID_ONLY}

    # deleting the pvid VLAN leaves the port with no pvid; the others are untouched
    assert box.send(bridge_vlan.delete(p1, 30), bridge_vlan.delete(p2, 4094)) == [0, 0]
    assert box.read() == {br: {}, p1: {10: TAGGED, 20: UNTAGGED_ONLY}, p2: {20: PVID_ONLY, 30: UNTAGGED_ONLY}}
    # deleting a VLAN the port does not have is no error (br_vlan_info ignores the ENOENT)
    assert box.send(bridge_vlan.delete(p1, 30)) == [0]
    # an out-of-range VID is refused (br_vlan_valid_id)
    assert box.send(bridge_vlan.add(p1, 4095), bridge_vlan.add(p1, 0)) == [errno.EINVAL, errno.EINVAL]
    assert box.read()[p1] == {10: TAGGED, 20: UNTAGGED_ONLY}


@vlan_filtering
def test_a_vlan_delete_keeps_the_port_where_af_unspec_would_delete_it(box):
    """The family pin on the kernel: netlab's RTM_DELLINK (AF_BRIDGE) removes a VLAN and the port stays,
    still a port; the same bytes with family AF_UNSPEC are rtnl_dellink and delete the link itself."""
    box.bridge("br0", "vlan_filtering", "1", "vlan_default_pvid", "0")
    p1, p2 = box.ports("br0", "p1", "p2")
    assert box.send(bridge_vlan.add(p1, 10, True, True), bridge_vlan.add(p2, 10, True, True)) == [0, 0]

    request = bridge_vlan.delete(p1, 10)
    assert request.body[0] == socket.AF_BRIDGE
    assert box.send(request) == [0]
    assert box.read()[p1] == {}
    assert box.link("p1")["master"] == "br0" and box.index("p1") == p1

    theirs = bridge_vlan.delete(p2, 10)
    assert box.send(theirs._replace(body=bytes([socket.AF_UNSPEC]) + theirs.body[1:])) == [0]
    names = [link["ifname"] for link in ip_json("-n", box.ns, "link", "show")]
    assert "p2" not in names and "p2x" not in names and "p1" in names  # the veth went, both ends


@vlan_filtering
def test_the_bridges_own_vlans(box):
    """The bridge's "self" VLANs (BRIDGE_FLAGS_SELF): added, flags replaced and deleted on the bridge
    device; a port VLAN does not add one; the bridge without SELF is no port: EOPNOTSUPP."""
    br = box.bridge("br0", "vlan_filtering", "1", "vlan_default_pvid", "0")
    p1 = box.port("p1", "br0")
    assert box.send(bridge_vlan.add(p1, 20, True, True)) == [0]
    assert box.read() == {br: {}, p1: {20: PVID_UNTAGGED}}  # the bridge's VLAN 20 context is not a self VLAN

    assert box.send(bridge_vlan.add(br, 20, pvid=True, untagged=True, self_=True),
                    bridge_vlan.add(br, 30, self_=True)) == [0, 0]
    assert box.read() == {br: {20: PVID_UNTAGGED, 30: TAGGED}, p1: {20: PVID_UNTAGGED}}
    assert box.send(bridge_vlan.add(br, 20, self_=True)) == [0]  # flags replaced, as on a port
    assert box.read()[br] == {20: TAGGED, 30: TAGGED}
    assert box.send(bridge_vlan.delete(br, 30, self_=True)) == [0]
    assert box.read() == {br: {20: TAGGED}, p1: {20: PVID_UNTAGGED}}
    # deleting the bridge's VLAN 20 leaves the port's
    assert box.send(bridge_vlan.delete(br, 20, self_=True)) == [0]
    assert box.read() == {br: {}, p1: {20: PVID_UNTAGGED}}

    with pytest.raises(NetlinkError) as refused:  # to the bridge's master, which it has not
        box.sock.request(bridge_vlan.add(br, 40))
    assert refused.value.errno == errno.EOPNOTSUPP
    assert box.read()[br] == {}


@vlan_filtering
def test_default_vlan_1_and_filtering_off_and_on(box):
    """VLAN 1: on the bridge and on each port as it joins, filtering on or off. vlan_default_pvid 0 (a
    change, with filtering on) removes it where it is as the default left it, keeps it where the user
    changed it, and gives new ports none. Filtering off and on again keeps every VLAN."""
    br = box.bridge("br0")  # the defaults: filtering off, default pvid 1
    assert box.bridge_options("br0") == {"stp_state": 0, "vlan_filtering": 0, "vlan_default_pvid": 1}
    p1, p2, p3 = box.ports("br0", "p1", "p2", "p3")
    assert box.read() == {br: {1: PVID_UNTAGGED}, p1: {1: PVID_UNTAGGED}, p2: {1: PVID_UNTAGGED},
                          p3: {1: PVID_UNTAGGED}}
    box.sock.request(bridge_vlan.options(index=br, vlan_filtering=True))
    assert box.read() == {br: {1: PVID_UNTAGGED}, p1: {1: PVID_UNTAGGED}, p2: {1: PVID_UNTAGGED},
                          p3: {1: PVID_UNTAGGED}}
    # the user's changes: p2 carries VLAN 1 tagged, p3 has 1 as pvid but tagged; p1 adds 10
    assert box.send(bridge_vlan.add(p2, 1), bridge_vlan.add(p3, 1, pvid=True), bridge_vlan.add(p1, 10)) == [0, 0, 0]

    box.sock.request(bridge_vlan.options(index=br, default_pvid=0))  # filtering on: accepted
    assert box.bridge_options("br0") == {"stp_state": 0, "vlan_filtering": 1, "vlan_default_pvid": 0}
    assert box.read() == {br: {}, p1: {10: TAGGED}, p2: {1: TAGGED}, p3: {1: PVID_ONLY}}
    p4 = box.port("p4", "br0")
    assert box.read()[p4] == {}  # a new port: no VLAN at all

    before = box.read()
    box.sock.request(bridge_vlan.options(index=br, vlan_filtering=False))
    assert box.bridge_options("br0")["vlan_filtering"] == 0
    assert box.read() == before
    box.sock.request(bridge_vlan.options(index=br, vlan_filtering=True))
    assert box.bridge_options("br0")["vlan_filtering"] == 1
    assert box.read() == before


@vlan_filtering
def test_stp_on_and_off_on_a_vlan_filtering_bridge(box):
    br = box.bridge("br0", "vlan_filtering", "1")
    box.sock.request(bridge_vlan.options(index=br, stp=True))
    assert box.bridge_options("br0") == {"stp_state": 1, "vlan_filtering": 1, "vlan_default_pvid": 1}
    box.sock.request(bridge_vlan.options(index=br, stp=False, vlan_filtering=False))  # two options at once
    assert box.bridge_options("br0") == {"stp_state": 0, "vlan_filtering": 0, "vlan_default_pvid": 1}


@vlan_filtering
def test_changes_take_a_port_to_exactly_its_declared_vlans(box):
    """bridge_vlan.changes in one batch, from whatever the port has to issue 11's `vlans`/`pvid`
    (untagged = pvid), and nothing more to do once there."""
    br = box.bridge("br0", "vlan_filtering", "1")  # default pvid 1: the port starts with VLAN 1
    p1 = box.port("p1", "br0")
    for vids, pvid in (([10, 20], 10), ([20, 30], 30), ([20, 30], 20), ([5], None), ([], 7), ([], None)):
        target = bridge_vlan.wanted(vids, pvid)
        requests = bridge_vlan.changes(p1, bridge_vlan.read(box.sock)[p1], target)
        assert box.send(*requests) == [0] * len(requests)
        now = box.read()[p1]  # checked against iproute2's
        assert now == target, (vids, pvid)
        assert bridge_vlan.changes(p1, now, target) == []
    assert bridge_vlan.wanted([10, 20], 10) == {10: PVID_UNTAGGED, 20: TAGGED}
    # the bridge's own VLANs the same way
    target = bridge_vlan.wanted([10], 10)
    assert box.send(*bridge_vlan.changes(br, box.read()[br], target, self_=True)) == [0, 0]  # delete 1, add 10
    assert box.read()[br] == target


@vlan_filtering
def test_a_port_with_every_vlan_is_read_in_one_dump(box):
    """4094 VLANs on one port, added in one batch of 4093 requests, read back uncompressed: the kernel
    sizes the dump's buffer for the largest link (rtnl_calcit counts the VLANs the mask asks for), so one
    message of about 33 KB carries them all, within the transport's 64 KiB read buffer."""
    box.bridge("br0", "vlan_filtering", "1")
    p1 = box.port("p1", "br0")  # VLAN 1 is there: pvid, untagged
    requests = [bridge_vlan.add(p1, vid) for vid in range(2, 4095)]
    assert box.send(*requests) == [0] * 4093
    got = box.read()[p1]
    assert len(got) == 4094 and got[1] == PVID_UNTAGGED and all(got[vid] == TAGGED for vid in range(2, 4095))
