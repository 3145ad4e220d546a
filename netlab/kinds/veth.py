"""veth: a pair of links, a cable between two namespaces (or within one). The pair is one object: either
end's mark makes both the topology's, deleting one end deletes both, and it is created (and marked) from
one end, `peer: namespace/interface` naming the other. The other end is declared in its own namespace and
may leave out `kind` (or say `veth` and name the first end back). A changed peer is a new cable: replace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..errors import Problem
from ..netlink import rtnl
from .base import Facts, Kind, LinkSpec

if TYPE_CHECKING:
    from ..model import Path, Topology
    from ..state import Link

Key = tuple[str, str]


class VethSpec(LinkSpec):
    kind: Literal["veth"] | None = None
    peer: str | None = None


class Veth(Kind):
    name = "veth"
    spec = VethSpec

    def check(self, topology: Topology, problems: list[Problem]) -> None:
        from . import DECLARABLE

        defined = sorted(topology.namespaces)
        claimed: dict[Key, Key] = {}  # peer end -> the veth end that names it
        for ns, nspec in topology.namespaces.items():
            for name, spec in nspec.interfaces.items():
                at = ("namespaces", ns, "interfaces", name, "peer")
                peer = _peer(spec)
                if spec.kind == "veth" and peer is None:
                    problems.append(Problem(at, "a veth needs a peer: 'namespace/interface'"))
                if peer is None:
                    continue
                target = _check_peer(topology, ns, name, peer, at, defined, problems)
                if target:
                    other = claimed.get(target)
                    if other and other != (ns, name):
                        problems.append(Problem(at, f"{'/'.join(target)} is already the peer of "
                                                f"{'/'.join(other)}; a veth has exactly two ends"))
                    claimed[target] = (ns, name)
                    claimed.setdefault((ns, name), target)
        declarable = ", ".join(DECLARABLE)
        for ns, nspec in topology.namespaces.items():
            for name, spec in nspec.interfaces.items():
                if spec.kind is None and (ns, name) not in claimed:
                    problems.append(Problem(("namespaces", ns, "interfaces", name, "kind"),
                                            f"kind is required (one of: {declarable}) unless the interface "
                                            "is the peer of a veth"))

    def replace_reason(self, have: Link, want: Link) -> str | None:
        if have.peer != want.peer:
            assert want.peer is not None, "a desired veth always names its other end (model.check requires it)"
            old = "/".join(have.peer) if have.peer else "a namespace netlab does not manage"
            return f"peer {old} -> {'/'.join(want.peer)}"
        return None

    def info_data(self, link: Link, peer: Link | None, resolve: Facts) -> bytes:
        """VETH_INFO_PEER: the other end, as an ifinfomsg (with the index chosen for it) and its link
        attributes: its name, its namespace (if not this one), its MTU and MAC."""
        assert link.peer is not None, "the planner creates a veth only from an end that names the other"
        pns, pname = link.peer
        return rtnl.VETH_INFO.encode({"peer": {
            "index": resolve.index(pns, pname), "ifname": pname,
            "net_ns_fd": resolve.netns_fd(pns) if pns != resolve.namespace else None,
            "mtu": peer.mtu if peer is not None else None, "address": peer.mac if peer is not None else None}})

    def summary(self, link: Link) -> str:
        return f"veth to {'/'.join(link.peer)}" if link.peer else "veth, its other end unknown"


def _peer(spec: LinkSpec) -> str | None:
    """The `peer:` of a veth's spec; None for another kind's (the schema chose the spec by `kind:`)."""
    return spec.peer if isinstance(spec, VethSpec) else None


def _check_peer(topo: Topology, ns: str, name: str, peer: str, at: Path, defined: list[str],
                problems: list[Problem]) -> Key | None:
    parts = peer.split("/")
    if len(parts) != 2 or not all(parts):
        problems.append(Problem(at, f"a peer is written 'namespace/interface', not {peer!r}"))
        return None
    pns, pname = parts
    if pns not in topo.namespaces:
        problems.append(Problem(at, f"namespace {pns!r} is not defined (defined: {', '.join(defined)})"))
        return None
    if (pns, pname) == (ns, name):
        problems.append(Problem(at, "a veth cannot be its own peer"))
        return None
    pspec = topo.namespaces[pns].interfaces.get(pname)
    if pspec is None:
        have = sorted(topo.namespaces[pns].interfaces)
        problems.append(Problem(at, f"interface {pname!r} is not defined in namespace {pns!r} "
                                f"(defined there: {', '.join(have) or 'none'}); declare it, e.g. "
                                f"'{pname}: {{addresses: [...]}}'"))
        return None
    if pspec.kind not in (None, "veth"):
        problems.append(Problem(at, f"{peer} is a {pspec.kind}, not a veth"))
        return None
    ppeer = _peer(pspec)
    if ppeer is not None and ppeer != f"{ns}/{name}":
        problems.append(Problem(at, f"the two ends disagree: {ns}/{name} names {peer} as its peer, but {peer} "
                                f"names {ppeer}"))
        return None
    return (pns, pname)
