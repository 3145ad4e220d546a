"""Routes in a topology: the schema of a namespace's `routes:`, the rules that span fields (a gateway must
be reachable, keys must be unique, the root namespace only through the topology's links), and the Routes
that `model.desired()` puts in the desired State, normalized as the kernel reads them back.

Route identity is the kernel's: (table, destination, metric). An IPv4 route's metric is 0 unless given;
an IPv6 route's is 1024 (the kernel's default, which it also uses for metric 0). A gateway route gets
the interface the kernel would choose (the one whose subnet holds the gateway), so that a plan knows
which link it goes through: the kernel deletes a route with its link, or when its link goes down.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any, Literal

from pydantic import Field

from .errors import Problem
from .schema import Strict
from .state import HOST, LOOPBACK, MAIN_TABLE, Nexthop, Route, RouteKey

Path = tuple[str | int, ...]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Net = ipaddress.IPv4Network | ipaddress.IPv6Network

TYPES = ("unicast", "blackhole", "unreachable", "prohibit")
TABLES = {"main": MAIN_TABLE, "default": 253}
KERNEL_METRIC = {4: 0, 6: 256}
"""The metric of the routes the kernel makes for an address's subnet."""


class NexthopSpec(Strict):
    via: str | None = None
    dev: str | None = None
    weight: int = Field(default=1, ge=1, le=256)
    onlink: bool = False


class RouteSpec(Strict):
    to: str | list[str]
    via: str | None = None
    dev: str | None = None
    metric: int | None = Field(default=None, ge=0, le=2**32 - 1)
    src: str | None = None
    type: Literal["unicast", "blackhole", "unreachable", "prohibit"] = "unicast"
    onlink: bool = False
    table: int | Literal["main", "default"] = "main"
    mtu: int | None = Field(default=None, ge=68, le=65535)
    nexthops: list[NexthopSpec] | None = None


@functools.cache
def _address(text: str) -> IP | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@functools.cache
def _network(text: str) -> Net | str:
    """The network `text` names, or why it names none."""
    if text in ("default", "default6"):
        return ipaddress.ip_network("::/0" if text == "default6" else "0.0.0.0/0")
    try:
        return ipaddress.ip_network(text)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.ip_network(text, strict=False)
            return f"{text} has host bits set: the network is {fixed}"
        return f"{text!r} is not a prefix like 10.0.0.0/24, 2001:db8::/64 or default"


@functools.cache
def _text(text: str) -> str:
    """The network `text` names, as the State spells it ('10.1.0.0/16', '::/0'); `text` is valid."""
    return str(_network(text))


class _Namespace:
    """What the route checks need to know of a namespace: its addresses by interface and its subnets."""

    def __init__(self, name: str, spec: Any):
        self.name = name
        self.interfaces = set(spec.interfaces) | ({LOOPBACK} if name != HOST else set())
        self.down = {n for n, s in spec.interfaces.items() if not s.up}
        self.addresses: dict[IP, str] = {}
        self.subnets: list[tuple[Net, str]] = []
        for ifname, ispec in spec.interfaces.items():
            for text in ispec.addresses:
                try:
                    iface = ipaddress.ip_interface(text)
                except ValueError:
                    continue  # reported by the address checks
                self.addresses[iface.ip] = ifname
                self.subnets.append((iface.network, ifname))
        self.on_link: list[tuple[Net, str]] = []  # prefixes declared as reachable through a device


def routes(namespace: str, spec: Any, problems: list[Problem], owner: str | None = None) -> dict[RouteKey, Route]:
    """The namespace's routes, checked (problems are added to `problems`), by key.

    An entry with many destinations (`to: [...]`) is checked once per family for what its destinations
    share (table, metric, type, gateway, device, source) and once per destination for the rest; the
    problems of the shared part are reported for each destination, as if each were checked alone."""
    ns = _Namespace(namespace, spec)
    for rspec in spec.routes:  # dev-only routes make their prefix reachable: find them first
        if rspec.type == "unicast" and rspec.dev and not rspec.via and not rspec.nexthops:
            for to in rspec.to if isinstance(rspec.to, list) else [rspec.to]:
                net = _network(to)
                if not isinstance(net, str):
                    ns.on_link.append((net, rspec.dev))
    out: dict[RouteKey, Route] = {}
    first: dict[RouteKey, Path] = {}
    for i, rspec in enumerate(spec.routes):
        at: Path = ("namespaces", namespace, "routes", i)
        many = isinstance(rspec.to, list)
        tos = rspec.to if isinstance(rspec.to, list) else [rspec.to]
        if many and not tos:
            problems.append(Problem(at + ("to",), "'to' lists no destination"))
        shared: dict[int, _Shared] = {}
        for j, to in enumerate(tos):
            where = at + (("to", j) if many else ())
            route = _route(ns, rspec, to, at, where, problems, owner, shared)
            if route is None:
                continue
            key = route.key
            if key in first:
                also = " (IPv6 would merge them into one multipath route: use nexthops:)" if route.family == 6 else ""
                problems.append(Problem(where, f"a route to {route.label} is already declared at "
                                               f"{_shown(first[key])}: the kernel knows a route by its table, "
                                               f"destination and metric{also}"))
                continue
            first[key] = where
            out[key] = route
    return out


def _shown(path: Path) -> str:
    return ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path[2:]).replace(".[", "[")


Recorded = tuple[str | None, str, Problem | None]
"""A problem of an entry's shared part: (field, message, None), reported at the entry's field, or at the
destination when the field is None; or (None, "", problem), reported as it is (a nexthop's)."""


class _Shared:
    """What an entry's destinations of one family share, checked once: the problems found (reported again
    for each destination) and the route's fields."""

    __slots__ = ("dev", "hops", "metric", "recorded", "src", "table", "via")

    def __init__(self, recorded: list[Recorded], table: int, metric: int, src: str | None, via: str | None,
                 dev: str | None, hops: tuple[Nexthop, ...]):
        self.recorded, self.table, self.metric, self.src = recorded, table, metric, src
        self.via, self.dev, self.hops = via, dev, hops


def _route(ns: _Namespace, spec: RouteSpec, to: str, at: Path, where: Path, problems: list[Problem],
           owner: str | None, shared: dict[int, _Shared]) -> Route | None:
    text = "default6" if to == "default" and _family(spec, to) == 6 else to
    net = _network(text)
    if isinstance(net, str):
        problems.append(Problem(where if where != at else at + ("to",), net))
        return None
    family = net.version
    common = shared.get(family)
    if common is None:
        common = shared[family] = _common(ns, spec, family, at, where != at)
    for field, message, fixed in common.recorded:
        problems.append(fixed if fixed is not None else Problem(where if field is None else at + (field,), message))
    failed = bool(common.recorded)
    metric, table, via = common.metric, common.table, common.via
    if via is None and not common.hops and spec.type == "unicast" and table == MAIN_TABLE \
            and metric == KERNEL_METRIC[family] and any(subnet == net for subnet, _ in ns.subnets):
        problems.append(Problem(where if where != at else at + ("to",),
                                f"the kernel makes the route to {net} itself, from the address on that subnet "
                                "(give a metric to add another)"))
        return None
    if failed:
        return None
    return Route(to=_text(text), metric=metric, table=table, type=spec.type, via=via, dev=common.dev,
                 src=common.src, onlink=spec.onlink, mtu=spec.mtu, nexthops=common.hops, owner=owner)


def _common(ns: _Namespace, spec: RouteSpec, family: int, at: Path, many: bool) -> _Shared:
    """The checks and fields of the entry at `at` that do not depend on its destination, only on its
    family. `many`: the entry lists its destinations (a problem about them is reported at each one)."""
    recorded: list[Recorded] = []

    def problem(field: str | None, message: str) -> None:
        recorded.append((field, message, None))

    table = TABLES[spec.table] if isinstance(spec.table, str) else spec.table
    if table in (0, 255):
        problem("table", f"table {table} is the kernel's ({'unspecified' if table == 0 else 'local'}); "
                         "use main or a number from 1 to 252 or above 255")
    metric = spec.metric if spec.metric is not None else 0
    if family == 6 and metric == 0:
        metric = 1024
    if spec.mtu is not None and family == 6 and spec.mtu < 1280:
        problem("mtu", f"IPv6 needs an MTU of at least 1280 (mtu is {spec.mtu})")
    if spec.type != "unicast":
        for field in ("via", "dev", "src", "nexthops"):
            if getattr(spec, field):
                problem(field, f"a {spec.type} route has no {field}: it drops what it matches")
        if spec.onlink:
            problem("onlink", f"a {spec.type} route has no gateway to be on-link")
        if ns.name == HOST:
            problem("type", f"a {spec.type} route in the root namespace goes through no link of the topology, "
                            "so netlab could not tell it from the host's own: declare it in a namespace")
    elif spec.nexthops is not None:
        if spec.via or spec.dev or spec.onlink:
            problem("nexthops", "a multipath route gives via, dev and onlink in each of its nexthops")
        if len(spec.nexthops) < 2:
            problem("nexthops", "a multipath route has at least two nexthops (one is a plain route: via/dev)")
    elif not spec.via and not spec.dev:
        problem(None if many else "to", "a route needs a gateway (via), a device (dev), nexthops, or a "
                                        "type (blackhole, unreachable, prohibit)")
    src = None
    if spec.src is not None:
        ip = _address(spec.src)
        if ip is None or ip.version != family:
            problem("src", f"src {spec.src!r} is not an IPv{family} address")
        elif ip not in ns.addresses:
            problem("src", f"src {spec.src} is not an address of namespace {ns.name!r} (the kernel takes as "
                           "source only an address the namespace has)")
        else:
            src = str(ip)
    dev = via = None
    hops: list[Nexthop] = []
    if spec.type == "unicast" and spec.nexthops is None:
        resolved = _hop(ns, family, spec.via, spec.dev, spec.onlink, problem)
        if resolved is not None:
            via, dev = resolved
    elif spec.nexthops:
        for k, hop in enumerate(spec.nexthops):
            hat = at + ("nexthops", k)

            def hop_problem(field: str | None, message: str, hat: Path = hat) -> None:
                recorded.append((None, "", Problem(hat if field is None else hat + (field,), message)))

            if family == 6 and not hop.via:
                hop_problem(None, "an IPv6 multipath route's nexthops each need a gateway (via)")
                continue
            resolved = _hop(ns, family, hop.via, hop.dev, hop.onlink, hop_problem)
            if resolved is not None:
                hops.append(Nexthop(resolved[0], resolved[1], hop.weight, hop.onlink))
        if len(set(hops)) != len(hops):
            problem("nexthops", "a nexthop is listed twice")
    if ns.name == HOST:
        devs = {dev} if dev else {h.dev for h in hops}
        for d in sorted(d for d in devs if d is not None and d not in ns.interfaces):
            problem("dev" if spec.dev else None, f"in the root namespace a route must go through an interface "
                                                 f"the topology declares there ({d} is the host's): netlab tells "
                                                 "its routes from the host's by their links")
    return _Shared(recorded, table, metric, src, via, dev, tuple(hops))


def _family(spec: RouteSpec, to: str) -> int:
    """The family of a route: its destination's; for `default`, its gateway's (IPv4 if it has none)."""
    if to != "default":
        return 6 if ":" in to or to == "default6" else 4
    for text in [spec.via, spec.src] + [h.via for h in spec.nexthops or ()]:
        ip = _address(text) if text else None
        if ip is not None:
            return ip.version
    return 4


def _hop(ns: _Namespace, family: int, via_text: str | None, dev: str | None, onlink: bool,
         problem: Any) -> tuple[str | None, str | None] | None:
    """(gateway, device) of one path, the device found from the gateway's subnet when not given; None if
    the path is not valid (the problem is reported)."""
    if dev is not None:
        if "/" in dev:
            problem("dev", f"dev {dev!r} names an interface in another namespace: a route's dev is an "
                           f"interface of namespace {ns.name!r}")
            return None
        if dev not in ns.interfaces:
            problem("dev", f"dev {dev!r} is not an interface of namespace {ns.name!r} (declared: "
                           f"{', '.join(sorted(ns.interfaces)) or 'none'})")
            return None
        if dev in ns.down:
            problem("dev", f"dev {dev} is declared down: the kernel keeps no route through a link that is down")
            return None
    if via_text is None:
        if onlink:
            problem("onlink", "onlink says the gateway is on the link: it needs via and dev")
            return None
        return None, dev
    via = _address(via_text)
    if via is None:
        problem("via", f"via {via_text!r} is not an IP address")
        return None
    if via.version != family:
        problem("via", f"via {via} is an IPv{via.version} gateway for an IPv{family} route")
        return None
    if via.is_multicast or via.is_unspecified:
        problem("via", f"via {via} is not a unicast address")
        return None
    if via in ns.addresses:
        problem("via", f"via {via} is namespace {ns.name!r}'s own address ({ns.addresses[via]}), not a gateway")
        return None
    if onlink:
        if dev is None:
            problem("onlink", "onlink says the gateway is on the link: it needs dev")
            return None
        return str(via), dev
    if via.version == 6 and via.is_link_local:
        if dev is None:
            problem("via", f"via {via} is a link-local address: it needs the dev it is reached through")
            return None
        return str(via), dev
    found = sorted({ifname for net, ifname in ns.subnets + ns.on_link if via in net})
    if dev is not None:
        if dev in found:
            return str(via), dev
        problem("via", f"gateway {via} is not reachable through {dev}: no address or on-link route of "
                       f"{dev} covers it{_found(found)} (or say onlink: true if it is on the link anyway)")
        return None
    if not found:
        problem("via", f"gateway {via} is not reachable: it is on no subnet of namespace {ns.name}'s "
                       "addresses and on no on-link (dev-only) route; add an address on its subnet, or give "
                       "dev with onlink: true")
        return None
    if len(found) > 1:
        problem("via", f"gateway {via} is reachable through {', '.join(found)}: say which with dev")
        return None
    if found[0] in ns.down:
        problem("via", f"gateway {via} is reached through {found[0]}, which is declared down: the kernel keeps "
                       "no route through a link that is down")
        return None
    return str(via), found[0]


def _found(found: list[str]) -> str:
    return f" (it is on the subnet of {', '.join(found)})" if found else ""
