"""rtnetlink messages: their headers and attribute tables, the requests netlab sends, and the fields of the
replies it compares.

Why not pyroute2 here (docs/performance.md has the figures): importing it costs more than a whole
10-namespace apply by one `ip` process per command; its parser decodes every attribute of every message,
which at 1000 namespaces takes seconds where decoding the dozen fields the planner compares takes a tenth
of that; and it sends one request per syscall. Decoding is selective: only what the planner compares.

The tables follow the kernel's uapi headers (if_link.h, if_addr.h, rtnetlink.h, pkt_sched.h, if_bridge.h,
veth.h, net_namespace.h); a field is named after its constant without the prefix (IFLA_IFNAME: "ifname").
They declare only what netlab sends or reads, or is about to. Nothing here knows about topologies or plans:
the kernel adapter turns plan steps into these messages, and a link kind encodes its own IFLA_INFO_DATA.
"""

from __future__ import annotations

import socket
import struct
from typing import Any, TypedDict

from .codec import (
    BE16,
    BYTES,
    MAC,
    NLA_F_NESTED,
    S32,
    S64,
    STRING,
    U8,
    U16,
    U32,
    U64,
    Array,
    Nested,
    Repeated,
    String,
    Struct,
    StructThen,
    Table,
    message,
)
from .transport import NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, Request

# rtnetlink message types
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_GETNSID = 90
# link attributes
IFLA_ADDRESS, IFLA_BROADCAST, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_QDISC, IFLA_MASTER = 1, 2, 3, 4, 5, 6, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_AF_SPEC, IFLA_NET_NS_FD, IFLA_EXT_MASK = 18, 20, 26, 28, 29
IFLA_LINK_NETNSID, IFLA_NEW_IFINDEX = 37, 49
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFLA_BRIDGE_FLAGS, IFLA_BRIDGE_MODE, IFLA_BRIDGE_VLAN_INFO = 0, 1, 2
RTEXT_FILTER_BRVLAN, RTEXT_FILTER_BRVLAN_COMPRESSED, RTEXT_FILTER_SKIP_STATS = 1 << 1, 1 << 2, 1 << 3
# if_bridge.h: IFLA_BRIDGE_FLAGS (whom an AF_BRIDGE request is for) and struct bridge_vlan_info's flags
BRIDGE_FLAGS_MASTER, BRIDGE_FLAGS_SELF = 1, 2
BRIDGE_VLAN_INFO_MASTER, BRIDGE_VLAN_INFO_PVID, BRIDGE_VLAN_INFO_UNTAGGED = 1 << 0, 1 << 1, 1 << 2
BRIDGE_VLAN_INFO_RANGE_BEGIN, BRIDGE_VLAN_INFO_RANGE_END, BRIDGE_VLAN_INFO_BRENTRY = 1 << 3, 1 << 4, 1 << 5
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
# address attributes and flags
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
IFA_F_NODAD, IFA_F_PERMANENT = 0x02, 0x80
NETNSA_NSID, NETNSA_PID, NETNSA_FD = 1, 2, 3
# route attributes
RTA_DST, RTA_SRC, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_PREFSRC = 1, 2, 4, 5, 6, 7
RTA_METRICS, RTA_MULTIPATH, RTA_TABLE = 8, 9, 15
RTAX_MTU = 2
RTN_UNICAST, RTN_BLACKHOLE, RTN_UNREACHABLE, RTN_PROHIBIT = 1, 6, 7, 8
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
RT_TABLE_LOCAL = 255
RTPROT_REDIRECT, RTPROT_KERNEL, RTPROT_RA = 1, 2, 9
RTNH_F_ONLINK = 4
RTM_F_CLONED = 0x200
ROUTE_TYPES = {"unicast": RTN_UNICAST, "blackhole": RTN_BLACKHOLE, "unreachable": RTN_UNREACHABLE,
               "prohibit": RTN_PROHIBIT}
ROUTE_TYPE_NAMES = {v: k for k, v in ROUTE_TYPES.items()}
# traffic control (pkt_sched.h, rtnetlink.h)
TC_H_ROOT = 0xFFFFFFFF
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_NETEM_CORR, TCA_NETEM_DELAY_DIST, TCA_NETEM_REORDER, TCA_NETEM_CORRUPT, TCA_NETEM_LOSS = 1, 2, 3, 4, 5
TCA_NETEM_RATE, TCA_NETEM_ECN, TCA_NETEM_RATE64, TCA_NETEM_LATENCY64, TCA_NETEM_JITTER64 = 6, 7, 8, 10, 11
TCA_NETEM_SLOT = 12
TCA_TBF_PARMS, TCA_TBF_RATE64, TCA_TBF_BURST = 1, 4, 6
TC_LINKLAYER_ETHERNET = 1

# --- headers and tables ---------------------------------------------------------------------------------

IFINFOMSG = Struct("ifinfomsg", "=BxHiII", ("family", "type", "index", "flags", "change"))
IFADDRMSG = Struct("ifaddrmsg", "=BBBBI", ("family", "prefixlen", "flags", "scope", "index"))
RTGENMSG = Struct("rtgenmsg", "=Bxxx", ("family",))
RTMSG = Struct("rtmsg", "=BBBBBBBBI",
               ("family", "dst_len", "src_len", "tos", "table", "protocol", "scope", "type", "flags"))
TCMSG = Struct("tcmsg", "=BxxxiIII", ("family", "ifindex", "handle", "parent", "info"))

# IFLA_INFO_DATA's layout depends on the kind, so it stays bytes here: the kind's own file encodes it.
LINKINFO = Table("linkinfo", {IFLA_INFO_KIND: ("kind", STRING), IFLA_INFO_DATA: ("data", BYTES)})
LINK = Table("link", {
    IFLA_ADDRESS: ("address", MAC),
    IFLA_BROADCAST: ("broadcast", MAC),
    IFLA_IFNAME: ("ifname", STRING),
    IFLA_MTU: ("mtu", U32),
    IFLA_LINK: ("link", U32),
    IFLA_QDISC: ("qdisc", STRING),  # the kind of the link's root qdisc (read only)
    IFLA_MASTER: ("master", U32),
    IFLA_LINKINFO: ("linkinfo", Nested(LINKINFO)),
    # Sent without a NUL, as iproute2 does: the kernel counts a NUL in the alias's 255-byte limit, and an
    # empty alias with a NUL would be stored instead of clearing it.
    IFLA_IFALIAS: ("ifalias", String(terminated=False)),
    IFLA_AF_SPEC: ("af_spec", BYTES),  # per address family: see BRIDGE_LINK
    IFLA_NET_NS_FD: ("net_ns_fd", U32),
    IFLA_EXT_MASK: ("ext_mask", U32),
    IFLA_LINK_NETNSID: ("link_netnsid", S32),
    IFLA_NEW_IFINDEX: ("new_ifindex", S32),
})
# A veth's IFLA_INFO_DATA: the other end, as an ifinfomsg and its link attributes.
VETH_INFO = Table("veth info", {VETH_INFO_PEER: ("peer", StructThen(IFINFOMSG, LINK))})

# The IFLA_INFO_DATA of the kinds labs use (if_link.h, issue 11), declared ahead of the kinds that send them.
VLAN_INFO = Table("vlan info", {
    1: ("id", U16),  # IFLA_VLAN_ID
    2: ("flags", Struct("ifla_vlan_flags", "=II", ("flags", "mask"))),
    5: ("protocol", BE16),  # IFLA_VLAN_PROTOCOL: ETH_P_8021Q 0x8100 or ETH_P_8021AD 0x88a8
})
MACVLAN_MACADDRS = Table("macvlan macaddr data", {4: ("macaddr", Repeated(MAC))})
MACVLAN_INFO = Table("macvlan info", {
    1: ("mode", U32),  # private 1, vepa 2, bridge 4, passthru 8, source 16
    2: ("flags", U16),
    3: ("macaddr_mode", U32),  # add 0, del 1, flush 2, set 3 (mode source's list of MACs)
    4: ("macaddr", MAC),
    5: ("macaddr_data", Nested(MACVLAN_MACADDRS)),
    6: ("macaddr_count", U32),
})
IPVLAN_INFO = Table("ipvlan info", {1: ("mode", U16), 2: ("flags", U16)})  # l2 0, l3 1, l3s 2; bridge 0,
# private 1, vepa 2
VXLAN_INFO = Table("vxlan info", {
    1: ("id", U32),
    2: ("group", BYTES),  # an IPv4 remote or multicast group (in_addr)
    3: ("link", U32),  # the parent: here, not in IFLA_LINK
    4: ("local", BYTES),
    5: ("ttl", U8),
    7: ("learning", U8),
    15: ("port", BE16),  # without it the kernel uses 8472, not the IANA 4789
    16: ("group6", BYTES),
    17: ("local6", BYTES),
})
TUN_INFO = Table("tun info", {  # read only: a tun/tap is made through /dev/net/tun
    1: ("owner", U32), 2: ("group", U32), 3: ("type", U8), 4: ("pi", U8), 5: ("vnet_hdr", U8),
    6: ("persist", U8), 7: ("multi_queue", U8), 8: ("num_queues", U32),
})
BRIDGE_INFO = Table("bridge info", {
    5: ("stp_state", U32),  # IFLA_BR_STP_STATE
    7: ("vlan_filtering", U8),
    39: ("vlan_default_pvid", U16),
})

# AF_BRIDGE link messages (`bridge vlan`): IFLA_AF_SPEC holds the port's VLANs, one attribute each.
BRIDGE_VLAN_INFO = Struct("bridge_vlan_info", "=HH", ("flags", "vid"))
BRIDGE_AF_SPEC = Table("bridge af_spec", {
    IFLA_BRIDGE_FLAGS: ("flags", U16),
    IFLA_BRIDGE_MODE: ("mode", U16),
    IFLA_BRIDGE_VLAN_INFO: ("vlan_info", Repeated(BRIDGE_VLAN_INFO)),
})
BRIDGE_LINK = Table("link (AF_BRIDGE)", {**LINK.attrs, IFLA_AF_SPEC: ("af_spec", Nested(BRIDGE_AF_SPEC))})

ADDR = Table("addr", {IFA_ADDRESS: ("address", BYTES), IFA_LOCAL: ("local", BYTES), IFA_FLAGS: ("flags", U32)})
NETNSA = Table("netnsa", {NETNSA_NSID: ("nsid", S32), NETNSA_PID: ("pid", U32), NETNSA_FD: ("fd", U32)})

METRICS = Table("metrics", {RTAX_MTU: ("mtu", U32)})
# RTA_MULTIPATH: struct rtnexthop {u16 len; u8 flags; u8 hops; int ifindex}, then the nexthop's attributes.
RTNEXTHOP = Struct("rtnexthop", "=HBBi", (None, "flags", "hops", "ifindex"))
NEXTHOP = Table("nexthop", {RTA_GATEWAY: ("gateway", BYTES)})
ROUTE = Table("route", {
    RTA_DST: ("dst", BYTES),
    RTA_SRC: ("src", BYTES),
    RTA_OIF: ("oif", U32),
    RTA_GATEWAY: ("gateway", BYTES),
    RTA_PRIORITY: ("priority", U32),
    RTA_PREFSRC: ("prefsrc", BYTES),
    RTA_METRICS: ("metrics", Nested(METRICS)),
    RTA_MULTIPATH: ("multipath", Array(StructThen(RTNEXTHOP, NEXTHOP))),
    RTA_TABLE: ("table", U32),
})

# TCA_OPTIONS's layout depends on TCA_KIND, like IFLA_INFO_DATA: bytes here; NETEM_OPTIONS for netem, TBF
# for tbf (netlab/impair.py encodes and reads them).
TC = Table("tc", {TCA_KIND: ("kind", STRING), TCA_OPTIONS: ("options", BYTES)})
TC_NETEM_QOPT = Struct("tc_netem_qopt", "=6I", ("latency", "limit", "loss", "gap", "duplicate", "jitter"))
NETEM = Table("netem", {
    TCA_NETEM_CORR: ("corr", Struct("tc_netem_corr", "=3I", ("delay_corr", "loss_corr", "dup_corr"))),
    TCA_NETEM_DELAY_DIST: ("delay_dist", BYTES),  # s16[]: the distribution table (never dumped)
    TCA_NETEM_REORDER: ("reorder", Struct("tc_netem_reorder", "=2I", ("probability", "correlation"))),
    TCA_NETEM_CORRUPT: ("corrupt", Struct("tc_netem_corrupt", "=2I", ("probability", "correlation"))),
    TCA_NETEM_LOSS: ("loss_model", BYTES),  # nested: a Gilbert-Elliott or 4-state model (netlab sets none)
    TCA_NETEM_RATE: ("rate", Struct("tc_netem_rate", "=IiIi",
                                    ("rate", "packet_overhead", "cell_size", "cell_overhead"))),
    TCA_NETEM_ECN: ("ecn", U32),
    TCA_NETEM_RATE64: ("rate64", U64),
    TCA_NETEM_LATENCY64: ("latency64", S64),
    TCA_NETEM_JITTER64: ("jitter64", S64),
    TCA_NETEM_SLOT: ("slot", Struct("tc_netem_slot", "=qqiiqq", ("min_delay", "max_delay", "max_packets", "max_bytes",
                                                               "dist_delay", "dist_jitter"))),
})
# The kernel reads the struct, then attributes from the next 4-byte boundary, not flagged nested.
NETEM_OPTIONS = StructThen(TC_NETEM_QOPT, NETEM)
# struct tc_ratespec; struct tc_tbf_qopt (two ratespecs, then limit in bytes, buffer and mtu in ticks)
TC_RATESPEC = ("cell_log", "linklayer", "overhead", "cell_align", "mpu", "rate")
TC_TBF_QOPT = Struct("tc_tbf_qopt", "=BBHhHIBBHhHIIII",
                     TC_RATESPEC + tuple("peak_" + f for f in TC_RATESPEC) + ("limit", "buffer", "mtu"))
TBF = Table("tbf", {
    TCA_TBF_PARMS: ("parms", TC_TBF_QOPT),
    TCA_TBF_RATE64: ("rate64", U64),
    TCA_TBF_BURST: ("burst", U32),
})


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return IFINFOMSG.encode({"index": index, "flags": flags, "change": change})


def ifaddr(family: int, prefixlen: int, index: int, flags: int = 0) -> bytes:
    return IFADDRMSG.encode({"family": family, "prefixlen": prefixlen, "flags": flags, "index": index})


# --- requests -------------------------------------------------------------------------------------------

def new_link(name: str, kind: str, index: int = 0, mtu: int | None = None, mac: bytes | None = None,
             peer: dict[str, Any] | None = None, info_data: bytes | None = None, link: int | None = None,
             link_netnsid: int | None = None, net_ns_fd: int | None = None) -> Request:
    """RTM_NEWLINK, failing if the name (or the ifindex asked for) is taken. `info_data` is the kind's
    IFLA_INFO_DATA, encoded by the kind; `peer` (veth) encodes it instead from name, and optional
    net_ns_fd, index, mtu, mac. `link` is the parent's ifindex (IFLA_LINK: a vlan's, a macvlan's), in the
    namespace the sender knows by `link_netnsid` when that is not its own. `net_ns_fd`: the link is made in
    that namespace (its parent, `link`, is still the sender's)."""
    if peer is not None:
        if info_data is not None:
            raise ValueError("new_link: peer and info_data are two ways to give the same attribute")
        info_data = VETH_INFO.encode({"peer": {
            "index": peer.get("index", 0), "ifname": peer["name"], "net_ns_fd": peer.get("net_ns_fd"),
            "mtu": peer.get("mtu"), "address": _mac(peer.get("mac"))}})
    return Request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, message(IFINFOMSG, {"index": index}, LINK, {
        "ifname": name, "mtu": mtu, "address": _mac(mac), "link": link, "link_netnsid": link_netnsid,
        "net_ns_fd": net_ns_fd,
        "linkinfo": {"kind": kind, "data": info_data}}))


def set_link(name: str | None = None, index: int = 0, *, up: bool | None = None, mtu: int | None = None,
             mac: bytes | None = None, master: int | None = None, alias: str | None = None,
             rename: str | None = None) -> Request:
    """RTM_SETLINK on the link `index`, or on the link called `name`; `rename` gives the link `index` a new
    name (it must be down)."""
    flags = change = 0
    if up is not None:
        flags, change = (IFF_UP if up else 0), IFF_UP
    return Request(RTM_SETLINK, 0, message(IFINFOMSG, {"index": index, "flags": flags, "change": change}, LINK, {
        "ifname": rename if index else name, "mtu": mtu, "address": _mac(mac), "master": master, "ifalias": alias}))


def change_link(kind: str, info_data: bytes, name: str | None = None, index: int = 0) -> Request:
    """RTM_NEWLINK without NLM_F_CREATE: change a kind's own options (IFLA_INFO_DATA) of an existing link in
    place, as `ip link set NAME type KIND ...` does. The kernel's changelink takes what the data names and
    leaves the rest; the kind must be the link's (a different one is EOPNOTSUPP)."""
    return Request(RTM_NEWLINK, 0, message(IFINFOMSG, {"index": index}, LINK, {
        "ifname": None if index else name, "linkinfo": {"kind": kind, "data": info_data}}))


def del_link(name: str | None = None, index: int = 0) -> Request:
    return Request(RTM_DELLINK, 0, message(IFINFOMSG, {"index": index}, LINK, {"ifname": None if index else name}))


# --- bridge VLANs (AF_BRIDGE link messages, as `bridge vlan add|del|show`) -------------------------------
#
# rtnetlink dispatches on the message type AND the family: an AF_BRIDGE RTM_SETLINK/RTM_DELLINK goes to
# rtnl_bridge_setlink/rtnl_bridge_dellink (net/core/rtnetlink.c), which hand IFLA_AF_SPEC to the bridge
# (br_setlink/br_dellink, net/bridge/br_netlink.c); the same RTM_DELLINK as AF_UNSPEC is rtnl_dellink,
# which deletes the device itself. So every request here carries family AF_BRIDGE (a test pins it).

def bridge_vlan(add: bool, index: int, vid: int, pvid: bool = False, untagged: bool = False,
                self_: bool = False) -> Request:
    """AF_BRIDGE RTM_SETLINK (`add`: the VLAN added to link `index`, or its flags replaced if it is there)
    or RTM_DELLINK (the VLAN removed) of one VLAN. `self_`: the bridge device's own VLAN (`bridge vlan add
    dev br0 vid 10 self`; `index` is the bridge), IFLA_BRIDGE_FLAGS = BRIDGE_FLAGS_SELF; otherwise the
    port's VLAN, handled by its master bridge (BRIDGE_FLAGS_MASTER, what the kernel also assumes without
    the attribute). pvid and untagged are separate flags; a delete sends neither (the kernel ignores
    them there)."""
    flags = (BRIDGE_VLAN_INFO_PVID if pvid else 0) | (BRIDGE_VLAN_INFO_UNTAGGED if untagged else 0)
    body = message(IFINFOMSG, {"family": socket.AF_BRIDGE, "index": index}, BRIDGE_LINK, {"af_spec": {
        "flags": BRIDGE_FLAGS_SELF if self_ else BRIDGE_FLAGS_MASTER,
        "vlan_info": [{"flags": flags if add else 0, "vid": vid}]}})
    return Request(RTM_SETLINK if add else RTM_DELLINK, 0, body)


def bridge_vlan_dump_request() -> bytes:
    """RTM_GETLINK dump, family AF_BRIDGE, IFLA_EXT_MASK = RTEXT_FILTER_BRVLAN | RTEXT_FILTER_SKIP_STATS:
    one message per bridge port and per bridge, with its VLANs one IFLA_BRIDGE_VLAN_INFO each (the
    uncompressed form: RTEXT_FILTER_BRVLAN_COMPRESSED would send runs of VLANs with equal flags as
    RANGE_BEGIN/RANGE_END pairs; decode_bridge_vlans reads those too). `bridge -j vlan show` asks the
    same way (iproute2 bridge/vlan.c)."""
    return _BRIDGE_VLAN_DUMP


_BRIDGE_VLAN_DUMP = message(IFINFOMSG, {"family": socket.AF_BRIDGE}, LINK,
                            {"ext_mask": RTEXT_FILTER_BRVLAN | RTEXT_FILTER_SKIP_STATS})
_AF_SPEC = frozenset({"af_spec"})


def decode_bridge_vlans(data: bytes, offset: int = 16) -> tuple[int, dict[int, tuple[bool, bool]]]:
    """(link index, {vid: (pvid, untagged)}) of one AF_BRIDGE RTM_NEWLINK message (its body at `offset`):
    a bridge port's VLANs, or a bridge's own. A message without VLANs (a kernel without
    CONFIG_BRIDGE_VLAN_FILTERING, a port with none) gives an empty dict. A RANGE_BEGIN..RANGE_END pair
    stands for every VID between, with the begin's flags."""
    _, _, index, _, _ = IFINFOMSG.unpack_from(data, offset)
    spec = BRIDGE_LINK.decode(data, offset + IFINFOMSG.size, only=_AF_SPEC).get("af_spec") or {}
    vlans: dict[int, tuple[bool, bool]] = {}
    begin: dict[str, int] | None = None
    for info in spec.get("vlan_info", ()):
        flags, vid = info["flags"], info["vid"]
        if flags & BRIDGE_VLAN_INFO_RANGE_BEGIN:
            begin = info
            continue
        first = vid
        if begin is not None and flags & BRIDGE_VLAN_INFO_RANGE_END:
            first, flags = begin["vid"], begin["flags"]
        begin = None
        value = (bool(flags & BRIDGE_VLAN_INFO_PVID), bool(flags & BRIDGE_VLAN_INFO_UNTAGGED))
        for v in range(first, vid + 1):
            vlans[v] = value
    return index, vlans


def address(add: bool, index: int, family: int, packed: bytes, prefixlen: int) -> Request:
    """RTM_NEWADDR (failing if it exists) or RTM_DELADDR. An IPv6 address is added without duplicate
    address detection, so it is usable at once."""
    flags = IFA_F_NODAD if add and family == socket.AF_INET6 else 0
    header = {"family": family, "prefixlen": prefixlen, "flags": flags, "index": index}
    body = message(IFADDRMSG, header, ADDR, {"local": packed, "address": packed})
    if add:
        return Request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body)
    return Request(RTM_DELADDR, 0, body)


def _mac(mac: bytes | None) -> str | None:
    return None if mac is None else mac.hex(":")


# --- replies --------------------------------------------------------------------------------------------

def link_dump_request() -> bytes:
    return _LINK_DUMP


def addr_dump_request() -> bytes:
    """RTM_GETADDR dump of every family."""
    return _ADDR_DUMP


def link_by_name(name: str) -> Request:
    """RTM_GETLINK of one link by name, without statistics."""
    body = message(IFINFOMSG, {}, LINK, {"ifname": name, "ext_mask": RTEXT_FILTER_SKIP_STATS})
    return Request(RTM_GETLINK, 0, body)


# Sent once per namespace read: built once.
_LINK_DUMP = message(IFINFOMSG, {}, LINK, {"ext_mask": RTEXT_FILTER_SKIP_STATS})
_ADDR_DUMP = ifaddr(socket.AF_UNSPEC, 0, 0)

# A link message carries some forty attributes; only these are decoded.
_LINK_READ = frozenset({"address", "ifname", "mtu", "link", "master", "linkinfo", "ifalias", "link_netnsid",
                        "qdisc"})


class LinkInfo(TypedDict):
    """What decode_link reads of a link message: the fields netlab compares, and the kind's own data."""

    index: int
    name: str  # IFLA_IFNAME: the kernel puts it in every link message (rtnl_fill_ifinfo)
    kind: str  # "loopback", IFLA_INFO_KIND, or "device" (a link without one: a physical device)
    link: int | None
    link_nsid: int | None
    master: int | None
    up: bool
    mtu: int | None
    mac: str | None
    alias: str | None
    info_data: bytes | None
    qdisc: str | None  # IFLA_QDISC: the kind of its root qdisc ("noqueue", "netem"), None before it is first up
    addresses: set[str]  # empty: the reader fills it in from the address dump


def decode_link(data: bytes, offset: int = 16) -> LinkInfo:
    """The fields of an RTM_NEWLINK message (its body at `offset`) that netlab compares, and the kind's
    IFLA_INFO_DATA (bytes, for the kind to decode)."""
    _, _, index, flags, _ = IFINFOMSG.unpack_from(data, offset)  # the hot path: no dict for the header
    a = LINK.decode(data, offset + IFINFOMSG.size, only=_LINK_READ)
    info = a.get("linkinfo") or {}
    return {
        "index": index,
        "name": a["ifname"],
        "kind": "loopback" if flags & IFF_LOOPBACK else info.get("kind") or "device",
        "link": a.get("link"),
        "link_nsid": a.get("link_netnsid"),
        "master": a.get("master"),
        "up": bool(flags & IFF_UP),
        "mtu": a.get("mtu"),
        "mac": a.get("address") or None,
        "alias": a.get("ifalias") or None,
        "info_data": info.get("data"),
        "qdisc": a.get("qdisc"),
        "addresses": set(),
    }


# --- qdiscs (`tc qdisc`) -------------------------------------------------------------------------------

def qdisc(op: str, index: int, handle: int, kind: str = "", options: bytes | None = None) -> Request:
    """The root qdisc of link `index`, with `handle`: "add" (RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL: it
    takes the place of the kernel's default qdisc, which has handle 0, and fails over anybody else's),
    "change" (NLM_F_REPLACE without NLM_F_CREATE: the qdisc with that handle, of the same kind, changed in
    place; ENOENT if it is not there), "graft" (NLM_F_CREATE | NLM_F_REPLACE: a new qdisc with a handle not
    in use takes the place of the root one in one step) or "delete" (RTM_DELQDISC: the root qdisc, only
    if it has that handle; the kernel then puts its default back). net/sched/sch_api.c, tc_modify_qdisc
    and tc_get_qdisc, decide so."""
    header = {"family": socket.AF_UNSPEC, "ifindex": index, "handle": handle, "parent": TC_H_ROOT}
    if op == "delete":
        return Request(RTM_DELQDISC, 0, message(TCMSG, header, TC, {}))
    return Request(RTM_NEWQDISC, _QDISC_FLAGS[op], message(TCMSG, header, TC, {"kind": kind, "options": options}))


_QDISC_FLAGS = {"add": NLM_F_CREATE | NLM_F_EXCL, "change": NLM_F_REPLACE, "graft": NLM_F_CREATE | NLM_F_REPLACE}
_QDISC_DUMP = TCMSG.encode({"family": socket.AF_UNSPEC})


def qdisc_dump_request() -> bytes:
    """RTM_GETQDISC dump: every qdisc of every link of the namespace (root ones and their children)."""
    return _QDISC_DUMP


def decode_qdisc(data: bytes, offset: int = 16) -> tuple[int, int, int, str, bytes | None]:
    """(link index, handle, parent, kind, TCA_OPTIONS) of an RTM_NEWQDISC message."""
    _, index, handle, parent, _ = TCMSG.unpack_from(data, offset)
    a = TC.decode(data, offset + TCMSG.size)
    return index, handle, parent, a.get("kind", ""), a.get("options")


def decode_address(data: bytes, offset: int = 16) -> tuple[int, int, bytes, int, int] | None:
    """(link index, family, packed address, prefix length, flags) of an RTM_NEWADDR message."""
    family, prefixlen, flags, _, index = IFADDRMSG.unpack_from(data, offset)  # no dict for the header
    a = ADDR.decode(data, offset + IFADDRMSG.size)
    packed = a.get("local") or a.get("address")
    if packed is None:
        return None
    return index, family, packed, prefixlen, a.get("flags", flags)


# --- routes ---------------------------------------------------------------------------------------------

class Hop(TypedDict):
    """One path of a route, as sent and as read: gateway (packed, or None), ifindex (0: none), weight,
    onlink."""

    gateway: bytes | None
    ifindex: int
    weight: int
    onlink: bool


def route(op: str, family: int, dst: bytes, dst_len: int, table: int, metric: int, protocol: int,
          kind: str = "unicast", hops: list[Hop] | None = None, prefsrc: bytes | None = None,
          mtu: int | None = None) -> Request:
    """RTM_NEWROUTE (op "add": failing if a route with its key exists; "replace": that route changed in
    place) or RTM_DELROUTE ("delete": the route with this key and `protocol`, whatever its paths).
    One hop is a plain route (RTA_GATEWAY, RTA_OIF); more are RTA_MULTIPATH, weights as hops - 1.

    Packed by hand (a 300-router chain sends 89,102 of them; through the tables each cost about 25 us,
    by hand under 3): the same bytes as `route_by_table`, which a test checks for every case. A multipath
    route goes through the tables."""
    if op == "delete":
        return Request(RTM_DELROUTE, 0, _ROUTE_HEAD(family, dst_len, 0, 0, table if table < 256 else 0, protocol,
                                                    RT_SCOPE_NOWHERE, 0, 0)
                       + _route_key(dst, dst_len, metric, table))
    if hops and len(hops) > 1:
        return route_by_table(op, family, dst, dst_len, table, metric, protocol, kind, hops, prefsrc, mtu)
    if hops:
        hop = hops[0]
        gateway, ifindex, flags = hop["gateway"], hop["ifindex"], RTNH_F_ONLINK if hop["onlink"] else 0
    else:
        gateway, ifindex, flags = None, 0, 0
    scope = RT_SCOPE_LINK if kind == "unicast" and not gateway else RT_SCOPE_UNIVERSE
    body = _ROUTE_HEAD(family, dst_len, 0, 0, table if table < 256 else 0, protocol, scope, ROUTE_TYPES[kind], flags)
    if dst_len:
        body += _address_attr(RTA_DST, dst)
    if ifindex:
        body += _U32_ATTR(8, RTA_OIF, ifindex)
    if gateway:
        body += _address_attr(RTA_GATEWAY, gateway)
    if metric:
        body += _U32_ATTR(8, RTA_PRIORITY, metric)
    if prefsrc:
        body += _address_attr(RTA_PREFSRC, prefsrc)
    if mtu:
        body += _METRICS_MTU(12, RTA_METRICS | NLA_F_NESTED, 8, RTAX_MTU, mtu)
    return Request(RTM_NEWROUTE, _NEW_FLAGS[op], body + _U32_ATTR(8, RTA_TABLE, table))


def route_by_table(op: str, family: int, dst: bytes, dst_len: int, table: int, metric: int, protocol: int,
                   kind: str = "unicast", hops: list[Hop] | None = None, prefsrc: bytes | None = None,
                   mtu: int | None = None) -> Request:
    """`route` through the ROUTE table: the reference its hand-packed bytes are checked against, and the
    encoder of multipath routes."""
    hops = hops or []
    gateway = any(h["gateway"] for h in hops)
    flags = 0
    if op == "delete":
        msg_type, scope, rtype = RTM_DELROUTE, RT_SCOPE_NOWHERE, 0
    else:
        msg_type, rtype = RTM_NEWROUTE, ROUTE_TYPES[kind]
        scope = RT_SCOPE_LINK if kind == "unicast" and not gateway else RT_SCOPE_UNIVERSE
        flags = NLM_F_CREATE | (NLM_F_REPLACE if op == "replace" else NLM_F_EXCL)
    header = {"family": family, "dst_len": dst_len, "table": table if table < 256 else 0, "protocol": protocol,
              "scope": scope, "type": rtype}
    attrs: dict[str, Any] = {"dst": dst if dst_len else None, "priority": metric or None, "table": table}
    if op != "delete":
        if len(hops) == 1:
            hop = hops[0]
            header["flags"] = RTNH_F_ONLINK if hop["onlink"] else 0
            attrs["gateway"], attrs["oif"] = hop["gateway"], hop["ifindex"] or None
        elif hops:
            attrs["multipath"] = [{"flags": RTNH_F_ONLINK if h["onlink"] else 0, "hops": h["weight"] - 1,
                                   "ifindex": h["ifindex"], "gateway": h["gateway"]} for h in hops]
        attrs["prefsrc"] = prefsrc
        attrs["metrics"] = {"mtu": mtu} if mtu else None
    return Request(msg_type, flags, message(RTMSG, header, ROUTE, attrs))


_ROUTE_HEAD = struct.Struct("=BBBBBBBBI").pack  # RTMSG's layout
_U32_ATTR = struct.Struct("=HHI").pack  # an attribute holding a u32
_METRICS_MTU = struct.Struct("=HHHHI").pack  # RTA_METRICS holding RTAX_MTU
_ATTR_HEAD = struct.Struct("=HH").pack


_IPV4_ATTR, _IPV6_ATTR = struct.Struct("=HH4s").pack, struct.Struct("=HH16s").pack
_NEW_FLAGS = {"add": NLM_F_CREATE | NLM_F_EXCL, "replace": NLM_F_CREATE | NLM_F_REPLACE}


def _address_attr(kind: int, data: bytes) -> bytes:
    """An attribute holding an address (4 or 16 bytes; anything else is packed as it comes)."""
    n = len(data)
    if n == 4:
        return _IPV4_ATTR(8, kind, data)
    if n == 16:
        return _IPV6_ATTR(20, kind, data)
    return _ATTR_HEAD(4 + n, kind) + data + b"\0" * (-n & 3)


def _route_key(dst: bytes, dst_len: int, metric: int, table: int) -> bytes:
    """The attributes that name a route: RTA_DST, RTA_PRIORITY, RTA_TABLE (in ROUTE's order)."""
    return ((_address_attr(RTA_DST, dst) if dst_len else b"") + (_U32_ATTR(8, RTA_PRIORITY, metric) if metric else b"")
            + _U32_ATTR(8, RTA_TABLE, table))


def route_dump_request(family: int) -> bytes:
    return _ROUTE_DUMP[family]


_ROUTE_DUMP: dict[int, bytes] = {f: RTMSG.encode({"family": f}) for f in (socket.AF_INET, socket.AF_INET6)}
_ROUTE_SKIP_PROTOCOLS = frozenset({RTPROT_REDIRECT, RTPROT_KERNEL, RTPROT_RA})
_MULTIPATH = ROUTE.attrs[RTA_MULTIPATH][1]
_ATTR_UNPACK = struct.Struct("=HH").unpack_from
_U32_UNPACK = struct.Struct("=I").unpack_from
_RTMSG_UNPACK, _RTMSG_SIZE = RTMSG.unpack_from, RTMSG.size
_TYPE = 0x3FFF  # an attribute's type without NLA_F_NESTED and NLA_F_NET_BYTEORDER


class RouteInfo(TypedDict):
    """What decode_route reads of a route: its key, kind, paths (ifindexes) and the fields compared."""

    family: int
    dst: bytes | None
    dst_len: int
    table: int
    metric: int
    protocol: int
    type: str
    hops: list[Hop]
    prefsrc: bytes | None
    mtu: int | None


def decode_route(data: bytes, offset: int = 16) -> RouteInfo | None:
    """A route message's fields, or None for a route that is the kernel's own (made by the kernel, a
    redirect or a router advertisement; in the local table; a cached clone; a type netlab does not make:
    local, broadcast, multicast...).

    One loop over the attributes that copies out the eight it reads (RTA_DST, RTA_OIF, RTA_GATEWAY,
    RTA_PRIORITY, RTA_PREFSRC, RTA_METRICS, RTA_MULTIPATH, RTA_TABLE) and skips the rest, as
    ROUTE.decode(only=...) does, without its dict: a route dump of a 300-router chain has 89,102."""
    family, dst_len, _, _, table, protocol, _, rtype, flags = _RTMSG_UNPACK(data, offset)
    kind = ROUTE_TYPE_NAMES.get(rtype)
    if kind is None or protocol in _ROUTE_SKIP_PROTOCOLS or table == RT_TABLE_LOCAL or flags & RTM_F_CLONED:
        return None
    dst = gateway = prefsrc = None
    oif = metric = 0
    mtu = multipath = None
    pos, end = offset + _RTMSG_SIZE, len(data)
    while pos + 4 <= end:
        length, atype = _ATTR_UNPACK(data, pos)
        if length < 4:
            break
        atype &= _TYPE
        if atype <= RTA_TABLE:
            if pos + length > end:
                break
            if atype == RTA_DST:
                dst = data[pos + 4:pos + length]
            elif atype == RTA_OIF:
                oif = _U32_UNPACK(data, pos + 4)[0]
            elif atype == RTA_GATEWAY:
                gateway = data[pos + 4:pos + length]
            elif atype == RTA_PRIORITY:
                metric = _U32_UNPACK(data, pos + 4)[0]
            elif atype == RTA_PREFSRC:
                prefsrc = data[pos + 4:pos + length]
            elif atype == RTA_TABLE:
                table = _U32_UNPACK(data, pos + 4)[0]
            elif atype == RTA_METRICS:
                mtu = METRICS.decode(data[pos + 4:pos + length]).get("mtu")
            elif atype == RTA_MULTIPATH:
                multipath = _MULTIPATH.decode(data[pos + 4:pos + length])
        pos += (length + 3) & ~3
    hops: list[Hop] = []
    if kind == "unicast":
        if multipath is not None:
            hops = [{"gateway": h.get("gateway"), "ifindex": h["ifindex"], "weight": h["hops"] + 1,
                     "onlink": bool(h["flags"] & RTNH_F_ONLINK)} for h in multipath]
        else:
            hops = [{"gateway": gateway, "ifindex": oif, "weight": 1, "onlink": bool(flags & RTNH_F_ONLINK)}]
    return {"family": family, "dst": dst, "dst_len": dst_len, "table": table, "metric": metric,
            "protocol": protocol, "type": kind, "hops": hops, "prefsrc": prefsrc, "mtu": mtu}


def nsid_request(fd: int) -> bytes:
    return message(RTGENMSG, {"family": socket.AF_UNSPEC}, NETNSA, {"fd": fd})


def decode_nsid(data: bytes, offset: int = 16) -> int | None:
    return NETNSA.decode(data, offset + RTGENMSG.size).get("nsid")
