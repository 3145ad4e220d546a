"""The link kinds, one file each, and the registry that lists them once.

The schema (which `kind:` values a topology may use, and each one's options), the planner's create order,
the adapter's reader and writer all take the kinds from `KINDS`. Its order is the create order: a kind
comes after every kind its links may need to exist first (a bridge before the ports that join it).
Adding a kind: a file here with its spec and its Kind subclass, and one line below (docs/design.md).
"""

from __future__ import annotations

from .base import Kind, LinkSpec
from .bridge import Bridge
from .dummy import Dummy
from .ipvlan import Ipvlan
from .loopback import Loopback
from .macvlan import Macvlan
from .tuntap import Tap, Tun
from .veth import Veth
from .vlan import Vlan
from .vxlan import Vxlan

KINDS: dict[str, Kind] = {kind.name: kind for kind in (Loopback(), Bridge(), Dummy(), Veth(), Vlan(), Macvlan(),
                                                        Ipvlan(), Vxlan(), Tun(), Tap())}
SPECS: dict[str, type[LinkSpec]] = {name: kind.spec for name, kind in KINDS.items() if kind.spec is not None}
"""The YAML options of each kind a topology may declare, by kind name (loopback: `lo`'s addresses)."""
DECLARABLE: tuple[str, ...] = tuple(name for name in SPECS if name != "loopback")
"""The kinds an interface may name with `kind:` (lo is declared by its name)."""


class Foreign(Kind):
    """A kind netlab does not make (a physical device, a tunnel a user made): read and shown, never
    created or changed."""

    def __init__(self, name: str):
        self.name = name


def kind(name: str) -> Kind:
    """The kind called `name`; one that netlab does not make reads as Foreign."""
    found = KINDS.get(name)
    return found if found is not None else Foreign(name)


_ORDER = {name: i for i, name in enumerate(KINDS)}


def create_order(name: str) -> int:
    """Links are created kind by kind, in the registry's order (after their parents: planner)."""
    return _ORDER[name]


__all__ = ["DECLARABLE", "KINDS", "SPECS", "Kind", "LinkSpec", "create_order", "kind"]
