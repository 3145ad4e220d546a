"""macvlan: a link with a MAC address of its own on its parent's wire; the common way to put a container
on a host's network. `mode` says how macvlans on one parent reach each other: bridge (directly; netlab's
default, as Docker's and containerlab's), vepa (through the switch outside), private (not at all), passthru
(one macvlan takes over the parent), source (only frames from the listed `macs`).

The kernel changes the mode in place, except to or from passthru, and the source list in place. The parent
is IFLA_LINK. A parent that is a bridge's port is refused by the kernel (EBUSY): a validation error.
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

MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
MODE_NAMES = {v: k for k, v in MODES.items()}
MACADDR_SET = 3  # MACVLAN_MACADDR_SET: the source list, replaced whole


class MacvlanSpec(ParentSpec):
    kind: Literal["macvlan"]
    mode: Literal["private", "vepa", "bridge", "passthru", "source"] = "bridge"
    macs: list[str] | None = None


class Macvlan(Stacked):
    name = "macvlan"
    spec = MacvlanSpec
    in_place = frozenset({"mode", "macs"})

    def check(self, topology: Topology, problems: list[Problem]) -> None:
        from ..model import MAC

        for ns, nspec in topology.namespaces.items():
            for name, spec in nspec.interfaces.items():
                if not isinstance(spec, MacvlanSpec):
                    continue
                at = ("namespaces", ns, "interfaces", name)
                if spec.mode == "source" and not spec.macs:
                    problems.append(Problem(at + ("macs",), "mode source needs the list of source MACs it "
                                                            "accepts: macs: [02:00:00:00:00:01, ...]"))
                if spec.mode != "source" and spec.macs is not None:
                    problems.append(Problem(at + ("macs",), "macs is the list of mode source; this macvlan's "
                                                            f"mode is {spec.mode}"))
                for i, mac in enumerate(spec.macs or ()):
                    if not MAC.fullmatch(mac.lower()):
                        problems.append(Problem(at + ("macs", i), f"{mac!r} is not a MAC address like "
                                                                  "02:00:00:00:00:01"))

    def options(self, spec: LinkSpec) -> dict[str, Any]:
        assert isinstance(spec, MacvlanSpec)
        macs = tuple(sorted(m.lower() for m in spec.macs)) if spec.macs is not None else None
        return {"mode": spec.mode, "macs": macs if spec.mode == "source" else None}

    def read(self, info: LinkInfo) -> dict[str, Any]:
        data = rtnl.MACVLAN_INFO.decode(info["info_data"] or b"")
        mode = MODE_NAMES.get(data.get("mode", 0), str(data.get("mode")))
        macs = (data.get("macaddr_data") or {}).get("macaddr")
        return {"mode": mode, "macs": tuple(sorted(macs or ())) if mode == "source" else None}

    def replace_reason(self, have: Link, want: Link) -> str | None:
        old, new = have.opts.get("mode"), want.opts.get("mode")
        if old != new and "passthru" in (old, new):
            return f"mode {old} -> {new} (the kernel changes a macvlan's mode in place, but not to or from passthru)"
        return super().replace_reason(have, want)

    def info_data(self, link: Link, peer: Link | None, resolve: Facts) -> bytes:
        return self.change_data(link, link.opts)

    def change_data(self, link: Link, options: dict[str, Any]) -> bytes:
        mode = options.get("mode", link.opts["mode"])
        data: dict[str, Any] = {"mode": MODES[mode]}
        if mode == "source":
            macs = options.get("macs", link.opts.get("macs")) or ()
            data.update(macaddr_mode=MACADDR_SET, macaddr_data={"macaddr": list(macs)})
        return rtnl.MACVLAN_INFO.encode(data)
