"""ipvlan: like macvlan, but every ipvlan shares its parent's MAC address; frames are sorted by IP
address (l3, l3s: the parent routes) or by MAC on the parent's wire (l2). The mode and flags belong to the
parent's port, not to one ipvlan: every ipvlan on one parent has the same (a validation rule), and a change
of one changes them all, in place. The parent is IFLA_LINK. Needs the ipvlan module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ..errors import Problem
from ..netlink import rtnl
from .base import Facts, LinkSpec, ParentSpec, Stacked

if TYPE_CHECKING:
    from ..model import Topology
    from ..netlink.rtnl import LinkInfo
    from ..state import Link

MODES = {"l2": 0, "l3": 1, "l3s": 2}
FLAGS = {"bridge": 0, "private": 1, "vepa": 2}
MODE_NAMES = {v: k for k, v in MODES.items()}
FLAG_NAMES = {v: k for k, v in FLAGS.items()}


class IpvlanSpec(ParentSpec):
    kind: Literal["ipvlan"]
    mode: Literal["l2", "l3", "l3s"] = "l3"  # the kernel's default
    flags: Literal["bridge", "private", "vepa"] = "bridge"


class Ipvlan(Stacked):
    name = "ipvlan"
    spec = IpvlanSpec
    in_place = frozenset({"mode", "flags"})
    module = "ipvlan"

    def check(self, topology: Topology, problems: list[Problem]) -> None:
        from ..model import parent_of

        seen: dict[tuple[str, str] | None, tuple[str, str, str]] = {}  # parent -> (ns/name, mode, flags) of the first
        for ns, nspec in topology.namespaces.items():
            for name, spec in nspec.interfaces.items():
                if not isinstance(spec, IpvlanSpec):
                    continue
                first = seen.setdefault(parent_of(ns, spec), (f"{ns}/{name}", spec.mode, spec.flags))
                if (first[1], first[2]) != (spec.mode, spec.flags):
                    problems.append(Problem(("namespaces", ns, "interfaces", name, "mode"),
                                            f"ipvlans on one parent share its mode and flags: {first[0]} has "
                                            f"mode {first[1]}, flags {first[2]}; this one {spec.mode}, "
                                            f"{spec.flags}"))

    def options(self, spec: LinkSpec) -> dict[str, Any]:
        assert isinstance(spec, IpvlanSpec)
        return {"mode": spec.mode, "flags": spec.flags}

    def read(self, info: LinkInfo) -> dict[str, Any]:
        data = rtnl.IPVLAN_INFO.decode(info["info_data"] or b"")
        return {"mode": MODE_NAMES.get(data.get("mode", 1), "?"), "flags": FLAG_NAMES.get(data.get("flags", 0), "?")}

    def probe(self, link: Link) -> bytes:
        return rtnl.IPVLAN_INFO.encode({"mode": MODES["l3"]})

    def info_data(self, link: Link, peer: Link | None, resolve: Facts) -> bytes:
        return self.change_data(link, link.opts)

    def change_data(self, link: Link, options: dict[str, Any]) -> bytes:
        opts = {**link.opts, **options}
        return rtnl.IPVLAN_INFO.encode({"mode": MODES[opts["mode"]], "flags": FLAGS[opts["flags"]]})
