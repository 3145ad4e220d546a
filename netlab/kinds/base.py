"""What a link kind declares, once: its YAML options, its cross-checks, the changes the kernel cannot make
in place, how it is encoded into RTM_NEWLINK, and how it reads in a plan.

Everything that is the same for every kind (name, master, addresses, MTU, MAC, up) lives in `LinkSpec`
and in the planner; a kind file adds only what is its own. No I/O here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol

from pydantic import Field

from ..impair import ImpairSpec
from ..schema import Strict

if TYPE_CHECKING:
    from ..errors import Problem
    from ..model import Topology
    from ..netlink.rtnl import LinkInfo
    from ..state import Link


class LinkSpec(Strict):
    """The options every declared link has. A kind's spec subclasses it and sets `kind`."""

    kind: str | None = None
    master: str | None = None
    addresses: list[str] = Field(default_factory=list)
    mtu: int | None = Field(default=None, ge=68, le=65535)
    mac: str | None = None
    up: bool = True
    vlans: list[Annotated[int, Field(ge=1, le=4094)]] | None = None
    pvid: int | None = Field(default=None, ge=1, le=4094)
    impair: ImpairSpec | None = None


class ParentSpec(LinkSpec):
    """A link that sits on another (its parent): `parent: eth0` in the same namespace, or
    `parent: host/eth9` in another; one the topology does not declare is external (host only)."""

    parent: str


class Facts(Protocol):
    """What a kind's encoder may ask the kernel adapter while it builds a create request: the namespace
    the request is sent in, another namespace's fd, the ifindex chosen for a link being made, the ifindex
    of a link's parent (in the parent's namespace)."""

    namespace: str

    def netns_fd(self, ns: str) -> int: ...

    def index(self, ns: str, name: str) -> int: ...

    def parent_index(self, link: Link) -> int: ...


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
    module: ClassVar[str | None] = None
    """The kernel module the kind needs, where the kernel may lack it (named in the error if it does)."""
    parent: ClassVar[str | None] = None
    """Where the kernel keeps the link's parent: "link" (IFLA_LINK, with IFLA_LINK_NETNSID when it is in
    another namespace), "data" (the kind's own data: a vxlan's), or None for a kind without one."""
    in_place: ClassVar[frozenset[str]] = frozenset()
    """The options the kernel changes in place (RTM_NEWLINK without create); a change of any other option
    replaces the link."""

    def options(self, spec: LinkSpec) -> dict[str, Any]:
        """The kind's own options a desired link has, from its YAML spec, normalized as `read` gives them
        (a default netlab picks included); None for one the topology leaves to the kernel."""
        return {}

    def read(self, info: LinkInfo) -> dict[str, Any]:
        """The kind's own options of a live link, from its link message (IFLA_INFO_DATA)."""
        return {}

    def probe(self, link: Link) -> bytes | None:
        """The IFLA_INFO_DATA of a throwaway link of this kind that needs what `link` needs of the kernel,
        made in a scratch namespace before any change to find out whether the kernel can (on a veth as
        its parent, for a kind with one); None if nothing needs probing (the kernel has it everywhere)."""
        return None

    def lacking(self, link: Link) -> str | None:
        """What this kernel lacks when it refuses to make or change `link` as not supported (EOPNOTSUPP)."""
        if self.module is None:
            return None
        return f"this kernel has no {link.kind} links (module {self.module}; 'modprobe {self.module}' loads it " \
               "where it is installed)"

    def headroom(self, link: Link) -> int | None:
        """How far below its parent's MTU the link's must stay (a vxlan's header), or None where its MTU
        does not depend on its parent's."""
        return None

    def kind_of(self, info: LinkInfo) -> str:
        """The kind a live link of this kind's IFLA_INFO_KIND is (the kernel says "tun" for a tap too)."""
        return self.name

    def parent_index(self, info: LinkInfo) -> int | None:
        """The ifindex of a live link's parent, where the kind keeps it in its own data."""
        return None

    def check(self, topology: Topology, problems: list[Problem]) -> None:
        """Add the problems of this kind's links that span fields or interfaces (no line numbers)."""

    def replace_reason(self, have: Link, want: Link) -> str | None:
        """Why `have` cannot become `want` in place (it must be deleted and created), or None: by default,
        a changed parent, or a changed option the kernel does not change in place."""
        if want.parent is not None and have.parent != want.parent:
            old = "/".join(have.parent) if have.parent else "none"
            return f"parent {old} -> {'/'.join(want.parent)}"
        have_opts = have.opts
        for name, value in want.options:
            if name not in self.in_place and have_opts.get(name) != value:
                return f"{name} {show_option(have_opts.get(name))} -> {show_option(value)}"
        return None

    def changed(self, have: Link, want: Link) -> dict[str, Any]:
        """The options to change in place: those of `want` that `have` has with another value (the rest
        are equal, or replace the link). `have` read back has every option the kind reads; as the undo of
        a change, `have` is the topology's link, so the undo puts back only what the change changed (the
        kernel may refuse to be sent the rest: a bridge's vlan_filtering, where it has none)."""
        have_opts = have.opts
        return {name: value for name, value in want.options
                if name in self.in_place and name in have_opts and have_opts[name] != value}

    def change_data(self, link: Link, options: dict[str, Any]) -> bytes:
        """The IFLA_INFO_DATA of the request that changes `options` of `link` in place."""
        raise NotImplementedError(f"{self.name} changes nothing in place")

    def info_data(self, link: Link, peer: Link | None, resolve: Facts) -> bytes | None:
        """The IFLA_INFO_DATA of the RTM_NEWLINK that creates `link`, or None. `resolve` gives the
        adapter's facts the request needs (a namespace's fd, the ifindex chosen for an end)."""
        return None

    def summary(self, link: Link) -> str:
        """How the link reads in a plan: its kind, its parent, its own options."""
        text = self.name if link.parent is None else f"{self.name} on {'/'.join(link.parent)}"
        opts = ", ".join(f"{k} {show_option(v)}" for k, v in link.options if v is not None)
        return f"{text}, {opts}" if opts else text


def show_option(value: Any) -> str:
    """An option's value as a plan shows it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)


class Stacked(Kind):
    """A kind that sends on its parent's wire (vlan, macvlan, ipvlan): its parent is IFLA_LINK, and its MTU
    may not exceed its parent's."""

    parent: ClassVar[str | None] = "link"

    def headroom(self, link: Link) -> int:
        return 0
