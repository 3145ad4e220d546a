"""Link kinds (netlab/kinds/): the registry lists each kind once and the schema, the create order and
the encoders take them from it; each kind's options, plan text and netlink encoding, the encoding read
back by pyroute2; loopback, whose spec only `lo` takes (for its addresses, by its name). No root, no
kernel (the kinds this kernel lacks, dummy among them, are tested on a stock kernel by the link-kinds
issue; golden plans with every kind are in tests/golden/kinds-fresh)."""

from typing import Any

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from netlab.errors import ValidationError
from netlab.kinds import DECLARABLE, KINDS, SPECS, create_order, kind
from netlab.model import desired, loads
from netlab.netlink import rtnl, transport
from netlab.state import Link

HEAD = "name: t\nnamespaces:\n  n:\n    interfaces:\n"


def decoded(request: transport.Request) -> Any:  # pyroute2's ifinfmsg
    m = ifinfmsg(transport.HEADER.pack(16 + len(request.body), request.type, request.flags, 0, 0) + request.body)
    m.decode()
    return m


class Facts:
    """What the adapter tells an encoder: the namespace the request goes to, fds and chosen indexes."""

    namespace = "a"

    def netns_fd(self, ns):
        return {"b": 7}[ns]

    def index(self, ns, name):
        return {("b", "p0"): 99, ("a", "p1"): 98}[(ns, name)]

    def parent_index(self, link):
        return {("a", "eth0"): 5}[link.parent]


def test_the_registry_lists_every_kind_once_in_create_order():
    every = ["loopback", "bridge", "dummy", "veth", "vlan", "macvlan", "ipvlan", "vxlan", "tun", "tap"]
    assert list(KINDS) == every
    # loopback has a spec (lo's addresses can be declared) but no `kind:` names it: lo is declared by name
    assert list(SPECS) == every
    assert tuple(every[1:]) == DECLARABLE
    assert create_order("bridge") < create_order("veth")  # a master before the ports that join it
    assert kind("wireguard").name == "wireguard" and kind("wireguard").spec is None  # read, never made


def test_the_schema_takes_each_kinds_options_from_its_file():
    link = desired(loads(HEAD + "      d0: {kind: dummy, addresses: [192.0.2.1/32], mtu: 9000}\n")).link("n", "d0")
    assert link is not None
    assert (link.kind, link.addresses, link.mtu, link.peer) == ("dummy", frozenset({"192.0.2.1/32"}), 9000, None)
    with pytest.raises(ValidationError, match="'peer' is an option of veth, not of dummy"):
        loads(HEAD + "      d0: {kind: dummy, peer: n/x}\n")
    with pytest.raises(ValidationError, match="unknown kind 'dumy'; did you mean 'dummy'"):
        loads(HEAD + "      d0: {kind: dumy}\n")
    with pytest.raises(ValidationError, match="master 'd0' is not a bridge"):
        loads(HEAD + "      d0: {kind: dummy}\n      b: {kind: bridge, master: d0}\n")


def test_a_dummy_is_created_with_its_kind_and_no_data_of_its_own():
    link = Link("d0", "dummy", mtu=1500)
    assert kind("dummy").info_data(link, None, Facts()) is None
    assert kind("dummy").summary(link) == "dummy"
    m = decoded(rtnl.new_link("d0", "dummy", 1 << 24, 1500, None, info_data=None))
    info = m.get_attr("IFLA_LINKINFO")
    assert (m["index"], m.get_attr("IFLA_IFNAME"), m.get_attr("IFLA_MTU")) == (1 << 24, "d0", 1500)
    assert info.get_attr("IFLA_INFO_KIND") == "dummy" and info.get_attr("IFLA_INFO_DATA") is None


@pytest.mark.parametrize("peer_ns,expected_fd", [("b", 7), ("a", None)], ids=["across", "within"])
def test_a_veth_encodes_its_other_end_and_pyroute2_reads_it(peer_ns, expected_fd):
    name = "p0" if peer_ns == "b" else "p1"
    link = Link("v0", "veth", peer=(peer_ns, name))
    peer = Link(name, "veth", peer=("a", "v0"), mtu=1400, mac="02:00:00:00:00:02")
    data = kind("veth").info_data(link, peer, Facts())
    m = decoded(rtnl.new_link("v0", "veth", 1 << 24, None, None, info_data=data))
    info = m.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    p = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert (p["index"], p.get_attr("IFLA_IFNAME"), p.get_attr("IFLA_NET_NS_FD"), p.get_attr("IFLA_MTU"),
            p.get_attr("IFLA_ADDRESS")) == (Facts().index(peer_ns, name), name, expected_fd, 1400,
                                            "02:00:00:00:00:02")
    assert kind("veth").summary(link) == f"veth to {peer_ns}/{name}"


def test_a_veth_whose_peer_changed_is_replaced_and_a_bridge_is_not():
    old, new = Link("v0", "veth", peer=("b", "p0")), Link("v0", "veth", peer=("c", "p0"))
    assert kind("veth").replace_reason(old, new) == "peer b/p0 -> c/p0"
    assert kind("veth").replace_reason(old, old) is None
    assert kind("bridge").replace_reason(Link("br", "bridge", mtu=1500), Link("br", "bridge", mtu=9000)) is None


def test_loopback_is_declared_only_as_lo_by_its_name_for_its_addresses():
    lo = desired(loads(HEAD + "      lo: {addresses: [10.255.0.1/32, 'fd00::1/128']}\n")).link("n", "lo")
    assert lo is not None
    assert (lo.kind, lo.addresses, lo.up, lo.mtu) == \
        ("loopback", frozenset({"10.255.0.1/32", "fd00::1/128"}), True, None)
    # naming the kind lo has is tolerated (the schema adds it when it is left out)
    assert desired(loads(HEAD + "      lo: {kind: loopback}\n")).link("n", "lo") == Link("lo", "loopback", up=True)
    undeclared = desired(loads(HEAD + "      d0: {kind: dummy}\n")).link("n", "lo")
    assert undeclared is not None and (undeclared.kind, undeclared.addresses) == ("loopback", frozenset())
    for text, says in [
        ("      l0: {kind: loopback}\n", "kind loopback is only lo's"),
        ("      lo: {kind: dummy}\n", "leave out its kind"),
        ("      lo: {mtu: 9000}\n", "only its addresses"),
        ("      lo: {up: false}\n", "always up"),
        ("      lo: {addresses: [127.0.0.1/8]}\n", "lo's own"),
        ("      lo: {peer: n/x}\n", "peer"),
        ("      d0: {kind: lopback}\n",
         r"unknown kind 'lopback' \(supported: bridge, dummy, veth, vlan, macvlan, ipvlan, vxlan, tun, tap\)"),
    ]:
        with pytest.raises(ValidationError, match=says):
            loads(HEAD + text)
    with pytest.raises(ValidationError, match="host's"):
        loads("name: t\nnamespaces:\n  host:\n    interfaces:\n      lo: {addresses: [10.9.9.9/32]}\n")
