"""Reading the kernel: the live State of the namespaces a topology concerns, from one link dump and one
address dump per namespace. Read-only means read-only: reading never creates a namespace or a file.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Set

from ..netlink import rtnl
from ..state import HOST, LOOPBACK, Link, Namespace, State, owner_from_alias
from .namespaces import Namespaces

Raw = dict[int, rtnl.LinkInfo]  # a namespace's links by ifindex, as rtnl.decode_link gives them


class Reader:
    def __init__(self, namespaces: Namespaces):
        self.ns = namespaces

    def observe(self, topology: str, namespaces: Set[str], host_links: Set[str] = frozenset()) -> State:
        """The live State of `namespaces` (those that exist), of every namespace marked as `topology`'s,
        and, in the root namespace, of the links named in `host_links` or marked as `topology`'s, with the
        user's links that depend on them: ports of their bridges, and veths whose other end is in a
        namespace read here (a deleted namespace would take them with it)."""
        wanted = set(namespaces) - {HOST}
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
            for info in dumped.values():
                link = _link(info, dumped, peers.get((ns, info["index"])))
                links[link.name] = link
            if ns == HOST:
                ours = {n: lk for n, lk in links.items() if lk.owner == topology or n in host_links}
                links = {n: lk for n, lk in links.items() if n in ours or (
                         lk.master in ours and ours[lk.master].kind == "bridge") or (
                         lk.peer is not None and lk.peer[0] != HOST)}
            owner = None if ns == HOST else links.get(LOOPBACK, Link(LOOPBACK, "loopback")).owner
            result[ns] = Namespace(ns, owner, links)
        return State(result)

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
            link["addresses"].add(f"{text}/{prefixlen}")
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
        addresses=None if loopback else frozenset(info["addresses"]),
        up=info["up"],
        mtu=info["mtu"],
        mac=None if loopback else info["mac"],
        owner=owner,
    )
