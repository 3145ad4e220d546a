"""rtnetlink messages: exactly the requests netlab sends, and the fields of the replies it compares.

Why not pyroute2 here (docs/performance.md has the figures): importing it costs more than a whole
10-namespace apply by one `ip` process per command; its parser decodes every attribute of every message,
which at 1000 namespaces takes seconds where decoding the dozen fields the planner compares takes a tenth
of that; and it sends one request per syscall. Decoding is selective: only what the planner compares.

Nothing here knows about topologies or plans: the kernel adapter turns plan steps into these messages.
"""

from __future__ import annotations

import socket
import struct

from .codec import ATTR, NLA_F_NESTED, NLA_TYPE_MASK, attr, attributes, string, text, u32
from .transport import NLM_F_CREATE, NLM_F_EXCL, Request

# rtnetlink message types
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_GETNSID = 90
# link attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER = 1, 3, 4, 5, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD, IFLA_EXT_MASK, IFLA_LINK_NETNSID = 18, 20, 28, 29, 37
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
RTEXT_FILTER_SKIP_STATS = 1 << 3
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
# address attributes and flags
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_NODAD, IFA_F_PERMANENT = 0x02, 0x80
NETNSA_NSID, NETNSA_FD = 1, 3

_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def ifaddr(family: int, prefixlen: int, index: int, flags: int = 0) -> bytes:
    return _IFADDR.pack(family, prefixlen, flags, 0, index)


# --- requests -------------------------------------------------------------------------------------------

def new_link(name: str, kind: str, index: int = 0, mtu: int | None = None, mac: bytes | None = None,
             peer: dict | None = None) -> Request:
    """RTM_NEWLINK, failing if the name (or the ifindex asked for) is taken. `peer` (veth) has name, and
    optional net_ns_fd, index, mtu, mac."""
    attrs = [string(IFLA_IFNAME, name)]
    if mtu is not None:
        attrs.append(u32(IFLA_MTU, mtu))
    if mac is not None:
        attrs.append(attr(IFLA_ADDRESS, mac))
    data = b""
    if peer is not None:
        peer_attrs = [string(IFLA_IFNAME, peer["name"])]
        if peer.get("net_ns_fd") is not None:
            peer_attrs.append(u32(IFLA_NET_NS_FD, peer["net_ns_fd"]))
        if peer.get("mtu") is not None:
            peer_attrs.append(u32(IFLA_MTU, peer["mtu"]))
        if peer.get("mac") is not None:
            peer_attrs.append(attr(IFLA_ADDRESS, peer["mac"]))
        data = attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, ifinfo(peer.get("index", 0)) + b"".join(peer_attrs)))
    attrs.append(attr(IFLA_LINKINFO, string(IFLA_INFO_KIND, kind) + data))
    return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfo(index) + b"".join(attrs))


def set_link(name: str | None = None, index: int = 0, *, up: bool | None = None, mtu: int | None = None,
             mac: bytes | None = None, master: int | None = None, alias: str | None = None) -> Request:
    """RTM_SETLINK on the link `index`, or on the link called `name`."""
    attrs = []
    if name is not None and not index:
        attrs.append(string(IFLA_IFNAME, name))
    if mtu is not None:
        attrs.append(u32(IFLA_MTU, mtu))
    if mac is not None:
        attrs.append(attr(IFLA_ADDRESS, mac))
    if master is not None:
        attrs.append(u32(IFLA_MASTER, master))
    if alias is not None:
        attrs.append(attr(IFLA_IFALIAS, alias.encode()))
    flags = change = 0
    if up is not None:
        flags, change = (IFF_UP if up else 0), IFF_UP
    return Request(RTM_SETLINK, 0, ifinfo(index, flags, change) + b"".join(attrs))


def del_link(name: str | None = None, index: int = 0) -> Request:
    return Request(RTM_DELLINK, 0, ifinfo(index) + (string(IFLA_IFNAME, name) if not index else b""))


def address(add: bool, index: int, family: int, packed: bytes, prefixlen: int) -> Request:
    """RTM_NEWADDR (failing if it exists) or RTM_DELADDR. An IPv6 address is added without duplicate
    address detection, so it is usable at once."""
    flags = IFA_F_NODAD if add and family == socket.AF_INET6 else 0
    body = ifaddr(family, prefixlen, index, flags) + attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
    if add:
        return Request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)
    return Request(RTM_DELADDR, 0, body)


# --- replies --------------------------------------------------------------------------------------------

def link_dump_request() -> bytes:
    return ifinfo() + u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS)


def link_by_name(name: str) -> Request:
    """RTM_GETLINK of one link by name, without statistics."""
    return Request(RTM_GETLINK, 0, link_dump_request() + string(IFLA_IFNAME, name))


_LINK_FIELDS = frozenset({IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO,
                          IFLA_IFALIAS, IFLA_LINK_NETNSID})

_LINK_TYPES = _LINK_FIELDS | {kind | NLA_F_NESTED for kind in _LINK_FIELDS}  # as sent, flag or not


def decode_link(data: bytes, offset: int = 16) -> dict:
    """The fields of an RTM_NEWLINK message (its body at `offset`) that netlab compares. A link message
    carries some forty attributes; only these eight are copied out."""
    _, _, index, flags, _ = _IFINFO.unpack_from(data, offset)
    a = {}
    pos, end, unpack = offset + _IFINFO.size, len(data), ATTR.unpack_from
    while pos + 4 <= end:
        length, kind = unpack(data, pos)
        if length < 4:
            break
        if kind in _LINK_TYPES:
            a[kind & NLA_TYPE_MASK] = data[pos + 4:pos + length]
        pos += (length + 3) & ~3
    kind = None
    if IFLA_LINKINFO in a:
        info = a[IFLA_LINKINFO]
        kind = text(attributes(info, 0, len(info)).get(IFLA_INFO_KIND))
    if flags & IFF_LOOPBACK:
        kind = "loopback"
    return {
        "index": index,
        "name": text(a.get(IFLA_IFNAME)),
        "kind": kind or "device",
        "link": _u32(a.get(IFLA_LINK)),
        "link_nsid": _s32(a.get(IFLA_LINK_NETNSID)),
        "master": _u32(a.get(IFLA_MASTER)),
        "up": bool(flags & IFF_UP),
        "mtu": _u32(a.get(IFLA_MTU)),
        "mac": a[IFLA_ADDRESS].hex(":") if a.get(IFLA_ADDRESS) else None,
        "alias": text(a.get(IFLA_IFALIAS)) or None,
        "addresses": set(),
    }


def decode_address(data: bytes, offset: int = 16) -> tuple[int, int, bytes, int, int] | None:
    """(link index, family, packed address, prefix length, flags) of an RTM_NEWADDR message."""
    family, prefixlen, flags, _, index = _IFADDR.unpack_from(data, offset)
    a = attributes(data, offset + _IFADDR.size, len(data))
    packed = a.get(IFA_LOCAL) or a.get(IFA_ADDRESS)
    if packed is None:
        return None
    if IFA_FLAGS in a:
        flags = struct.unpack("=I", a[IFA_FLAGS])[0]
    return index, family, packed, prefixlen, flags


def nsid_request(fd: int) -> bytes:
    return struct.pack("=Bxxx", socket.AF_UNSPEC) + u32(NETNSA_FD, fd)


def decode_nsid(data: bytes, offset: int = 16) -> int | None:
    a = attributes(data, offset + 4, len(data))
    return _s32(a.get(NETNSA_NSID))


def _u32(value: bytes | None) -> int | None:
    return None if value is None else struct.unpack("=I", value)[0]


def _s32(value: bytes | None) -> int | None:
    return None if value is None else struct.unpack("=i", value)[0]
