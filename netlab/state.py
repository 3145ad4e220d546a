"""One vocabulary for desired and live: the `State` of namespaces and links.

A `State` is the same type whether it was made from a topology file (`model.desired`) or read from the
kernel (`kernel.Kernel.observe`), so a diff is a comparison of two values. Everything here is plain data:
no netlink, no I/O. Values are normalized (addresses as `ipaddress` interfaces, MACs lower-case) so that a
converged system compares equal.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

HOST = "host"
"""The name that stands for the root network namespace (the one netlab runs in)."""

LOOPBACK = "lo"
MARK_PREFIX = "netlab:"
MAIN_TABLE = 254
QDISC_HANDLES = {0x6E6C: ("tbf", None), 0x6E6D: ("netem", None), 0x6E6E: ("netem", "normal"),
                 0x6E6F: ("netem", "pareto"), 0x6E70: ("netem", "paretonormal")}
"""The handles (their major number; a root qdisc's minor is 0) that mark a root qdisc as netlab's, by
what the qdisc is: its kind and, for netem, the delay distribution table it was given, which the kernel
never reports back. 0x6e6c is 'nl'. The kernel numbers qdiscs made without a handle from 0x8000 up, so
these are never its own; a kernel default root qdisc has handle 0. docs/design.md has the reasons."""
ROUTE_PROTOCOL = 201
"""The rtm_protocol that marks the routes netlab makes (a route has no alias). No routing daemon or kernel
component known to us uses 201: the kernel's own are 0-4 and 8-18, babel 42, openr 99, FRR's 186-198,
Calico's 80. docs/design.md has the rt_protos.d entry that makes `ip route` print `proto netlab`."""


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
    the link carries (for a veth: either end's mark; the pair is one object). `parent` is the link a
    vlan, macvlan, ipvlan or vxlan sits on, (namespace, name); None where it has none or it is in a
    namespace that was not read. `options` are the kind's own settings (a vlan's id, a macvlan's mode),
    as (name, value) pairs sorted by name: in a desired state only those the topology decides (declared,
    or a default netlab picks), read back from the kernel all that the kind reads. `vlans` are a bridge
    port's VLANs (a bridge's own, for the bridge), sorted by id; None where they are not managed (not
    declared, or not read).
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
    parent: tuple[str, str] | None = None
    options: tuple[tuple[str, Any], ...] = ()
    vlans: tuple[Vlan, ...] | None = None
    qdisc: Qdisc | None = None

    @property
    def opts(self) -> dict[str, Any]:
        """The kind's own options, as a dict."""
        return dict(self.options)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.peer is not None:
            d["peer"] = "/".join(self.peer)
        if self.parent is not None:
            d["parent"] = "/".join(self.parent)
        opts = {name: list(value) if isinstance(value, tuple) else value for name, value in self.options
                if value is not None}
        if opts:
            d["options"] = opts
        if self.master is not None:
            d["master"] = self.master
        if self.vlans is not None:
            d["vlans"] = [v.text for v in self.vlans]
        if self.addresses is not None:
            d["addresses"] = sorted_addresses(self.addresses)
        d["up"] = self.up
        if self.mtu is not None:
            d["mtu"] = self.mtu
        if self.mac is not None:
            d["mac"] = self.mac
        if self.owner is not None:
            d["owner"] = self.owner
        if self.qdisc is not None:
            d["qdisc"] = self.qdisc.to_dict()
        return d


class Qdisc(NamedTuple):
    """A link's root qdisc: its kind ("netem", "tbf", or whatever somebody else put there), its handle,
    and (netlab's only) its parameters as (name, value) pairs in a fixed order, in the kernel's units:
    times in ns, probabilities and correlations as fractions of 2^32 - 1, rates in bytes per second,
    sizes in bytes, netem's limit in packets. netlab/impair.py makes, reads and shows them."""

    kind: str
    handle: int
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def ours(self) -> bool:
        """Whether it carries one of netlab's handles (QDISC_HANDLES) for its kind."""
        made = QDISC_HANDLES.get(self.handle >> 16)
        return made is not None and made[0] == self.kind and not self.handle & 0xFFFF

    @property
    def distribution(self) -> str | None:
        made = QDISC_HANDLES.get(self.handle >> 16)
        return made[1] if made is not None else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "handle": f"{self.handle >> 16:x}:"}
        d.update((k, list(v) if isinstance(v, tuple) else v) for k, v in self.params)
        return d


def qdisc_from_dict(d: dict[str, Any]) -> Qdisc:
    """The inverse of Qdisc.to_dict()."""
    params = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k not in ("kind", "handle"))
    return Qdisc(d["kind"], int(d["handle"].rstrip(":"), 16) << 16, params)


class Vlan(NamedTuple):
    """One VLAN of a bridge port (or of the bridge itself): its id, whether it is the port's pvid (the
    VLAN untagged frames that come in join), and whether it leaves the port untagged."""

    vid: int
    pvid: bool = False
    untagged: bool = False

    @property
    def text(self) -> str:
        """'10', '10 pvid untagged': as a plan and a saved state write it."""
        return " ".join([str(self.vid)] + ["pvid"] * self.pvid + ["untagged"] * self.untagged)

    @classmethod
    def parse(cls, text: str | int) -> Vlan:
        words = str(text).split()
        return cls(int(words[0]), "pvid" in words, "untagged" in words)


RouteKey = tuple[int, str, int]
"""What identifies a route to the kernel, in both families: (table, destination prefix, metric)."""


class Nexthop(NamedTuple):
    """One path of a multipath route."""

    via: str | None = None
    dev: str | None = None
    weight: int = 1
    onlink: bool = False

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: v for k, v in (("via", self.via), ("dev", self.dev)) if v is not None}
        if self.weight != 1:
            d["weight"] = self.weight
        if self.onlink:
            d["onlink"] = True
        return d


class Route(NamedTuple):
    """A route, normalized as the kernel reads it back: `to` a network ("0.0.0.0/0", "::/0"), the metric
    the kernel gives it (IPv6: 1024 when none is asked for), `dev` the interface the kernel chose (a
    topology's gateway routes get theirs from the model) and None for blackhole, unreachable and
    prohibit. `owner` is the topology whose mark (ROUTE_PROTOCOL, and in `host` a link of that topology)
    it carries, or None for a route somebody else made.

    A NamedTuple, not a frozen dataclass: a chain of 300 routers holds 89,102 of them, each built when the
    file is loaded and again when the kernel is read, and compared with its twin by every plan (a tuple
    is built and compared several times faster). `_replace` makes a changed copy."""

    to: str
    metric: int = 0
    table: int = MAIN_TABLE
    type: str = "unicast"
    via: str | None = None
    dev: str | None = None
    src: str | None = None
    onlink: bool = False
    mtu: int | None = None
    nexthops: tuple[Nexthop, ...] = ()
    owner: str | None = None

    @property
    def key(self) -> RouteKey:
        return self.table, self.to, self.metric

    @property
    def family(self) -> int:
        return 6 if ":" in self.to else 4

    @property
    def label(self) -> str:
        """How the route is named in a plan: its destination, and its metric and table when they are not
        the kernel's defaults."""
        text = "default" if self.to == "0.0.0.0/0" else self.to
        if self.metric != (1024 if self.family == 6 else 0):
            text += f" metric {self.metric}"
        if self.table != MAIN_TABLE:
            text += f" table {self.table}"
        return text

    def devices(self) -> set[str]:
        """The interfaces the route goes through: the kernel removes it when one of them goes."""
        devs = {hop.dev for hop in self.nexthops if hop.dev}
        if self.dev:
            devs.add(self.dev)
        return devs

    def summary(self) -> str:
        """What the route does, as `ip route` says it: 'via 10.0.1.1 dev eth0 metric 100'."""
        parts = [] if self.type == "unicast" else [self.type]
        if self.via:
            parts.append(f"via {self.via}")
        if self.dev:
            parts.append(f"dev {self.dev}")
        for hop in self.nexthops:
            parts.append("nexthop " + " ".join(f"{k} {v}" for k, v in hop.to_dict().items()))
        if self.src:
            parts.append(f"src {self.src}")
        if self.onlink:
            parts.append("onlink")
        if self.mtu is not None:
            parts.append(f"mtu {self.mtu}")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"to": self.to, "metric": self.metric}
        if self.table != MAIN_TABLE:
            d["table"] = self.table
        if self.type != "unicast":
            d["type"] = self.type
        for name in ("via", "dev", "src", "mtu"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        if self.onlink:
            d["onlink"] = True
        if self.nexthops:
            d["nexthops"] = [hop.to_dict() for hop in self.nexthops]
        if self.owner is not None:
            d["owner"] = self.owner
        return d


def route_from_dict(d: dict[str, Any]) -> Route:
    """The inverse of Route.to_dict()."""
    return Route(to=d["to"], metric=d.get("metric", 1024 if ":" in d["to"] else 0), table=d.get("table", MAIN_TABLE),
                 type=d.get("type", "unicast"), via=d.get("via"), dev=d.get("dev"), src=d.get("src"),
                 onlink=d.get("onlink", False), mtu=d.get("mtu"),
                 nexthops=tuple(Nexthop(h.get("via"), h.get("dev"), h.get("weight", 1), h.get("onlink", False))
                                for h in d.get("nexthops", ())),
                 owner=d.get("owner"))


def sysctl_name(path: str) -> str:
    """A sysctl as people write it: 'net.ipv4.ip_forward'; in the slash form where a part has a dot (an
    interface called eth0.10): 'net/ipv4/conf/eth0.10/rp_filter'."""
    parts = path.split("/")
    return path if any("." in p for p in parts) else ".".join(parts)


@dataclass(frozen=True)
class Namespace:
    """A network namespace: `host` for the root one. `owner` is the topology marked on its `lo`.

    `routes` are the routes netlab compares (not the kernel's own: connected subnets, local and multicast
    tables), by key; `sysctls` the values of the sysctls a topology declares there (and of those that
    writing them changes), by path under /proc/sys ('net/ipv4/ip_forward'), as the kernel prints them
    with runs of whitespace made one space."""

    name: str
    owner: str | None = None
    links: Mapping[str, Link] = field(default_factory=dict)
    routes: Mapping[RouteKey, Route] = field(default_factory=dict)
    sysctls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class State:
    namespaces: Mapping[str, Namespace] = field(default_factory=dict)

    def link(self, namespace: str, name: str) -> Link | None:
        ns = self.namespaces.get(namespace)
        return ns.links.get(name) if ns else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for ns in sorted(self.namespaces.values(), key=lambda n: (n.name != HOST, n.name)):
            body: dict[str, Any] = {"owner": ns.owner} if ns.owner else {}
            body["links"] = {name: link.to_dict() for name, link in sorted(ns.links.items())}
            if ns.routes:
                body["routes"] = [route.to_dict() for _, route in sorted(ns.routes.items())]
            if ns.sysctls:
                body["sysctls"] = {sysctl_name(k): v for k, v in sorted(ns.sysctls.items())}
            out[ns.name] = body
        return out


def state_from_dict(data: dict[str, Any]) -> State:
    """The inverse of State.to_dict(): for saved snapshots and golden test files."""
    result = {}
    for ns, body in data.items():
        routes = [route_from_dict(d) for d in body.get("routes") or ()]
        sysctls = {k.replace(".", "/") if "/" not in k else k: str(v) for k, v in (body.get("sysctls") or {}).items()}
        result[ns] = Namespace(ns, body.get("owner"), {name: link_from_dict(name, d)
                                                      for name, d in (body.get("links") or {}).items()},
                               {r.key: r for r in routes}, sysctls)
    return State(result)


def options(values: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A kind's options as a Link holds them: sorted (name, value) pairs, lists made tuples. None is a
    value (a vxlan without a remote); an option a topology leaves to the kernel is not there at all."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in values.items()))


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
        parent=tuple(d["parent"].split("/", 1)) if d.get("parent") else None,
        options=options(d.get("options", {})),
        vlans=tuple(Vlan.parse(v) for v in d["vlans"]) if d.get("vlans") is not None else None,
        qdisc=qdisc_from_dict(d["qdisc"]) if d.get("qdisc") else None,
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
                for f in ("kind", "peer", "parent", "master", "vlans", "addresses", "up", "mtu", "mac", "owner",
                          "options", "qdisc"):
                    if getattr(bl, f) != getattr(al, f):
                        out.append(f"link {name}/{lname}: {f} {_show(getattr(bl, f))} -> {_show(getattr(al, f))}")
        # Routes the topology made; a user's route through a link that a rollback rebuilds is the kernel's
        # loss (it deletes routes with their link), not netlab's to restore.
        b_routes = {k: r for k, r in b.routes.items() if r.owner is not None}
        a_routes = {k: r for k, r in a.routes.items() if r.owner is not None}
        for key in sorted(set(b_routes) | set(a_routes)):
            br, ar = b_routes.get(key), a_routes.get(key)
            if br is None:
                assert ar is not None
                out.append(f"route {name} {ar.label} exists (it did not before)")
            elif ar is None:
                out.append(f"route {name} {br.label} is missing (it existed before)")
            elif br != ar:
                out.append(f"route {name} {br.label}: {br.summary()} -> {ar.summary()}")
        for path in sorted(set(b.sysctls) | set(a.sysctls)):
            if b.sysctls.get(path) != a.sysctls.get(path):
                out.append(f"sysctl {name} {sysctl_name(path)}: {b.sysctls.get(path)} -> {a.sysctls.get(path)}")
    return out


def _show(value: object) -> str:
    if isinstance(value, Qdisc):
        from .impair import summary

        return summary(value)
    if isinstance(value, frozenset):
        return "[" + ", ".join(sorted_addresses(value)) + "]"
    if isinstance(value, tuple) and value and all(isinstance(v, Vlan) for v in value):
        return "[" + ", ".join(v.text for v in value) + "]"
    if isinstance(value, tuple) and all(isinstance(v, tuple) for v in value):
        return ", ".join(f"{k} {v}" for k, v in value) or "none"
    if isinstance(value, tuple):
        return "/".join(value)
    return repr(value)
