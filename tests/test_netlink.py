"""The netlink codec against an independent one: pyroute2's parser reads the same kernel replies and the
same requests, and both must agree on every field netlab uses. Kernel replies come from a topology that
the test applies (bridge, veths across namespaces, IPv4 and IPv6, marks, MTU, MAC)."""

import socket

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from netlab import api, netlink as nl
from netlab.kernel import Kernel
from netlab.model import load

from test_kernel_reconcile import SEED


def pyroute2_link(data: bytes) -> dict:
    m = ifinfmsg(data)
    m.decode()
    info = m.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    return {"index": m["index"], "name": m.get_attr("IFLA_IFNAME"), "mtu": m.get_attr("IFLA_MTU"),
            "master": m.get_attr("IFLA_MASTER"), "link": m.get_attr("IFLA_LINK"),
            "link_nsid": m.get_attr("IFLA_LINK_NETNSID"), "alias": m.get_attr("IFLA_IFALIAS") or None,
            "mac": m.get_attr("IFLA_ADDRESS") or None, "up": bool(m["flags"] & 1),
            "kind": "loopback" if m["flags"] & 8 else (kind or "device")}


@pytest.mark.kernel
def test_decoded_links_and_addresses_agree_with_pyroute2(lab):
    topo = load(lab.write(SEED))  # the lab's teardown destroys it
    api.apply(topo)
    compared = 0
    with Kernel() as kernel:
        for ns in sorted(topo.namespaces):
            sock = kernel._sock(ns)
            for kind, data in sock.dump(nl.RTM_GETLINK, nl.link_dump_request()):
                ours = nl.decode_link(data)
                theirs = pyroute2_link(data)
                assert {k: ours[k] for k in theirs} == theirs
                compared += 1
            for kind, data in sock.dump(nl.RTM_GETADDR, nl.ifaddr(socket.AF_UNSPEC, 0, 0)):
                index, family, packed, prefixlen, flags = nl.decode_address(data)
                m = ifaddrmsg(data)
                m.decode()
                address = m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS")
                assert (index, family, prefixlen) == (m["index"], m["family"], m["prefixlen"])
                assert socket.inet_ntop(family, packed) == address
                assert flags == (m.get_attr("IFA_FLAGS") or m["flags"])
                compared += 1
    assert compared >= 15  # lo, veths and bridge in three namespaces, with their addresses


def framed(request: nl.Request) -> bytes:
    return nl._HDR.pack(16 + len(request.body), request.type, request.flags, 0, 0) + request.body


def test_encoded_requests_read_back_by_pyroute2():
    peer = {"name": "p0", "net_ns_fd": 7, "index": 99, "mtu": 1400, "mac": bytes.fromhex("020000000002")}
    request = nl.new_link("v0", "veth", 1 << 24, 1500, bytes.fromhex("020000000001"), peer)
    m = ifinfmsg(framed(request))
    m.decode()
    assert (m["index"], m.get_attr("IFLA_IFNAME"), m.get_attr("IFLA_MTU"), m.get_attr("IFLA_ADDRESS")) == \
        (1 << 24, "v0", 1500, "02:00:00:00:00:01")
    info = m.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    p = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert (p["index"], p.get_attr("IFLA_IFNAME"), p.get_attr("IFLA_NET_NS_FD"), p.get_attr("IFLA_MTU"),
            p.get_attr("IFLA_ADDRESS")) == (99, "p0", 7, 1400, "02:00:00:00:00:02")

    m = ifinfmsg(framed(nl.set_link("v0", master=5, up=True, alias="netlab:t")))
    m.decode()
    assert (m.get_attr("IFLA_IFNAME"), m.get_attr("IFLA_MASTER"), m.get_attr("IFLA_IFALIAS"), m["flags"],
            m["change"]) == ("v0", 5, "netlab:t", 1, 1)

    r = nl.address(True, 3, socket.AF_INET6, socket.inet_pton(socket.AF_INET6, "fd00::1"), 64)
    m = ifaddrmsg(framed(r))
    m.decode()
    assert (m["index"], m["prefixlen"], m["family"], m.get_attr("IFA_LOCAL"), m["flags"]) == \
        (3, 64, socket.AF_INET6, "fd00::1", nl.IFA_F_NODAD)
