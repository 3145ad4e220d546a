"""The benchmark's topologies, described once and rendered for each contender: a netlab YAML file, a
shell script of one `ip` per command, an `ip -batch` script, and the operation list of the floor.

Two shapes, each of N namespaces:
- star: one bridge in the root namespace; each namespace has a veth `eth0` whose other end is a port of
  the bridge; one IPv4 address per namespace.
- chain: each namespace has a bridge `br0` with an address; a veth joins namespace i to namespace i+1
  (`right` in i, `left` in i+1), both ends ports of their namespace's bridge.

Every contender does the same kernel operations in the same order as netlab's plan: namespaces, bridges,
veths (each created with its peer already in its namespace), masters, addresses, then links up with
bridges last (so that a bridge starts forwarding once its ports are wired).
"""

from __future__ import annotations

from dataclasses import dataclass, field

HOST = "host"


@dataclass
class Topology:
    name: str
    namespaces: list[str] = field(default_factory=list)
    bridges: list[tuple[str, str]] = field(default_factory=list)  # (namespace, name)
    veths: list[tuple[str, str, str, str]] = field(default_factory=list)  # (ns, name, peer ns, peer name)
    masters: list[tuple[str, str, str]] = field(default_factory=list)  # (ns, port, bridge)
    addresses: list[tuple[str, str, str]] = field(default_factory=list)  # (ns, link, address)

    def ups(self) -> list[tuple[str, str]]:
        """Every link to bring up, in netlab's order: lo first in each namespace, bridges last."""
        links = [(ns, "lo") for ns in self.namespaces]
        links += [(ns, name) for ns, name, _, _ in self.veths] + [(ns, name) for _, _, ns, name in self.veths]
        return links + list(self.bridges)


def _address(i: int) -> str:
    x = i + 1
    return f"10.{x >> 16 & 255}.{x >> 8 & 255}.{x & 255}/8"


def star(n: int, p: str) -> Topology:
    t = Topology(f"bench-{p}", [f"{p}n{i}" for i in range(n)], [(HOST, f"{p}br")])
    for i, ns in enumerate(t.namespaces):
        t.veths.append((HOST, f"{p}h{i}", ns, "eth0"))
        t.masters.append((HOST, f"{p}h{i}", f"{p}br"))
        t.addresses.append((ns, "eth0", _address(i)))
    return t


def chain(n: int, p: str) -> Topology:
    t = Topology(f"bench-{p}", [f"{p}n{i}" for i in range(n)])
    for i, ns in enumerate(t.namespaces):
        t.bridges.append((ns, "br0"))
        t.addresses.append((ns, "br0", _address(i)))
        if i + 1 < n:
            t.veths.append((ns, "right", t.namespaces[i + 1], "left"))
            t.masters.append((ns, "right", "br0"))
            t.masters.append((t.namespaces[i + 1], "left", "br0"))
    return t


SHAPES = {"star": star, "chain": chain}


def netlab_yaml(t: Topology) -> str:
    per_ns: dict[str, dict[str, dict]] = {ns: {} for ns in [HOST] + t.namespaces}
    for ns, name in t.bridges:
        per_ns[ns][name] = {"kind": "bridge"}
    for ns, name, pns, pname in t.veths:
        per_ns[ns][name] = {"kind": "veth", "peer": f"{pns}/{pname}"}
        per_ns[pns].setdefault(pname, {})
    for ns, port, bridge in t.masters:
        per_ns[ns].setdefault(port, {})["master"] = bridge
    for ns, link, address in t.addresses:
        per_ns[ns].setdefault(link, {}).setdefault("addresses", []).append(address)
    lines = [f"name: {t.name}", "namespaces:"]
    for ns, links in per_ns.items():
        if ns == HOST and not links:
            continue
        lines.append(f"  {ns}:")
        if not links:
            lines.append("    interfaces: {}")
            continue
        lines.append("    interfaces:")
        for name, spec in links.items():
            body = ", ".join(f"{k}: [{', '.join(v)}]" if isinstance(v, list) else f"{k}: {v}"
                             for k, v in spec.items())
            lines.append(f"      {name}: {{{body}}}")
    return "\n".join(lines) + "\n"


def _commands(t: Topology) -> list[tuple[str, str]]:
    """(namespace, ip command without 'ip') in netlab's order."""
    out = [(HOST, f"netns add {ns}") for ns in t.namespaces]
    out += [(ns, f"link add {name} type bridge") for ns, name in t.bridges]
    for ns, name, pns, pname in t.veths:
        where = f" netns {pns}" if pns != ns else ""
        out.append((ns, f"link add {name} type veth peer name {pname}{where}"))
    out += [(ns, f"link set {port} master {bridge}") for ns, port, bridge in t.masters]
    out += [(ns, f"addr add {address} dev {link}") for ns, link, address in t.addresses]
    out += [(ns, f"link set {name} up") for ns, name in t.ups()]
    return out


def ip_script(t: Topology) -> str:
    """One `ip` process per command: the tutorial's way."""
    return "set -e\n" + "".join(f"ip {'' if ns == HOST else f'-n {ns} '}{cmd}\n" for ns, cmd in _commands(t))


def ip_batch(t: Topology) -> tuple[str, dict[str, str], str]:
    """The best `ip -batch` script: one batch for the root namespace (namespaces and veths included), one
    `ip -n NS -batch` per namespace after it, then the root's bridges up (bridges come up last).
    Returns (root batch, {namespace: batch}, last root batch)."""
    root, per_ns = [], {}
    for ns, cmd in _commands(t):
        (root if ns == HOST else per_ns.setdefault(ns, [])).append(cmd)
    last = {f"link set {name} up" for ns, name in t.bridges if ns == HOST}
    head = [c for c in root if c not in last]
    return ("\n".join(head) + "\n", {ns: "\n".join(cmds) + "\n" for ns, cmds in per_ns.items()},
            "".join(c + "\n" for c in root if c in last))


def destroy_commands(t: Topology) -> list[tuple[str, str]]:
    out = [(HOST, f"netns del {ns}") for ns in t.namespaces]
    out += [(ns, f"link del {name}") for ns, name in t.bridges if ns == HOST]
    return out


# --- routed: a chain of routers with static routes (issue 10) -------------------------------------------

FORWARD = "net.ipv4.ip_forward"


@dataclass
class Routed:
    """A chain of N routers: router i has a veth `left` to router i-1 and `right` to router i+1, a /24 per
    link (link k joins router k, .1 on its `right`, to router k+1, .2 on its `left`), IPv4 forwarding on,
    and a route to every link subnet it is not on: via its left neighbour for those to its left, via its
    right neighbour for those to its right. N(N-3)+2 routes in all (89,102 at N=300)."""

    name: str
    routers: list[str]
    subnets: list[str]  # link k's prefix

    @property
    def namespaces(self) -> list[str]:
        return self.routers

    def address(self, k: int, side: int) -> str:
        """Link k's address on router k (side 1) or router k+1 (side 2), without its prefix length."""
        return self.subnets[k].replace(".0/24", f".{side}")

    def interfaces(self, i: int) -> list[tuple[str, int, int]]:
        """(name, link, side) of router i's interfaces."""
        out = [("left", i - 1, 2)] if i > 0 else []
        return out + ([("right", i, 1)] if i + 1 < len(self.routers) else [])

    def routes(self, i: int) -> list[tuple[list[str], str]]:
        """Router i's routes as (destinations, gateway): one entry per direction."""
        out = []
        if i >= 2:
            out.append((self.subnets[:i - 1], self.address(i - 1, 1)))
        if i + 2 < len(self.routers):
            out.append((self.subnets[i + 1:], self.address(i, 2)))
        return out

    def route_count(self, i: int) -> int:
        return sum(len(to) for to, _ in self.routes(i))


def routed_chain(n: int, p: str) -> Routed:
    return Routed(f"bench-{p}", [f"{p}r{i}" for i in range(n)],
                  [f"10.{k >> 8 & 255}.{k & 255}.0/24" for k in range(n - 1)])


def routed_yaml(t: Routed) -> str:
    """netlab's file, compact: one route entry per direction with all its destinations in `to:` (each
    destination is still one kernel route)."""
    lines = [f"name: {t.name}", "namespaces:"]
    for i, ns in enumerate(t.routers):
        lines += [f"  {ns}:", f"    sysctls: {{{FORWARD}: 1}}", "    interfaces:"]
        for name, k, side in t.interfaces(i):
            peer = "" if side == 2 else f"kind: veth, peer: {t.routers[i + 1]}/left, "
            lines.append(f"      {name}: {{{peer}addresses: [{t.address(k, side)}/24]}}")
        if t.routes(i):
            lines.append("    routes:")
            for to, via in t.routes(i):
                lines.append(f"      - {{to: [{', '.join(to)}], via: {via}}}")
    return "\n".join(lines) + "\n"


def routed_ip_batch(t: Routed) -> tuple[str, dict[str, str]]:
    """The `ip -batch` contender: a root batch that makes the namespaces and every veth with both ends
    already in their namespaces, then one batch per namespace (run inside it): addresses, links up, one
    `route add` per route (marked with netlab's protocol number, so the routes are the same).
    Returns (root batch, {namespace: batch})."""
    root = [f"netns add {ns}" for ns in t.routers]
    for i in range(len(t.routers) - 1):
        root.append(f"link add right netns {t.routers[i]} type veth peer name left netns {t.routers[i + 1]}")
    per_ns = {}
    for i, ns in enumerate(t.routers):
        cmds = [f"addr add {t.address(k, side)}/24 dev {name}" for name, k, side in t.interfaces(i)]
        cmds += ["link set lo up"] + [f"link set {name} up" for name, _, _ in t.interfaces(i)]
        cmds += [f"route add {to} via {via} proto 201" for dests, via in t.routes(i) for to in dests]
        per_ns[ns] = "".join(c + "\n" for c in cmds)
    return "".join(c + "\n" for c in root), per_ns
