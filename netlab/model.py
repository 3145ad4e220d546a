"""The topology file: safe YAML loading with positions, the schema (pydantic), the cross-checks, and
`desired()`, which turns a valid topology into the desired `State`.

No kernel access and no root here: `netlab validate` is this module alone. Every problem found is reported
with file, line and field path, and all of them at once; nothing reaches the kernel until the file is valid.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, Union

import yaml
from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError as PydanticValidationError,
    model_validator,
)
from yaml.constructor import SafeConstructor

from . import impair, routes as routing, sysctls
from .errors import Problem, ValidationError
from .kinds import DECLARABLE, KINDS, SPECS, Kind
from .kinds.base import LinkSpec
from .names import interface_name_problem, namespace_name_problem, topology_name_problem
from .routes import NexthopSpec, RouteSpec
from .schema import Strict
from .state import HOST, LOOPBACK, Link, Namespace, Route, RouteKey, State, Vlan, options as link_options

MAX_FILE_BYTES = 4 << 20  # a chain of 300 routers, each with a route to every subnet: 1.3 MiB
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")

Path = tuple[str | int, ...]  # a field's place in the file: keys and list positions


def _checked(problem_of: Callable[[str], str | None]) -> AfterValidator:
    def check(value: str) -> str:
        problem = problem_of(value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


IfName = Annotated[str, _checked(interface_name_problem)]
NsName = Annotated[str, _checked(namespace_name_problem)]
TopoName = Annotated[str, _checked(topology_name_problem)]


def _kind_of(value: Any) -> Any:
    """Which kind's options an interface is checked against: the kind it names; a veth when it names
    none (the other end of a veth may leave `kind` out; the veth checks say so if it is not one)."""
    if isinstance(value, dict):
        return "veth" if value.get("kind") is None else value["kind"]
    return getattr(value, "kind", None) or "veth"


if TYPE_CHECKING:
    # To the type checker an interface is a LinkSpec, the options every kind has: which kinds exist is the
    # registry's business, at run time, so a kind's own options (a veth's peer) are read with getattr.
    InterfaceSpec: TypeAlias = LinkSpec
else:
    # One schema per kind, chosen by `kind:` (the registry lists them): each kind has its own options.
    # A Union of a tuple built at run time has no `X | Y` spelling, hence the noqa.
    InterfaceSpec = Annotated[
        Union[tuple(Annotated[spec, Tag(name)] for name, spec in SPECS.items())],  # noqa: UP007
        Discriminator(_kind_of),
    ]


class NamespaceSpec(Strict):
    interfaces: dict[IfName, InterfaceSpec] = Field(default_factory=dict)
    routes: list[RouteSpec] = Field(default_factory=list)
    sysctls: dict[str, Any] = Field(default_factory=dict)  # values checked by sysctls.check
    forwarding: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _lo_is_loopback(cls, data: Any) -> Any:
        """`lo` is declared by its name: its options are checked as the loopback kind's."""
        if isinstance(data, dict) and isinstance(data.get("interfaces"), dict):
            lo = data["interfaces"].get(LOOPBACK)
            if isinstance(lo, dict) and "kind" not in lo:
                data = {**data, "interfaces": {**data["interfaces"], LOOPBACK: {**lo, "kind": "loopback"}}}
        return data


class Topology(Strict):
    name: TopoName
    namespaces: dict[NsName, NamespaceSpec] = Field(default_factory=dict)


# --- YAML with positions -----------------------------------------------------------------------------

_ALIAS = "anchors and aliases are not supported"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases (alias bombs; a topology never needs them)."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # unannotated in types-PyYAML
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.MarkedYAMLError(None, None, _ALIAS, event.start_mark)
        return super().compose_node(parent, index)


if getattr(yaml, "__with_libyaml__", False):
    class _CLoader(yaml.CSafeLoader):
        """LibYAML's loader, with the tag of each plain scalar resolved once per text: the resolver tries
        its regular expressions in Python for every scalar, and a routed chain of 300 routers repeats
        the same 299 prefixes in 89,102 route destinations. A scalar's tag depends on its text alone."""

        def __init__(self, stream: str):
            super().__init__(stream)
            self._tags: dict[tuple[str, tuple[bool, bool]], str] = {}

        def resolve(self, kind: type[yaml.Node], value: str, implicit: tuple[bool, bool]) -> str:
            if kind is not yaml.ScalarNode:
                return str(super().resolve(kind, value, implicit))  # type: ignore[no-untyped-call]
            tag = self._tags.get((value, implicit))
            if tag is None:
                tag = self._tags[(value, implicit)] = super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
            return tag


@dataclass
class _Document:
    data: Any
    lines: dict[Path, int]


def _python(node: yaml.Node, path: Path, lines: dict[Path, int], loader: SafeConstructor, problems: list[Problem],
            seen: set[int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if id(node) in seen:  # the C composer turns an alias into a second reference to the anchored node
        raise yaml.MarkedYAMLError(None, None, _ALIAS, node.start_mark)
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        if node.tag != "tag:yaml.org,2002:map":
            problems.append(Problem(path, f"tag {node.tag} is not allowed", node.start_mark.line + 1))
            return None
        result: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(Problem(path, "a key must be a plain name", key_node.start_mark.line + 1))
                continue
            key = _scalar(key_node, path, loader, problems)
            if not isinstance(key, str):
                problems.append(Problem(path + (str(key),), f"a name must be a string, not {type(key).__name__} "
                                        f"(quote it: '{key_node.value}')", key_node.start_mark.line + 1))
                continue
            line = key_node.start_mark.line + 1
            if key in result:
                problems.append(Problem(path + (key,), f"duplicate key {key!r} (first at line {first_line[key]})",
                                        line))
                continue
            first_line[key] = line
            result[key] = _python(value_node, path + (key,), lines, loader, problems, seen)
            lines[path + (key,)] = line
        return result
    if isinstance(node, yaml.SequenceNode):
        if node.tag != "tag:yaml.org,2002:seq":
            problems.append(Problem(path, f"tag {node.tag} is not allowed", node.start_mark.line + 1))
            return None
        return [_python(item, path + (i,), lines, loader, problems, seen) for i, item in enumerate(node.value)]
    return _scalar(node, path, loader, problems)


def _scalar(node: yaml.Node, path: Path, loader: SafeConstructor, problems: list[Problem]) -> Any:
    if node.tag == "tag:yaml.org,2002:str":
        return node.value  # most scalars are names and addresses: no constructor needed
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        problems.append(Problem(path, _yaml_reason(exc), node.start_mark.line + 1))
        return None


def _yaml_reason(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(x for x in (exc.context, exc.problem) if x) or "invalid YAML"
    return str(exc).splitlines()[0] if str(exc) else "invalid YAML"


def _parse(text: str, file: str) -> _Document:
    # LibYAML's parser and composer where PyYAML has them: 20 times faster than the pure-Python ones on a
    # 1000-namespace file. Either way the nodes keep their line numbers, and an alias is refused.
    loader = _CLoader(text) if getattr(yaml, "__with_libyaml__", False) else _Loader(text)
    problems: list[Problem] = []
    try:
        node = loader.get_single_node()
        if node is None:
            raise ValidationError([Problem((), "the file is empty (it needs at least 'name:')", None, file)])
        lines: dict[Path, int] = {}
        data = _python(node, (), lines, loader, problems, set())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else None
        raise ValidationError([Problem((), "invalid YAML: " + _yaml_reason(exc), line, file)]) from None
    finally:
        loader.dispose()
    if problems:
        raise ValidationError([Problem(p.path, p.message, p.line, file) for p in problems])
    return _Document(data, lines)


# --- loading -------------------------------------------------------------------------------------------


def load(path: str) -> Topology:
    """Read and validate a topology file. Raises ValidationError with every problem found."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ValidationError([Problem((), f"cannot read the file: {exc.strerror}", None, path)]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ValidationError([Problem((), f"the file is larger than {MAX_FILE_BYTES} bytes", None, path)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValidationError([Problem((), "the file is not UTF-8 text", line, path)]) from None
    return loads(text, path)


def loads(text: str, file: str = "<topology>") -> Topology:
    doc = _parse(text, file)
    if not isinstance(doc.data, dict):
        raise ValidationError([Problem((), "the top level must be a mapping with 'name:' and 'namespaces:'",
                                       doc.lines.get((), 1), file)])
    try:
        topo = Topology.model_validate(doc.data)
    except PydanticValidationError as exc:
        raise ValidationError([_from_pydantic(err, doc, file) for err in exc.errors()]) from None
    problems = check(topo)
    if problems:
        raise ValidationError([Problem(p.path, p.message, _line(doc, p.path), file) for p in problems])
    return topo


def _line(doc: _Document, path: Path) -> int | None:
    while path not in doc.lines and path:
        path = path[:-1]
    return doc.lines.get(path)


def _from_pydantic(err: Any, doc: _Document, file: str) -> Problem:
    loc = tuple(p for p in err["loc"] if p != "[key]")
    kind = None
    if len(loc) > 4 and loc[0] == "namespaces" and loc[2] == "interfaces" and loc[4] in KINDS:
        kind, loc = loc[4], loc[:4] + loc[5:]  # the kind's tag is not a field of the file
    what = err["type"]
    msg = err["msg"].removeprefix("Value error, ")
    if what == "extra_forbidden":
        msg = _unknown_field(str(loc[-1]), loc, kind)
    elif what == "union_tag_invalid":
        loc += ("kind",)
        named = err["input"].get("kind")
        close = difflib.get_close_matches(str(named), DECLARABLE, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        msg = f"unknown kind {named!r}{hint} (supported: {', '.join(DECLARABLE)})"
    elif what == "model_type" and kind is not None:
        whose = "an interface is a mapping of its options" if len(loc) == 4 else f"{loc[-1]} is a mapping of its fields"
        msg = f"{whose}, not {type(err['input']).__name__} {err['input']!r}"
    elif what == "missing":
        msg = f"field {loc[-1]!r} is required"
    elif "input" in err and what.endswith("_type"):
        msg = f"{msg}, not {type(err['input']).__name__} {err['input']!r}"
    return Problem(loc, msg, _line(doc, loc), file)


def _unknown_field(field: str, loc: Path, kind: str | None) -> str:
    by_place: dict[tuple[str | None, int], type[Strict]] = {
        (None, 1): Topology, (None, 3): NamespaceSpec, ("routes", 5): RouteSpec, ("routes", 7): NexthopSpec}
    section = loc[2] if len(loc) > 2 and isinstance(loc[2], str) else None
    model = by_place.get((section if section == "routes" else None, len(loc))) if kind is None else KINDS[kind].spec
    if kind is not None and len(loc) == 6 and loc[4] == "impair":
        model, kind = impair.ImpairSpec, None
    fields = list(model.model_fields) if model else []
    owners = [name for name in DECLARABLE if field in SPECS[name].model_fields]
    if kind is not None and owners:
        return f"{field!r} is an option of {' and '.join(owners)}, not of {kind} (valid: {', '.join(fields)})"
    close = difflib.get_close_matches(field, fields, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown field {field!r}{hint} (valid: {', '.join(fields)})"


# --- cross-checks --------------------------------------------------------------------------------------


def check(topo: Topology) -> list[Problem]:
    """The rules that span fields: each kind's own (peers...), then masters, MACs and addresses. Returns
    every problem (no lines)."""
    problems: list[Problem] = []
    routes: dict[str, dict[RouteKey, Route]] = {}
    for kind in KINDS.values():
        kind.check(topo, problems)
    for ns, nspec in topo.namespaces.items():
        for name, spec in nspec.interfaces.items():
            at = ("namespaces", ns, "interfaces", name)
            if spec.master is not None:
                _check_master(topo, ns, name, spec, at + ("master",), problems)
            if spec.mac is not None:
                _check_mac(spec.mac, at + ("mac",), problems)
            impair.check(ns, name, spec, problems)
        _check_addresses(ns, nspec, problems)
        _check_parents(topo, ns, nspec, problems)
        _check_vlans(ns, nspec, problems)
        routes[ns] = routing.routes(ns, nspec, problems, owner=topo.name)
        sysctls.check(ns, nspec, problems)
    global _last_checked
    _last_checked = (topo, routes)
    return problems


_last_checked: tuple[Topology, dict[str, dict[RouteKey, Route]]] | None = None
"""The last topology checked and its routes by namespace: desired() takes them from here rather than build
them again (89,102 routes at N=300 take 0.4 s to check and build). A Topology is frozen, so they hold."""


def _check_master(topo: Topology, ns: str, name: str, spec: LinkSpec, at: Path, problems: list[Problem]) -> None:
    target = topo.namespaces[ns].interfaces.get(spec.master or "")
    if spec.master == name:
        problems.append(Problem(at, "an interface cannot be its own master"))
    elif target is None or not _kind(target).is_master:
        masters = sorted(n for n, s in topo.namespaces[ns].interfaces.items() if _kind(s).is_master)
        what = "is not defined" if target is None else "is not a bridge"
        problems.append(Problem(at, f"master {spec.master!r} {what} in namespace {ns!r} (a master must be a "
                                f"bridge in the same namespace; bridges there: {', '.join(masters) or 'none'})"))


def parent_of(ns: str, spec: LinkSpec) -> tuple[str, str] | None:
    """The (namespace, name) of an interface's `parent:` (a kind's option: vlan, macvlan, ipvlan, vxlan)."""
    text: str | None = getattr(spec, "parent", None)
    if text is None:
        return None
    pns, _, pname = text.rpartition("/")
    return (pns or ns, pname)


_DEFAULT_MTU = {"veth": 1500, "dummy": 1500, "tun": 1500, "tap": 1500}
"""The MTU the kernel gives a link of these kinds when it is made without one (ether_setup's 1500)."""


def known_mtu(topo: Topology, ns: str, name: str, seen: frozenset[tuple[str, str]] = frozenset()) -> int | None:
    """The MTU a declared link will have: its `mtu`, or the kernel's default for its kind (1500 for a veth,
    dummy, tun or tap; a vlan's, macvlan's or ipvlan's parent's); None where the file cannot say (a bridge
    follows its ports, a vxlan its parent less its header, an external link is the host's)."""
    nspec = topo.namespaces.get(ns)
    spec = nspec.interfaces.get(name) if nspec is not None else None
    if spec is None or (ns, name) in seen:
        return None
    if spec.mtu is not None:
        return spec.mtu
    kind = spec.kind or "veth"
    parent = parent_of(ns, spec)
    if kind in ("vlan", "macvlan", "ipvlan") and parent is not None:
        return known_mtu(topo, *parent, seen | {(ns, name)})
    return _DEFAULT_MTU.get(kind)


def _check_parents(topo: Topology, ns: str, nspec: NamespaceSpec, problems: list[Problem]) -> None:
    """A parent is a link of the same namespace or `namespace/name`: declared there, or (in the root
    namespace only) an external link that netlab never changes. Not lo, not a loop, not below a child's MTU;
    a macvlan's parent not a bridge's port (the kernel refuses: EBUSY)."""
    for name, spec in nspec.interfaces.items():
        parent = parent_of(ns, spec)
        if parent is None:
            continue
        at = ("namespaces", ns, "interfaces", name, "parent")
        text: str = getattr(spec, "parent")  # noqa: B009  (an option of some kinds: see InterfaceSpec)
        pns, pname = parent
        if text.count("/") > 1 or not pname or (text.startswith("/")):
            problems.append(Problem(at, f"a parent is 'interface' (of this namespace) or 'namespace/interface', "
                                        f"not {text!r}"))
            continue
        if pns != HOST and pns not in topo.namespaces:
            problems.append(Problem(at, f"namespace {pns!r} is not defined (defined: "
                                        f"{', '.join(sorted(set(topo.namespaces) | {HOST}))})"))
            continue
        if (pns, pname) == (ns, name):
            problems.append(Problem(at, "an interface cannot be its own parent"))
            continue
        if pname == LOOPBACK:
            problems.append(Problem(at, "lo cannot be a parent"))
            continue
        pspec = topo.namespaces[pns].interfaces.get(pname) if pns in topo.namespaces else None
        if pspec is None:
            if pns != HOST:
                have = sorted(topo.namespaces[pns].interfaces)
                problems.append(Problem(at, f"interface {pname!r} is not defined in namespace {pns!r} (defined "
                                            f"there: {', '.join(have) or 'none'}); only a parent in the root "
                                            "namespace (host/NAME) may be a link the topology does not declare"))
            continue  # external: it must exist when the kernel is read
        seen: list[tuple[str, str]] = [(ns, name)]
        here: tuple[str, str] | None = (pns, pname)
        while here is not None and here not in seen:
            seen.append(here)
            hspec = topo.namespaces[here[0]].interfaces.get(here[1]) if here[0] in topo.namespaces else None
            here = parent_of(here[0], hspec) if hspec is not None else None
        if here is not None:
            problems.append(Problem(at, "parents form a loop: " + " -> ".join("/".join(k) for k in [*seen, here])))
            continue
        if spec.kind in ("macvlan", "ipvlan") and pspec.kind == spec.kind:
            below = getattr(pspec, "parent", "?")
            problems.append(Problem(at, f"the kernel puts a {spec.kind} on a {spec.kind} on the lower one's own "
                                        f"parent: declare that ({below}) as the parent"))
        if spec.kind == "macvlan" and pspec.master is not None:
            problems.append(Problem(at, f"{pns}/{pname} is a port of bridge {pspec.master}: the kernel refuses "
                                        "a macvlan on a bridge's port (EBUSY); put it on the bridge itself"))
        above = known_mtu(topo, pns, pname)
        if spec.kind in ("vlan", "macvlan", "ipvlan") and spec.mtu is not None and above is not None \
                and spec.mtu > above:
            given = "" if pspec.mtu is not None else ", the kernel's default for it"
            problems.append(Problem(("namespaces", ns, "interfaces", name, "mtu"),
                                    f"mtu {spec.mtu} is above its parent {pns}/{pname}'s ({above}{given}): a "
                                    f"{spec.kind} cannot send larger frames than its parent"))


def _check_vlans(ns: str, nspec: NamespaceSpec, problems: list[Problem]) -> None:
    """`vlans`/`pvid` are a bridge port's (or a bridge's own), on a bridge with vlan_filtering on."""
    for name, spec in nspec.interfaces.items():
        if spec.vlans is None and spec.pvid is None:
            continue
        at = ("namespaces", ns, "interfaces", name)
        field = "vlans" if spec.vlans is not None else "pvid"
        bridge = spec if _kind(spec).is_master else nspec.interfaces.get(spec.master or "")
        if bridge is None:
            problems.append(Problem(at + (field,), "VLANs are a bridge port's: give the interface a master (a "
                                                   "bridge with vlan_filtering: true), or declare them on the bridge"))
        elif getattr(bridge, "vlan_filtering", None) is not True:
            which = name if bridge is spec else spec.master
            problems.append(Problem(at + (field,), f"bridge {which} filters no VLANs: give it vlan_filtering: "
                                                   "true, or the VLANs would carry nothing apart"))
        seen = set()
        for i, vid in enumerate(spec.vlans or ()):
            if vid in seen:
                problems.append(Problem(at + ("vlans", i), f"VLAN {vid} is listed twice"))
            seen.add(vid)


def vlans_of(spec: LinkSpec) -> tuple[Vlan, ...] | None:
    """The VLANs a declared port (or bridge) carries: `vlans` tagged, `pvid` as pvid and untagged (added
    if `vlans` does not list it). None where neither is declared: the kernel's (VLAN 1) are left alone."""
    if spec.vlans is None and spec.pvid is None:
        return None
    found = {vid: Vlan(vid) for vid in spec.vlans or ()}
    if spec.pvid is not None:
        found[spec.pvid] = Vlan(spec.pvid, True, True)
    return tuple(found[vid] for vid in sorted(found))


def _kind(spec: LinkSpec) -> Kind:
    return KINDS[spec.kind or "veth"]


def _check_mac(mac: str, at: Path, problems: list[Problem]) -> None:
    if not MAC.fullmatch(mac.lower()):
        problems.append(Problem(at, f"{mac!r} is not a MAC address like 02:00:00:00:00:01"))
    elif int(mac[:2], 16) & 1:
        problems.append(Problem(at, f"{mac} is a multicast address; an interface needs a unicast one "
                                "(the first octet even, e.g. 02:...)"))
    elif mac.lower() == "00:00:00:00:00:00":
        problems.append(Problem(at, "00:00:00:00:00:00 is not a usable MAC address"))


@functools.cache
def normalize_address(text: str) -> str:
    return str(_interface(text))


@functools.cache
def _interface(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    """ipaddress.ip_interface, parsed once per run: the checks and desired() both need it, per address."""
    return ipaddress.ip_interface(text)


def _check_addresses(ns: str, nspec: NamespaceSpec, problems: list[Problem]) -> None:
    seen: dict[str, str] = {}
    for name, spec in nspec.interfaces.items():
        for i, text in enumerate(spec.addresses):
            at = ("namespaces", ns, "interfaces", name, "addresses", i)
            if "/" not in text:
                problems.append(Problem(at, f"{text!r} needs a prefix length, e.g. '{text}/24'"))
                continue
            try:
                iface = _interface(text)
            except ValueError:
                problems.append(Problem(at, f"{text!r} is not an IPv4 or IPv6 address with a prefix length"))
                continue
            ip, net = iface.ip, iface.network
            if ip.is_multicast or ip.is_unspecified:
                problems.append(Problem(at, f"{text} is not a host address"))
                continue
            if ip.version == 6 and ip.is_link_local:
                problems.append(Problem(at, f"{text} is link-local: the kernel makes those itself"))
                continue
            if ip.version == 4 and net.prefixlen <= 30 and ip in (net.network_address, net.broadcast_address):
                which = "network" if ip == net.network_address else "broadcast"
                problems.append(Problem(at, f"{text} is the {which} address of {net}; pick a host address"))
                continue
            if spec.mtu is not None and ip.version == 6 and spec.mtu < 1280:
                problems.append(Problem(at, f"IPv6 needs an MTU of at least 1280 (mtu is {spec.mtu})"))
            key = str(ip)
            if key in seen:
                problems.append(Problem(at, f"{ip} is already assigned to {seen[key]} in namespace {ns!r}"))
                continue
            seen[key] = name


# --- desired state -------------------------------------------------------------------------------------


def desired(topo: Topology) -> State:
    """The state the kernel must reach for this topology."""
    peers: dict[tuple[str, str], tuple[str, str]] = {}
    for ns, nspec in topo.namespaces.items():
        for name, spec in nspec.interfaces.items():
            named: str | None = getattr(spec, "peer", None)  # a veth's option (see InterfaceSpec)
            if named:
                pns, pname = named.split("/")
                peers[(ns, name)] = (pns, pname)
                peers[(pns, pname)] = (ns, name)
    namespaces: dict[str, Namespace] = {}
    checked = _last_checked[1] if _last_checked is not None and _last_checked[0] is topo else {}
    names = set(topo.namespaces) | {HOST}
    for ns in sorted(names):
        nspec = topo.namespaces.get(ns, NamespaceSpec())
        links: dict[str, Link] = {}
        if ns != HOST:
            links[LOOPBACK] = Link(LOOPBACK, "loopback", addresses=frozenset(), up=True)
        for name, spec in nspec.interfaces.items():
            if name == LOOPBACK:
                links[LOOPBACK] = Link(LOOPBACK, "loopback", up=True,
                                       addresses=frozenset(normalize_address(a) for a in spec.addresses))
                continue
            peer = peers.get((ns, name))
            kind = spec.kind or "veth"
            links[name] = Link(
                name=name,
                kind=kind,
                peer=peer,
                master=spec.master,
                addresses=frozenset(normalize_address(a) for a in spec.addresses),
                up=spec.up,
                mtu=spec.mtu,
                mac=spec.mac.lower() if spec.mac else None,
                owner=topo.name,
                parent=parent_of(ns, spec),
                options=link_options(KINDS[kind].options(spec)),
                vlans=vlans_of(spec),
                qdisc=impair.desired(spec.impair, spec.mtu) if spec.impair is not None else None,
            )
        routes = checked[ns] if ns in checked else routing.routes(ns, nspec, [], owner=topo.name)
        namespaces[ns] = Namespace(ns, None if ns == HOST else topo.name, links, routes,
                                   sysctls.desired(ns, nspec))
    return State(namespaces)
