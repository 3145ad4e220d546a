"""tun and tap: a link whose other side is a program (a VM, a VPN, a packet generator) holding a file
descriptor: what the program writes comes in on the link, what the link sends the program reads. tap
carries Ethernet frames, tun IP packets. netlab makes them persistent, owned by `owner`/`group` (who may
attach to them without privileges), optionally `multi_queue`.

They are not made over rtnetlink (the kernel refuses) but through /dev/net/tun, from inside their
namespace, with IFF_TUN_EXCL so that netlab never attaches to a device it did not make (kernel/tuntap.py
has the order that leaves nothing behind on a failure or a crash). The kernel reports both kinds as "tun",
with the type in the kind's data. Nothing changes in place: a change of owner, group or queues replaces
the device (a program attached to it loses it: say so in the plan's reason).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from ..errors import Problem
from .base import Facts, Kind, LinkSpec

if TYPE_CHECKING:
    from ..model import Topology
    from ..netlink.rtnl import LinkInfo
    from ..state import Link


class TunTapSpec(LinkSpec):
    owner: int | None = Field(default=None, ge=0, lt=0xFFFFFFFF)
    group: int | None = Field(default=None, ge=0, lt=0xFFFFFFFF)
    multi_queue: bool = False


class TunSpec(TunTapSpec):
    kind: Literal["tun"]


class TapSpec(TunTapSpec):
    kind: Literal["tap"]


class Tun(Kind):
    name = "tun"
    spec: ClassVar[type[LinkSpec] | None] = TunSpec
    module = "tun"

    def check(self, topology: Topology, problems: list[Problem]) -> None:
        for ns, nspec in topology.namespaces.items():
            for name, spec in nspec.interfaces.items():
                if isinstance(spec, TunSpec) and spec.mac is not None and self.name == "tun":
                    problems.append(Problem(("namespaces", ns, "interfaces", name, "mac"),
                                            "a tun carries IP packets and has no MAC address (a tap has one)"))

    def options(self, spec: LinkSpec) -> dict[str, Any]:
        assert isinstance(spec, TunTapSpec)
        return {"owner": spec.owner, "group": spec.group, "multi_queue": spec.multi_queue}

    def read(self, info: LinkInfo) -> dict[str, Any]:
        from ..kernel import tuntap

        found = dict(tuntap.read(info["info_data"]))
        del found["type"]
        return found

    def kind_of(self, info: LinkInfo) -> str:
        from ..kernel import tuntap

        return tuntap.read(info["info_data"])["type"] or self.name

    def info_data(self, link: Link, peer: Link | None, resolve: Facts) -> bytes | None:
        raise NotImplementedError("a tun or tap is made through /dev/net/tun (kernel/tuntap.py), not rtnetlink")


class Tap(Tun):
    name = "tap"
    spec = TapSpec
