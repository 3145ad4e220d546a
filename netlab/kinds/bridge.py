"""bridge: a software switch; other links join it as ports (`master:`).

Its MTU is set by a request of its own after the create: an MTU given in RTM_NEWLINK is not marked as set
by the user, so the kernel derives it again from the ports as they join (the smallest port's), and the
first apply would not converge. One set by RTM_SETLINK sticks, even above a port's MTU, where frames larger
than the port's MTU are then dropped at that port. It also stays when `mtu:` is removed from the file: the
kernel has no "automatic again", so only a new bridge returns to following its ports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ..errors import Problem
from ..netlink import rtnl
from .base import Facts, Kind, LinkSpec

if TYPE_CHECKING:
    from ..model import Topology
    from ..netlink.rtnl import LinkInfo
    from ..state import Link


class BridgeSpec(LinkSpec):
    kind: Literal["bridge"]
    stp: bool | None = None
    vlan_filtering: bool | None = None


class Bridge(Kind):
    name = "bridge"
    spec = BridgeSpec
    is_master = True
    mtu_at_create = False
    in_place = frozenset({"stp", "vlan_filtering"})

    def options(self, spec: LinkSpec) -> dict[str, Any]:
        """Compared only where declared: a bridge netlab makes has both off, and one removed from the file
        keeps its value (as `mtu` does)."""
        assert isinstance(spec, BridgeSpec)
        return {k: v for k, v in (("stp", spec.stp), ("vlan_filtering", spec.vlan_filtering)) if v is not None}

    def probe(self, link: Link) -> bytes | None:
        if link.opts.get("vlan_filtering") or link.vlans is not None:
            return rtnl.BRIDGE_INFO.encode({"vlan_filtering": 1})
        return None

    def summary(self, link: Link) -> str:
        """'bridge', with the options that are on ('bridge, stp on'): off is every new bridge's."""
        return ", ".join(["bridge"] + [f"{k} on" for k, v in link.options if v])

    def lacking(self, link: Link) -> str | None:
        if link.opts.get("vlan_filtering") or link.vlans is not None:
            return "this kernel's bridges cannot filter VLANs (built without CONFIG_BRIDGE_VLAN_FILTERING)"
        return None

    def read(self, info: LinkInfo) -> dict[str, Any]:
        data = rtnl.BRIDGE_INFO.decode(info["info_data"] or b"")
        return {"stp": bool(data.get("stp_state", 0)), "vlan_filtering": bool(data.get("vlan_filtering", 0))}

    def info_data(self, link: Link, peer: Link | None, resolve: Facts) -> bytes | None:
        """Only what is on: a new bridge has both off, and a kernel without VLAN filtering refuses
        IFLA_BR_VLAN_FILTERING even as 0 (an undo rebuilds a bridge from what was read: both there)."""
        on = {k: v for k, v in link.opts.items() if v}
        return self.change_data(link, on) if on else None

    def change_data(self, link: Link, options: dict[str, Any]) -> bytes:
        data = {}
        if "stp" in options:
            data["stp_state"] = int(options["stp"])
        if "vlan_filtering" in options:
            data["vlan_filtering"] = int(options["vlan_filtering"])
        return rtnl.BRIDGE_INFO.encode(data)

    def check(self, topology: Topology, problems: list[Problem]) -> None:
        for ns, nspec in topology.namespaces.items():
            for name, spec in nspec.interfaces.items():
                if spec.kind == "bridge" and spec.master is not None:
                    problems.append(Problem(("namespaces", ns, "interfaces", name, "master"),
                                            "a bridge cannot be a port of another bridge"))
