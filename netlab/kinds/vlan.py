"""vlan: an 802.1Q (or 802.1ad) sub-interface of its parent, `eth0.10`: frames it sends leave the parent
tagged with its id; tagged frames the parent receives come out of it untagged.

The kernel ignores a change of id or protocol in a change request (it answers success and keeps the old
ones), so either is a replace. The parent is IFLA_LINK. Needs the 8021q module (Debian's stock kernel has
it; this project's CI machine does not: its tests run in the stock-kernel lane).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..errors import Problem
from ..netlink import rtnl
from .base import Facts, LinkSpec, ParentSpec, Stacked

if TYPE_CHECKING:
    from ..model import Topology
    from ..netlink.rtnl import LinkInfo
    from ..state import Link

PROTOCOLS = {"802.1Q": 0x8100, "802.1ad": 0x88A8}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOLS.items()}


class VlanSpec(ParentSpec):
    kind: Literal["vlan"]
    id: int = Field(ge=1, le=4094)
    protocol: Literal["802.1Q", "802.1ad"] = "802.1Q"


class Vlan(Stacked):
    name = "vlan"
    spec = VlanSpec
    module = "8021q"

    def check(self, topology: Topology, problems: list[Problem]) -> None:
        """One VLAN per parent, id and protocol (the kernel's key: a second is EEXIST)."""
        from ..model import parent_of

        seen: dict[tuple[tuple[str, str] | None, int, str], str] = {}
        for ns, nspec in topology.namespaces.items():
            for name, spec in nspec.interfaces.items():
                if isinstance(spec, VlanSpec):
                    first = seen.setdefault((parent_of(ns, spec), spec.id, spec.protocol), f"{ns}/{name}")
                    if first != f"{ns}/{name}":
                        problems.append(Problem(("namespaces", ns, "interfaces", name, "id"),
                                                f"{first} is already VLAN {spec.id} ({spec.protocol}) on "
                                                f"{spec.parent}: the kernel has one per parent, id and protocol"))

    def options(self, spec: LinkSpec) -> dict[str, Any]:
        assert isinstance(spec, VlanSpec)
        return {"id": spec.id, "protocol": spec.protocol}

    def read(self, info: LinkInfo) -> dict[str, Any]:
        data = rtnl.VLAN_INFO.decode(info["info_data"] or b"")
        protocol: int = data.get("protocol", 0)
        return {"id": data.get("id"), "protocol": PROTOCOL_NAMES.get(protocol, hex(protocol))}

    def probe(self, link: Link) -> bytes:
        return rtnl.VLAN_INFO.encode({"id": 1})

    def info_data(self, link: Link, peer: Link | None, resolve: Facts) -> bytes:
        opts = link.opts
        return rtnl.VLAN_INFO.encode({"id": opts["id"], "protocol": PROTOCOLS[opts["protocol"]]})
