"""bridge: a software switch; other links join it as ports (`master:`).

Its MTU is set by a request of its own after the create: an MTU given in RTM_NEWLINK is not marked as set
by the user, so the kernel derives it again from the ports as they join (the smallest port's), and the
first apply would not converge. One set by RTM_SETLINK sticks, even above a port's MTU, where frames larger
than the port's MTU are then dropped at that port. It also stays when `mtu:` is removed from the file: the
kernel has no "automatic again", so only a new bridge returns to following its ports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..errors import Problem
from .base import Kind, LinkSpec

if TYPE_CHECKING:
    from ..model import Topology


class BridgeSpec(LinkSpec):
    kind: Literal["bridge"]


class Bridge(Kind):
    name = "bridge"
    spec = BridgeSpec
    is_master = True
    mtu_at_create = False

    def check(self, topology: Topology, problems: list[Problem]) -> None:
        for ns, nspec in topology.namespaces.items():
            for name, spec in nspec.interfaces.items():
                if spec.kind == "bridge" and spec.master is not None:
                    problems.append(Problem(("namespaces", ns, "interfaces", name, "master"),
                                            "a bridge cannot be a port of another bridge"))
