"""A narrow rtnetlink codec: exactly the messages netlab sends, and the fields of the replies it compares.

Why not pyroute2 here (docs/performance.md has the figures): importing it costs more than a whole
10-namespace apply by one `ip` process per command; its parser decodes every attribute of every message,
which at 1000 namespaces takes seconds where decoding the dozen fields the planner compares takes a tenth
of that; and it sends one request per syscall. This module packs requests with `struct`, sends many of
them in one `sendmsg`, and matches each acknowledgement to its request by sequence number, so that a
failure inside a batch is still attributed to the one request that failed.

Nothing here knows about topologies or plans: `kernel.py` turns plan steps into these messages.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

# netlink
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
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

_HDR = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_ATTR = struct.Struct("=HH")
_ERR = struct.Struct("=i")
CHUNK = 1 << 16  # bytes of requests per sendmsg; their acks fit the receive buffer many times over
SO_RCVBUFFORCE = 33
RCVBUF = 1 << 22  # the socket's receive buffer: room for the acks of a whole chunk
RECV = 1 << 16  # bytes per recv(); the kernel fills at most 32 KiB per dump message batch


def attr(kind: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return _ATTR.pack(n, kind) + data + b"\0" * (-n & 3)


def string(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def ifaddr(family: int, prefixlen: int, index: int, flags: int = 0) -> bytes:
    return _IFADDR.pack(family, prefixlen, flags, 0, index)


@dataclass(frozen=True)
class Request:
    """One netlink request: message type, flags (NLM_F_REQUEST | NLM_F_ACK are added) and body."""

    type: int
    flags: int
    body: bytes


def attributes(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    """The top-level attributes in data[offset:end], by type (nested ones stay packed)."""
    found = {}
    while offset + 4 <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def text(value: bytes | None) -> str | None:
    return None if value is None else value.rstrip(b"\0").decode(errors="replace")


class NetlinkError(OSError):
    """A request the kernel refused (`errno` is the kernel's error), or a reply that cannot be read."""


class Socket:
    """An rtnetlink socket of the network namespace the calling thread is in when it is made."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # an error ack echoes only the header
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)  # needs CAP_NET_ADMIN
            except OSError:
                pass
            self.sock.bind((0, 0))
        except BaseException:
            self.sock.close()
            raise
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _frame(self, kind: int, flags: int, body: bytes) -> bytes:
        """One message with the next sequence number."""
        self.seq += 1
        return _HDR.pack(16 + len(body), kind, flags, self.seq, 0) + body

    def _messages(self):
        """The messages of one datagram: (type, flags, sequence number, buffer, offset, length)."""
        data = self.sock.recv(RECV)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, flags, seq, _ = _HDR.unpack_from(data, offset)
            if length < 16:
                raise NetlinkError(0, "malformed netlink reply")
            yield kind, flags, seq, data, offset, length
            offset += (length + 3) & ~3

    def batch(self, requests: list[Request]) -> list[int]:
        """Send the requests in order, as few sendmsg calls as fit, each asking for an ack; return one
        errno per request (0 for success). The kernel handles them one after the other, as if sent one
        by one, and goes on after a failure: each result belongs to its own request."""
        results = [0] * len(requests)
        start = 0
        while start < len(requests):
            first_seq = self.seq + 1
            packed, size, end = [], 0, start
            while end < len(requests) and (size < CHUNK or end == start):
                r = requests[end]
                packed.append(self._frame(r.type, r.flags | NLM_F_REQUEST | NLM_F_ACK, r.body))
                size += len(packed[-1])
                end += 1
            self.sock.sendall(b"".join(packed))
            self._acks(first_seq, end - start, results, start)
            start = end
        return results

    def _acks(self, first_seq: int, count: int, results: list[int], base: int) -> None:
        pending = count
        while pending:
            for kind, _, seq, data, offset, _ in self._messages():
                if kind == NLMSG_ERROR and first_seq <= seq < first_seq + count:
                    results[base + seq - first_seq] = -_ERR.unpack_from(data, offset + 16)[0]
                    pending -= 1

    def request(self, request: Request) -> None:
        """Send one request; raise NetlinkError if the kernel refuses it."""
        code = self.batch([request])[0]
        if code:
            raise NetlinkError(code, os.strerror(code))

    def dump(self, kind: int, body: bytes) -> list[tuple[int, bytes]]:
        """Every reply to a dump request, as (message type, message)."""
        self.sock.sendall(self._frame(kind, NLM_F_REQUEST | NLM_F_DUMP, body))
        return self._replies(self.seq)

    def get(self, kind: int, body: bytes) -> bytes:
        """The one message that answers a non-dump request; NetlinkError if the kernel refuses it."""
        self.sock.sendall(self._frame(kind, NLM_F_REQUEST, body))
        replies = self._replies(self.seq, multi=False)
        if not replies:
            raise NetlinkError(0, "no reply")
        return replies[0][1]

    def _replies(self, seq: int, multi: bool = True) -> list[tuple[int, bytes]]:
        out = []
        while True:
            for kind, flags, got, data, offset, length in self._messages():
                if got != seq:
                    continue
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    code = -_ERR.unpack_from(data, offset + 16)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return out
                out.append((kind, data[offset:offset + length]))
                if not multi and not flags & NLM_F_MULTI:
                    return out


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
_NLA_F_NESTED = 0x8000
_LINK_TYPES = _LINK_FIELDS | {kind | _NLA_F_NESTED for kind in _LINK_FIELDS}  # as sent, flag or not


def decode_link(data: bytes, offset: int = 16) -> dict:
    """The fields of an RTM_NEWLINK message (its body at `offset`) that netlab compares. A link message
    carries some forty attributes; only these eight are copied out."""
    _, _, index, flags, _ = _IFINFO.unpack_from(data, offset)
    a = {}
    pos, end, unpack = offset + _IFINFO.size, len(data), _ATTR.unpack_from
    while pos + 4 <= end:
        length, kind = unpack(data, pos)
        if length < 4:
            break
        if kind in _LINK_TYPES:
            a[kind & 0x3FFF] = data[pos + 4:pos + length]
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
