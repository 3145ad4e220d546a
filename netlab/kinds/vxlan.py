"""vxlan: an Ethernet overlay carried in UDP: frames sent to it are wrapped and sent to `remote` (one
peer) or `group` (a multicast group, through `parent`), from `local`, to UDP `port` (4789, IANA's, unless
given: the kernel's own default is Linux's old 8472). A bridge on each side and a vxlan port on it make one
L2 segment across hosts.

The parent is IFLA_VXLAN_LINK inside the kind's data (not IFLA_LINK), an ifindex of the vxlan's own
namespace. The kernel refuses a change of VNI or port ("Cannot change VNI"), and netlab replaces on a change
of local address or parent too; remote/group, learning and ttl change in place. One VNI and port per
namespace (the kernel's rule, with the same local address). The MTU must leave room for the 50 bytes of
encapsulation (70 over IPv6).
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from ..errors import Problem
from ..netlink import rtnl
from .base import Facts, Kind, LinkSpec, show_option

if TYPE_CHECKING:
    from ..model import Topology
    from ..netlink.rtnl import LinkInfo
    from ..state import Link

DEFAULT_PORT = 4789
OVERHEAD = {4: 50, 6: 70}


class VxlanSpec(LinkSpec):
    kind: Literal["vxlan"]
    vni: int = Field(ge=0, le=(1 << 24) - 1)
    remote: str | None = None
    group: str | None = None
    local: str | None = None
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    parent: str | None = None
    learning: bool = True
    ttl: int | None = Field(default=None, ge=1, le=255)


def underlay(spec: VxlanSpec) -> int | None:
    """The IP version the vxlan's packets travel over (4 or 6), from its remote, group or local."""
    for text in (spec.remote, spec.group, spec.local):
        if text is not None:
            try:
                return ipaddress.ip_address(text).version
            except ValueError:
                return None
    return None


class Vxlan(Kind):
    name = "vxlan"
    spec = VxlanSpec
    parent = "data"
    in_place = frozenset({"remote", "group", "learning", "ttl"})

    def check(self, topology: Topology, problems: list[Problem]) -> None:
        for ns, nspec in topology.namespaces.items():
            ports: dict[tuple[int, int], str] = {}
            for name, spec in nspec.interfaces.items():
                if not isinstance(spec, VxlanSpec):
                    continue
                at = ("namespaces", ns, "interfaces", name)
                versions = set()
                for field in ("remote", "group", "local"):
                    text = getattr(spec, field)
                    if text is None:
                        continue
                    try:
                        ip = ipaddress.ip_address(text)
                    except ValueError:
                        problems.append(Problem(at + (field,), f"{text!r} is not an IPv4 or IPv6 address (no "
                                                               "prefix length here)"))
                        continue
                    versions.add(ip.version)
                    if field == "group" and not ip.is_multicast:
                        problems.append(Problem(at + (field,), f"{text} is not a multicast address; a single "
                                                               "peer is `remote:`"))
                    if field != "group" and (ip.is_multicast or ip.is_unspecified):
                        problems.append(Problem(at + (field,), f"{text} is not a unicast address"
                                                + ("; a multicast group is `group:`" if ip.is_multicast else "")))
                if len(versions) > 1:
                    problems.append(Problem(at, "remote, group and local must all be IPv4 or all IPv6"))
                if spec.remote is not None and spec.group is not None:
                    problems.append(Problem(at + ("group",), "a vxlan has a remote or a group, not both"))
                if spec.group is not None and spec.parent is None:
                    problems.append(Problem(at + ("parent",), "a multicast group needs the parent link it is "
                                                              "joined on: parent: eth0"))
                if spec.parent is not None and "/" in spec.parent:
                    problems.append(Problem(at + ("parent",), "a vxlan's parent is a link of its own namespace "
                                                              "(the kernel keeps it as an ifindex there)"))
                key = (spec.vni, spec.port)
                if key in ports:
                    problems.append(Problem(at + ("vni",), f"vni {spec.vni} port {spec.port} is already "
                                                           f"{ports[key]}'s in namespace {ns!r}: the kernel "
                                                           "allows one vxlan per VNI and port"))
                ports.setdefault(key, name)
                version = underlay(spec)
                if spec.mtu is not None and spec.parent is not None and "/" not in spec.parent and version:
                    from ..model import known_mtu  # the model imports the kinds

                    above = known_mtu(topology, ns, spec.parent)  # declared, or the kernel's default
                    room = OVERHEAD[version]
                    if above is not None and spec.mtu > above - room:
                        problems.append(Problem(at + ("mtu",), f"mtu {spec.mtu} leaves no room for the {room} "
                                                               f"bytes of encapsulation over IPv{version} on "
                                                               f"{spec.parent} (mtu {above}): at most "
                                                               f"{above - room}"))

    def headroom(self, link: Link) -> int:
        opts = link.opts
        far = opts.get("remote") or opts.get("group") or opts.get("local")
        return OVERHEAD[ipaddress.ip_address(far).version if far else 4]

    def options(self, spec: LinkSpec) -> dict[str, Any]:
        assert isinstance(spec, VxlanSpec)
        return {"vni": spec.vni, "remote": _text(spec.remote), "group": _text(spec.group),
                "local": _text(spec.local), "port": spec.port, "learning": spec.learning, "ttl": spec.ttl}

    def read(self, info: LinkInfo) -> dict[str, Any]:
        data = rtnl.VXLAN_INFO.decode(info["info_data"] or b"")
        far = data.get("group") or data.get("group6")
        far_text = str(ipaddress.ip_address(far)) if far else None
        near = data.get("local") or data.get("local6")
        multicast = far_text is not None and ipaddress.ip_address(far_text).is_multicast
        return {"vni": data.get("id"), "remote": None if multicast else far_text,
                "group": far_text if multicast else None, "local": str(ipaddress.ip_address(near)) if near else None,
                "port": data.get("port"), "learning": bool(data.get("learning", 1)), "ttl": data.get("ttl") or None}

    def replace_reason(self, have: Link, want: Link) -> str | None:
        old, new = have.opts, want.opts
        for field in ("remote", "group"):
            a, b = old.get(field), new.get(field)
            if a != b and (a is None or b is None
                           or ipaddress.ip_address(a).version != ipaddress.ip_address(b).version):
                return f"{field} {show_option(a)} -> {show_option(b)}"
        return super().replace_reason(have, want)

    def parent_index(self, info: LinkInfo) -> int | None:
        return rtnl.VXLAN_INFO.decode(info["info_data"] or b"").get("link") or None

    def info_data(self, link: Link, peer: Link | None, resolve: Facts) -> bytes:
        data = self._data(link.opts)
        data["id"], data["port"] = link.opts["vni"], link.opts["port"]
        if link.opts.get("local"):
            ip = ipaddress.ip_address(link.opts["local"])
            data["local" if ip.version == 4 else "local6"] = ip.packed
        if link.parent is not None:
            data["link"] = resolve.parent_index(link)
        return rtnl.VXLAN_INFO.encode(data)

    def change_data(self, link: Link, options: dict[str, Any]) -> bytes:
        return rtnl.VXLAN_INFO.encode(self._data({**link.opts, **options}))

    @staticmethod
    def _data(opts: dict[str, Any]) -> dict[str, Any]:
        data: dict[str, Any] = {"learning": int(opts.get("learning", True))}
        far = opts.get("remote") or opts.get("group")
        if far:
            ip = ipaddress.ip_address(far)
            data["group" if ip.version == 4 else "group6"] = ip.packed
        data["ttl"] = opts.get("ttl") or 0  # 0: the kernel's default (inherit); sent, or a change would keep the old
        return data


def _text(address: str | None) -> str | None:
    """An address as the kernel's reading of it is spelled (ipaddress's normal form)."""
    return str(ipaddress.ip_address(address)) if address is not None else None
