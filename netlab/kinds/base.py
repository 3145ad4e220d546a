"""What a link kind declares, once: its YAML options, its cross-checks, the changes the kernel cannot make
in place, how it is encoded into RTM_NEWLINK, and how it reads in a plan.

Everything that is the same for every kind (name, master, addresses, MTU, MAC, up) lives in `LinkSpec`
and in the planner; a kind file adds only what is its own. No I/O here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from ..errors import Problem
    from ..model import Topology
    from ..state import Link


class Strict(BaseModel):
    """A YAML mapping: unknown fields are errors, no type is converted, values are frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class LinkSpec(Strict):
    """The options every declared link has. A kind's spec subclasses it and sets `kind`."""

    kind: str | None = None
    master: str | None = None
    addresses: list[str] = Field(default_factory=list)
    mtu: int | None = Field(default=None, ge=68, le=65535)
    mac: str | None = None
    up: bool = True


class Facts(Protocol):
    """What a kind's encoder may ask the kernel adapter while it builds a create request: the namespace
    the request is sent in, another namespace's fd, the ifindex chosen for a link being made."""

    namespace: str

    def netns_fd(self, ns: str) -> int: ...

    def index(self, ns: str, name: str) -> int: ...


class Kind:
    """One kind of link. Subclasses set the class attributes and override what is their own."""

    name: str
    """Set by each kind's class; a Foreign kind (read, never made) has the name the kernel reports."""
    spec: ClassVar[type[LinkSpec] | None] = None
    """The YAML options (pydantic); None for a kind a topology cannot declare."""
    is_master: ClassVar[bool] = False
    """Other links of the namespace may name it as their `master`."""
    mtu_at_create: ClassVar[bool] = True
    """False where an MTU given in RTM_NEWLINK does not stick, so it is set by a request of its own."""

    def check(self, topology: Topology, problems: list[Problem]) -> None:
        """Add the problems of this kind's links that span fields or interfaces (no line numbers)."""

    def replace_reason(self, have: Link, want: Link) -> str | None:
        """Why `have` cannot become `want` in place (it must be deleted and created), or None."""
        return None

    def info_data(self, link: Link, peer: Link | None, resolve: Facts) -> bytes | None:
        """The IFLA_INFO_DATA of the RTM_NEWLINK that creates `link`, or None. `resolve` gives the
        adapter's facts the request needs (a namespace's fd, the ifindex chosen for an end)."""
        return None

    def summary(self, link: Link) -> str:
        """How the link reads in a plan: its kind and what identifies it."""
        return self.name
