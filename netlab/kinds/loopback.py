"""loopback: every namespace's `lo`. The kernel makes it with the namespace; netlab brings it up and marks
a namespace it creates on it. It may be declared (by its name, `lo`, without a kind) for its addresses only:
a router's stable address on a kernel without dummy links. 127.0.0.1/8 and ::1 stay the kernel's: never
read, compared or declared. The root namespace's `lo` is the host's, not a topology's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from ..errors import Problem
from .base import Kind, LinkSpec

if TYPE_CHECKING:
    from ..model import Topology

KERNELS = frozenset({"127.0.0.1/8", "::1/128"})
"""lo's addresses that the kernel gives every namespace."""


class LoopbackSpec(LinkSpec):
    kind: Literal["loopback"]


class Loopback(Kind):
    name = "loopback"
    spec = LoopbackSpec

    def check(self, topology: Topology, problems: list[Problem]) -> None:
        for ns, nspec in topology.namespaces.items():
            for name, spec in nspec.interfaces.items():
                at = ("namespaces", ns, "interfaces", name)
                if (spec.kind == "loopback") == (name == "lo"):
                    if name == "lo" and ns == "host":
                        problems.append(Problem(at, "the root namespace's lo is the host's: a topology cannot "
                                                    "declare it"))
                    continue
                if name == "lo":
                    problems.append(Problem(at + ("kind",), "lo is the namespace's loopback link: leave out "
                                                            "its kind (only its addresses can be declared)"))
                else:
                    problems.append(Problem(at + ("kind",), "kind loopback is only lo's, which every "
                                                            "namespace has"))
                continue
        for ns, nspec in topology.namespaces.items():
            lo = nspec.interfaces.get("lo")
            if lo is None or lo.kind != "loopback":
                continue
            at = ("namespaces", ns, "interfaces", "lo")
            for field in ("master", "mtu", "mac", "vlans", "pvid"):
                if getattr(lo, field) is not None:
                    problems.append(Problem(at + (field,), f"lo's {field} is the kernel's: only its addresses "
                                                           "can be declared"))
            if not lo.up:
                problems.append(Problem(at + ("up",), "lo is always up in a namespace netlab makes"))
            for i, text in enumerate(lo.addresses):
                if text in KERNELS or text in ("127.0.0.1/8", "::1/128", "::1"):
                    problems.append(Problem(at + ("addresses", i), f"{text} is lo's own: the kernel gives it "
                                                                   "to every namespace"))
