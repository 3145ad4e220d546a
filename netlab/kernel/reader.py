"""Reading the kernel: the live State of the namespaces a topology concerns, from one link dump, one
address dump and one route dump per family per namespace, a qdisc dump where a link is impaired or is to
be, and the sysctls the topology names. Read-only
means read-only: reading never creates a namespace or a file.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from dataclasses import dataclass, replace

from .. import impair
from ..adapter import Scope
from ..kinds import KINDS, Kind
from ..kinds.loopback import KERNELS
from ..netlink import rtnl
from ..state import (
    HOST,
    LOOPBACK,
    QDISC_HANDLES,
    ROUTE_PROTOCOL,
    Link,
    Namespace,
    Nexthop,
    Qdisc,
    Route,
    RouteKey,
    State,
    Vlan,
    options as link_options,
    owner_from_alias,
)
from . import bridge_vlan, sysctl
from .namespaces import Namespaces

Raw = dict[int, rtnl.LinkInfo]  # a namespace's links by ifindex, as rtnl.decode_link gives them
_IMPAIRING = frozenset(kind for kind, _ in QDISC_HANDLES.values())  # the root qdisc kinds netlab makes


@dataclass(frozen=True)
class _Host:
    """What decides which of the root namespace's routes are read, and which are the topology's."""

    links: set[str]  # the links read there
    owned: set[str]  # those of them the topology owns
    keys: frozenset[RouteKey]  # the topology's routes there


class Reader:
    def __init__(self, namespaces: Namespaces):
        self.ns = namespaces

    def observe(self, scope: Scope) -> State:
        """The live State of the scope's namespaces (those that exist), of every namespace marked as its
        topology's, and, in the root namespace, of the links named in its `host_links` or marked as the
        topology's, with the user's links that depend on them: ports of their bridges, links on them
        (a macvlan's parent) or on a link of another namespace, and veths whose other end is in a
        namespace read here (a deleted namespace would take them with it); with their
        routes (in the root namespace, those through the links kept, and those with a key the topology
        wants there) and the sysctls the scope names."""
        topology, host_links = scope.topology, scope.host_links
        wanted = set(scope.namespaces) - {HOST}
        for ns in self.ns.names():
            if ns not in wanted and self.ns.fd(ns) is not None and self._lo_owner(ns) == topology:
                wanted.add(ns)
        raw: dict[str, Raw] = {HOST: self._dump(HOST)}
        for ns in sorted(wanted):
            if self.ns.fd(ns) is not None:
                raw[ns] = self._dump(ns)
        peers = self._peers(raw)
        result: dict[str, Namespace] = {}
        for ns, dumped in raw.items():
            links: dict[str, Link] = {}
            vlans = bridge_vlan.read(self.ns.sock(ns)) if ns in scope.vlans else {}
            qdiscs = self._qdiscs(ns) if ns in scope.impair or any(
                info["qdisc"] in _IMPAIRING for info in dumped.values()) else {}
            for info in dumped.values():
                link = _link(info, dumped, peers.get((ns, info["index"])))
                made = KINDS.get(link.kind)
                if made is not None and (made.parent or info["info_data"]):
                    made = KINDS[made.kind_of(info)]
                    link = replace(link, kind=made.name, options=link_options(made.read(info)),
                                   parent=self._parent(ns, made, info, raw) if made.parent else None)
                if info["index"] in vlans:
                    link = replace(link, vlans=tuple(Vlan(vid, *flags) for vid, flags in
                                                     sorted(vlans[info["index"]].items())))
                if info["index"] in qdiscs:
                    link = replace(link, qdisc=qdiscs[info["index"]])
                links[link.name] = link
            names = {index: info["name"] for index, info in dumped.items()}
            if ns == HOST:
                ours = {n: lk for n, lk in links.items() if lk.owner == topology or n in host_links}
                links = {n: lk for n, lk in links.items() if n in ours or (
                         lk.master in ours and ours[lk.master].kind == "bridge") or (
                         lk.peer is not None and lk.peer[0] != HOST) or (
                         lk.parent is not None and (lk.parent[0] != HOST or lk.parent[1] in ours))}
                owned = {n for n, lk in links.items() if lk.owner == topology}
                routes = self._routes(ns, names, topology, _Host(set(links), owned, scope.host_routes))
                result[ns] = Namespace(ns, None, links, routes)
                continue
            owner = links.get(LOOPBACK, Link(LOOPBACK, "loopback")).owner
            routes = self._routes(ns, names, owner)
            keys = scope.sysctls.get(ns)
            values = sysctl.read(self.ns, ns, keys, set(links), scope.missing_sysctls_are_errors) if keys else {}
            result[ns] = Namespace(ns, owner, links, routes, values)
        return State(result)

    def _routes(self, ns: str, names: dict[int, str], owner: str | None, host: _Host | None = None
                ) -> dict[RouteKey, Route]:
        """The namespace's routes that are not the kernel's own, by key, those with netlab's mark as
        `owner`'s (a route without it is nobody's). In the root namespace (`host`), only the routes through
        the links read or with a key the topology wants, and netlab's are `owner`'s only through links
        that are."""
        sock = self.ns.sock(ns)
        out: dict[RouteKey, Route] = {}
        newroute, decode = rtnl.RTM_NEWROUTE, rtnl.decode_route
        for family in (socket.AF_INET, socket.AF_INET6):
            for kind, message in sock.dump(rtnl.RTM_GETROUTE, rtnl.route_dump_request(family)):
                info = decode(message) if kind == newroute else None
                if info is None:
                    continue
                route = _route(info, names, owner if info["protocol"] == ROUTE_PROTOCOL else None)
                if host is not None:
                    devices = route.devices()
                    if not (devices & host.links or route.key in host.keys):
                        continue
                    if route.owner is not None and not (devices and devices <= host.owned):
                        route = route._replace(owner=None)
                out[route.key] = route
        return out

    def _qdiscs(self, ns: str) -> dict[int, Qdisc]:
        """The namespace's root qdiscs that are not the kernel's defaults (handle 0), by link index."""
        found: dict[int, Qdisc] = {}
        for kind, message in self.ns.sock(ns).dump(rtnl.RTM_GETQDISC, rtnl.qdisc_dump_request()):
            if kind != rtnl.RTM_NEWQDISC:
                continue
            index, handle, parent, name, options = rtnl.decode_qdisc(message)
            if parent == rtnl.TC_H_ROOT and handle:
                found[index] = impair.read(name, handle, options)
        return found

    def _parent(self, ns: str, made: Kind, info: rtnl.LinkInfo, raw: dict[str, Raw]) -> tuple[str, str] | None:
        """The (namespace, name) of a link's parent: its ifindex is in IFLA_LINK, or in the kind's data;
        with IFLA_LINK_NETNSID, in the namespace this one knows by that id. None where that namespace was
        not read."""
        if made.parent == "link":
            index, nsid = info["link"], info["link_nsid"]
        else:
            index, nsid = made.parent_index(info), None
        if not index:
            return None
        where = ns
        if nsid is not None:
            where = next((other for other in raw if other != ns and self._nsid(ns, other) == nsid), "")
        found = raw.get(where, {}).get(index)
        return (where, found["name"]) if found is not None else None

    def _lo_owner(self, ns: str) -> str | None:
        try:
            reply = self.ns.sock(ns).get(rtnl.RTM_GETLINK, rtnl.ifinfo(index=1))
        except OSError:
            return None
        return owner_from_alias(rtnl.decode_link(reply)["alias"])

    def _dump(self, ns: str) -> Raw:
        """The namespace's links by ifindex, each with its addresses."""
        sock = self.ns.sock(ns)
        links: Raw = {}
        for kind, message in sock.dump(rtnl.RTM_GETLINK, rtnl.link_dump_request()):
            if kind == rtnl.RTM_NEWLINK:
                info = rtnl.decode_link(message)
                links[info["index"]] = info
        self.ns.taken.setdefault(ns, set()).update(links)
        for kind, message in sock.dump(rtnl.RTM_GETADDR, rtnl.addr_dump_request()):
            got = rtnl.decode_address(message) if kind == rtnl.RTM_NEWADDR else None
            if got is None:
                continue
            index, family, packed, prefixlen, flags = got
            link = links.get(index)
            if link is None or not flags & rtnl.IFA_F_PERMANENT:
                continue  # dynamic addresses (SLAAC, DHCP) belong to the kernel or a daemon
            if family == socket.AF_INET:
                text = socket.inet_ntop(family, packed)
            elif packed[0] == 0xFE and packed[1] & 0xC0 == 0x80:
                continue  # fe80::/10, the kernel's own link-local addresses
            else:
                text = str(ipaddress.IPv6Address(packed))  # the same spelling as the topology's, normalized
            text = f"{text}/{prefixlen}"
            if link["kind"] == "loopback" and text in KERNELS:
                continue  # 127.0.0.1/8 and ::1: every namespace's, the kernel's
            link["addresses"].add(text)
        return links

    def _peers(self, raw: dict[str, Raw]) -> dict[tuple[str, int], tuple[str, rtnl.LinkInfo]]:
        """The other end of every veth among the namespaces read, keyed by (namespace, ifindex): reciprocal
        ifindexes, and (across namespaces) the peer namespace's id as seen from this one, which is what
        IFLA_LINK_NETNSID names. Candidates are found through an index, so this is linear in links."""
        by_pair: dict[tuple[int, int], list[tuple[str, rtnl.LinkInfo]]] = {}
        for ns, links in raw.items():
            for info in links.values():
                if info["kind"] == "veth" and info["link"]:
                    by_pair.setdefault((info["index"], info["link"]), []).append((ns, info))
        found: dict[tuple[str, int], tuple[str, rtnl.LinkInfo]] = {}
        for (index, link), ends in by_pair.items():
            for ns, info in ends:
                if (ns, index) in found:
                    continue
                if info["link_nsid"] is None:
                    other = raw[ns].get(link)
                    if other and other["kind"] == "veth":
                        found[(ns, index)] = (ns, other)
                    continue
                for other_ns, other in by_pair.get((link, index), ()):
                    if other_ns != ns and self._nsid(ns, other_ns) == info["link_nsid"]:
                        found[(ns, index)] = (other_ns, other)
                        found[(other_ns, link)] = (ns, info)
                        break
        return found

    def _nsid(self, ns: str, other: str) -> int | None:
        """The id that namespace `ns` knows namespace `other` by."""
        key = (ns, other)
        if key not in self.ns.nsids:
            fd = self.ns.fd(other)
            assert fd is not None
            reply = self.ns.sock(ns).get(rtnl.RTM_GETNSID, rtnl.nsid_request(fd))
            self.ns.nsids[key] = rtnl.decode_nsid(reply)
        return self.ns.nsids[key]


def _link(info: rtnl.LinkInfo, links: Raw, found: tuple[str, rtnl.LinkInfo] | None) -> Link:
    peer = (found[0], found[1]["name"]) if found else None
    master_info = links.get(info["master"]) if info["master"] else None
    master = master_info["name"] if master_info is not None else None
    owner = owner_from_alias(info["alias"])
    if owner is None and found:
        owner = owner_from_alias(found[1]["alias"])  # a veth pair is one object: either end's mark counts
    loopback = info["kind"] == "loopback"
    return Link(
        name=info["name"],
        kind=info["kind"],
        peer=peer,
        master=master,
        addresses=frozenset(info["addresses"]),
        up=info["up"],
        mtu=info["mtu"],
        mac=None if loopback else info["mac"],
        owner=owner,
    )


def _route(info: rtnl.RouteInfo, names: dict[int, str], owner: str | None = None) -> Route:
    """A route as the State has it, `owner`'s: addresses as text, interfaces by name; the kernel's `dev lo`
    of an IPv6 blackhole, unreachable or prohibit route left out, as IPv4 has none."""
    text = _ipv4 if info["family"] == socket.AF_INET else _ipv6
    hops = info["hops"]
    prefsrc = info["prefsrc"]
    src = text(prefsrc) if prefsrc else None
    to = _prefix(info["family"], info["dst"], info["dst_len"])
    if len(hops) == 1:  # a plain route: its one path is the route's via and dev
        h = hops[0]
        gateway = h["gateway"]
        return Route(to=to, metric=info["metric"], table=info["table"], type=info["type"],
                     via=text(gateway) if gateway else None, dev=names.get(h["ifindex"]), src=src,
                     onlink=h["onlink"], mtu=info["mtu"], owner=owner)
    nexthops = tuple(Nexthop(text(h["gateway"]) if h["gateway"] else None, names.get(h["ifindex"]), h["weight"],
                             h["onlink"]) for h in hops)
    return Route(to=to, metric=info["metric"], table=info["table"], type=info["type"], src=src, mtu=info["mtu"],
                 nexthops=nexthops, owner=owner)


@functools.lru_cache(maxsize=65536)
def _prefix(family: int, dst: bytes | None, dst_len: int) -> str:
    """A route's destination as text: '10.1.0.0/16', '::/0'."""
    if not dst:
        return f"{'0.0.0.0' if family == socket.AF_INET else '::'}/{dst_len}"
    return f"{(_ipv4 if family == socket.AF_INET else _ipv6)(dst)}/{dst_len}"


def _ipv4(packed: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, packed)


@functools.lru_cache(maxsize=65536)
def _ipv6(packed: bytes) -> str:
    return str(ipaddress.IPv6Address(packed))  # the topology's spelling (ipaddress), not inet_ntop's
