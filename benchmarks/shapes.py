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
