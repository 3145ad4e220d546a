"""The netlink codec against an independent one on real kernel replies: pyroute2's parser reads the same
link and address dumps, and both must agree on every field netlab uses. The replies come from a topology
that the test applies (bridge, veths across namespaces, IPv4 and IPv6, marks, MTU, MAC). The requests and
the tables, without a kernel, are tests/test_codec.py's."""

import socket
import subprocess
import sys
from typing import Any

import pytest
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from netlab import api
from netlab.model import load
from netlab.netlink import rtnl as nl

from conftest import ROOT
from test_kernel_reconcile import SEED

# Run inside the namespace (`ip netns exec`), so that the test needs nothing of the adapter: the link and
# address dumps, one message a line, in hex.
DUMP = """
from netlab.netlink import rtnl, transport
sock = transport.Socket()
for kind, body in ((rtnl.RTM_GETLINK, rtnl.link_dump_request()), (rtnl.RTM_GETADDR, rtnl.ifaddr(0, 0, 0))):
    for _, data in sock.dump(kind, body):
        print(kind, data.hex())
"""


def dump(ns: str) -> list[tuple[int, bytes]]:
    """(request type, reply message) of the link and address dumps of namespace `ns`."""
    out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", DUMP], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return [(int(kind), bytes.fromhex(data)) for kind, data in (line.split() for line in out.splitlines())]


def pyroute2_link(m: ifinfmsg) -> dict[str, Any]:
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
    for ns in sorted(topo.namespaces):
        for request, data in dump(ns):
            if request == nl.RTM_GETLINK:
                m = ifinfmsg(data)
                m.decode()
                ours, theirs = nl.decode_link(data), pyroute2_link(m)
                assert {k: v for k, v in ours.items() if k in theirs} == theirs
                # The whole LINK table decodes a kernel message too (the adapter reads only part of it),
                # and the kind's IFLA_INFO_DATA is handed over whole.
                full = nl.LINK.decode(data, 16 + nl.IFINFOMSG.size)
                assert full["broadcast"] == m.get_attr("IFLA_BROADCAST")
                assert full["ifname"] == ours["name"] and "ext_mask" not in full
                info = m.get_attr("IFLA_LINKINFO")
                info_data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
                if ours["kind"] == "bridge":
                    assert ours["info_data"] and info_data is not None
                    assert len(info_data["attrs"]) == _count(ours["info_data"])
                elif info_data is None:
                    assert ours["info_data"] is None
            else:
                got = nl.decode_address(data)
                assert got is not None
                index, family, packed, prefixlen, flags = got
                m = ifaddrmsg(data)
                m.decode()
                address = m.get_attr("IFA_LOCAL") or m.get_attr("IFA_ADDRESS")
                assert (index, family, prefixlen) == (m["index"], m["family"], m["prefixlen"])
                assert socket.inet_ntop(family, packed) == address
                assert flags == (m.get_attr("IFA_FLAGS") or m["flags"])
            compared += 1
    assert compared >= 15  # lo, veths and bridge in three namespaces, with their addresses


def _count(data: bytes) -> int:
    """The attributes in a run of attributes."""
    count = pos = 0
    while pos + 4 <= len(data):
        pos += (int.from_bytes(data[pos:pos + 2], "little") + 3) & ~3
        count += 1
    return count
