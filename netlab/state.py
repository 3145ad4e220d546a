"""One vocabulary for desired and live: the `State` of namespaces and links.

A `State` is the same type whether it was made from a topology file (`model.desired`) or read from the
kernel (`kernel.Kernel.observe`), so a diff is a comparison of two values. Everything here is plain data:
no netlink, no I/O. Values are normalized (addresses as `ipaddress` interfaces, MACs lower-case) so that a
converged system compares equal.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

HOST = "host"
"""The name that stands for the root network namespace (the one netlab runs in)."""

LOOPBACK = "lo"
MARK_PREFIX = "netlab:"


def mark(topology: str) -> str:
    """The ownership mark netlab writes into IFLA_IFALIAS of every link it creates (and of `lo` in every
    namespace it creates)."""
    return MARK_PREFIX + topology


def owner_from_alias(alias: str | None) -> str | None:
    """The topology that a link's alias marks it as owned by, or None for an unmarked link."""
    if alias and alias.startswith(MARK_PREFIX):
        return alias[len(MARK_PREFIX):]
    return None


@dataclass(frozen=True)
class Link:
    """A network interface in one namespace.

    `addresses` is None where netlab does not manage addresses (loopback). `mtu` and `mac` are None in a
    desired state when the topology leaves them to the kernel. `peer` is (namespace, name) for a veth, or
    None for a veth whose other end is in a namespace that was not read. `owner` is the topology whose mark
    the link carries (for a veth: either end's mark; the pair is one object).
    """

    name: str
    kind: str
    peer: tuple[str, str] | None = None
    master: str | None = None
    addresses: frozenset[str] | None = frozenset()
    up: bool = True
    mtu: int | None = None
    mac: str | None = None
    owner: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.peer is not None:
            d["peer"] = "/".join(self.peer)
        if self.master is not None:
            d["master"] = self.master
        if self.addresses is not None:
            d["addresses"] = sorted_addresses(self.addresses)
        d["up"] = self.up
        if self.mtu is not None:
            d["mtu"] = self.mtu
        if self.mac is not None:
            d["mac"] = self.mac
        if self.owner is not None:
            d["owner"] = self.owner
        return d


@dataclass(frozen=True)
class Namespace:
    """A network namespace: `host` for the root one. `owner` is the topology marked on its `lo`."""

    name: str
    owner: str | None = None
    links: Mapping[str, Link] = field(default_factory=dict)


@dataclass(frozen=True)
class State:
    namespaces: Mapping[str, Namespace] = field(default_factory=dict)

    def link(self, namespace: str, name: str) -> Link | None:
        ns = self.namespaces.get(namespace)
        return ns.links.get(name) if ns else None

    def to_dict(self) -> dict[str, Any]:
        return {
            ns.name: {
                **({"owner": ns.owner} if ns.owner else {}),
                "links": {name: link.to_dict() for name, link in sorted(ns.links.items())},
            }
            for ns in sorted(self.namespaces.values(), key=lambda n: (n.name != HOST, n.name))
        }


def state_from_dict(data: dict[str, Any]) -> State:
    """The inverse of State.to_dict(): for saved snapshots and golden test files."""
    return State({ns: Namespace(ns, body.get("owner"), {name: link_from_dict(name, d)
                                                        for name, d in (body.get("links") or {}).items()})
                  for ns, body in data.items()})


def link_from_dict(name: str, d: dict[str, Any]) -> Link:
    """The inverse of Link.to_dict()."""
    return Link(
        name=name,
        kind=d["kind"],
        peer=tuple(d["peer"].split("/", 1)) if d.get("peer") else None,
        master=d.get("master"),
        addresses=None if d["kind"] == "loopback" and "addresses" not in d else frozenset(d.get("addresses", ())),
        up=d.get("up", True),
        mtu=d.get("mtu"),
        mac=d.get("mac"),
        owner=d.get("owner"),
    )


def sorted_addresses(addresses: Collection[str]) -> list[str]:
    """Addresses in a stable order: IPv4 before IPv6, then numerically."""
    if len(addresses) < 2:
        return list(addresses)
    import ipaddress

    def key(a: str) -> tuple[int, ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        iface = ipaddress.ip_interface(a)
        return iface.version, iface

    return sorted(addresses, key=key)


def without_links(state: State, gone: set[tuple[str, str]]) -> State:
    """`state` less the links named in `gone`; masters that pointed at a removed link become None."""
    namespaces: dict[str, Namespace] = {}
    for ns in state.namespaces.values():
        links: dict[str, Link] = {}
        for name, link in ns.links.items():
            if (ns.name, name) in gone:
                continue
            if link.master is not None and (ns.name, link.master) in gone:
                link = replace(link, master=None)
            links[name] = link
        namespaces[ns.name] = replace(ns, links=links)
    return State(namespaces)


def differences(before: State, after: State) -> list[str]:
    """Human-readable differences between two states, over names, kinds, peers, masters, addresses, MTU,
    MAC, up/down and marks. Empty when they are equal. Used to confirm a rollback restored the kernel."""
    out: list[str] = []
    for name in sorted(set(before.namespaces) | set(after.namespaces)):
        b, a = before.namespaces.get(name), after.namespaces.get(name)
        if b is None:
            out.append(f"namespace {name} exists (it did not before)")
            continue
        if a is None:
            out.append(f"namespace {name} is missing (it existed before)")
            continue
        if b.owner != a.owner:
            out.append(f"namespace {name}: owner {b.owner!r} -> {a.owner!r}")
        for lname in sorted(set(b.links) | set(a.links)):
            bl, al = b.links.get(lname), a.links.get(lname)
            if bl is None:
                out.append(f"link {name}/{lname} exists (it did not before)")
            elif al is None:
                out.append(f"link {name}/{lname} is missing (it existed before)")
            elif bl != al:
                for f in ("kind", "peer", "master", "addresses", "up", "mtu", "mac", "owner"):
                    if getattr(bl, f) != getattr(al, f):
                        out.append(f"link {name}/{lname}: {f} {_show(getattr(bl, f))} -> {_show(getattr(al, f))}")
    return out


def _show(value: object) -> str:
    if isinstance(value, frozenset):
        return "[" + ", ".join(sorted_addresses(value)) + "]"
    if isinstance(value, tuple):
        return "/".join(value)
    return repr(value)
