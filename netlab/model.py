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
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from .errors import Problem, ValidationError
from .names import interface_name_problem, namespace_name_problem, topology_name_problem
from .state import HOST, LOOPBACK, Link, Namespace, State

MAX_FILE_BYTES = 1 << 20
KINDS = ("bridge", "veth")
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")

Path = tuple[Any, ...]


def _checked(problem_of):
    def check(value: str) -> str:
        problem = problem_of(value)
        if problem:
            raise ValueError(problem)
        return value

    return AfterValidator(check)


IfName = Annotated[str, _checked(interface_name_problem)]
NsName = Annotated[str, _checked(namespace_name_problem)]
TopoName = Annotated[str, _checked(topology_name_problem)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class InterfaceSpec(_Strict):
    kind: Literal["bridge", "veth"] | None = None
    peer: str | None = None
    master: str | None = None
    addresses: list[str] = Field(default_factory=list)
    mtu: int | None = Field(default=None, ge=68, le=65535)
    mac: str | None = None
    up: bool = True


class NamespaceSpec(_Strict):
    interfaces: dict[IfName, InterfaceSpec] = Field(default_factory=dict)


class Topology(_Strict):
    name: TopoName
    namespaces: dict[NsName, NamespaceSpec] = Field(default_factory=dict)


# --- YAML with positions -----------------------------------------------------------------------------

_ALIAS = "anchors and aliases are not supported"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases (alias bombs; a topology never needs them)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.MarkedYAMLError(None, None, _ALIAS, event.start_mark)
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.MarkedYAMLError(None, None, _ALIAS, event.start_mark)
        return super().compose_node(parent, index)


@dataclass
class _Document:
    data: Any
    lines: dict[Path, int]


def _python(node, path: Path, lines: dict[Path, int], loader, problems: list[Problem], seen: set[int]):
    lines[path] = node.start_mark.line + 1
    if id(node) in seen:  # the C composer turns an alias into a second reference to the anchored node
        raise yaml.MarkedYAMLError(None, None, _ALIAS, node.start_mark)
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        if node.tag != "tag:yaml.org,2002:map":
            problems.append(Problem(path, f"tag {node.tag} is not allowed", node.start_mark.line + 1))
            return None
        result: dict = {}
        first_line: dict = {}
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


def _scalar(node, path: Path, loader, problems: list[Problem]):
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
    loader = yaml.CSafeLoader(text) if getattr(yaml, "__with_libyaml__", False) else _Loader(text)
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


_MODEL_AT_DEPTH = {0: Topology, 2: NamespaceSpec, 4: InterfaceSpec}


def _from_pydantic(err: dict, doc: _Document, file: str) -> Problem:
    loc = tuple(p for p in err["loc"] if p != "[key]")
    kind = err["type"]
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        model = _MODEL_AT_DEPTH.get(len(loc) - 1)
        fields = list(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), fields, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        msg = f"unknown field {loc[-1]!r}{hint} (valid: {', '.join(fields)})"
    elif kind == "literal_error" and loc[-1:] == ("kind",):
        msg = f"unknown kind {err['input']!r} (supported: {', '.join(KINDS)})"
    elif kind == "missing":
        msg = f"field {loc[-1]!r} is required"
    elif "input" in err and kind.endswith("_type"):
        msg = f"{msg}, not {type(err['input']).__name__} {err['input']!r}"
    return Problem(loc, msg, _line(doc, loc), file)


# --- cross-checks --------------------------------------------------------------------------------------


def check(topo: Topology) -> list[Problem]:
    """The rules that span fields: peers, masters, addresses, MACs. Returns every problem (no lines)."""
    problems: list[Problem] = []
    defined = sorted(topo.namespaces)
    claimed: dict[tuple[str, str], tuple[str, str]] = {}  # peer end -> the veth end that names it

    for ns, nspec in topo.namespaces.items():
        for name, spec in nspec.interfaces.items():
            at = ("namespaces", ns, "interfaces", name)
            if name == LOOPBACK:
                problems.append(Problem(at, "lo is managed by netlab (always up); it cannot be declared"))
                continue
            if spec.peer is not None and spec.kind not in (None, "veth"):
                problems.append(Problem(at + ("peer",), f"only a veth has a peer, and this is a {spec.kind}"))
            if spec.kind == "veth" and spec.peer is None:
                problems.append(Problem(at + ("peer",), "a veth needs a peer: 'namespace/interface'"))
            if spec.peer is not None:
                target = _check_peer(topo, ns, name, spec.peer, at + ("peer",), defined, problems)
                if target:
                    other = claimed.get(target)
                    if other and other != (ns, name):
                        problems.append(Problem(at + ("peer",), f"{'/'.join(target)} is already the peer of "
                                                f"{'/'.join(other)}; a veth has exactly two ends"))
                    claimed[target] = (ns, name)
                    claimed.setdefault((ns, name), target)
            if spec.master is not None:
                _check_master(topo, ns, name, spec, at + ("master",), problems)
            if spec.mac is not None:
                _check_mac(spec.mac, at + ("mac",), problems)

    for ns, nspec in topo.namespaces.items():
        for name, spec in nspec.interfaces.items():
            if name != LOOPBACK and spec.kind is None and (ns, name) not in claimed:
                problems.append(Problem(("namespaces", ns, "interfaces", name, "kind"),
                                        f"kind is required (one of: {', '.join(KINDS)}) unless the interface "
                                        "is the peer of a veth"))
        _check_addresses(ns, nspec, problems)
    return problems


def _check_peer(topo, ns, name, peer, at, defined, problems) -> tuple[str, str] | None:
    parts = peer.split("/")
    if len(parts) != 2 or not all(parts):
        problems.append(Problem(at, f"a peer is written 'namespace/interface', not {peer!r}"))
        return None
    pns, pname = parts
    if pns not in topo.namespaces:
        problems.append(Problem(at, f"namespace {pns!r} is not defined (defined: {', '.join(defined)})"))
        return None
    if (pns, pname) == (ns, name):
        problems.append(Problem(at, "a veth cannot be its own peer"))
        return None
    pspec = topo.namespaces[pns].interfaces.get(pname)
    if pspec is None:
        have = sorted(topo.namespaces[pns].interfaces)
        problems.append(Problem(at, f"interface {pname!r} is not defined in namespace {pns!r} "
                                f"(defined there: {', '.join(have) or 'none'}); declare it, e.g. "
                                f"'{pname}: {{addresses: [...]}}'"))
        return None
    if pspec.kind not in (None, "veth"):
        problems.append(Problem(at, f"{peer} is a {pspec.kind}, not a veth"))
        return None
    if pspec.peer is not None and pspec.peer != f"{ns}/{name}":
        problems.append(Problem(at, f"the two ends disagree: {ns}/{name} names {peer} as its peer, but {peer} "
                                f"names {pspec.peer}"))
        return None
    return (pns, pname)


def _check_master(topo, ns, name, spec, at, problems) -> None:
    target = topo.namespaces[ns].interfaces.get(spec.master)
    if spec.master == name:
        problems.append(Problem(at, "an interface cannot be its own master"))
    elif target is None or target.kind != "bridge":
        bridges = sorted(n for n, s in topo.namespaces[ns].interfaces.items() if s.kind == "bridge")
        what = "is not defined" if target is None else "is not a bridge"
        problems.append(Problem(at, f"master {spec.master!r} {what} in namespace {ns!r} (a master must be a "
                                f"bridge in the same namespace; bridges there: {', '.join(bridges) or 'none'})"))
    elif spec.kind == "bridge":
        problems.append(Problem(at, "a bridge cannot be a port of another bridge"))


def _check_mac(mac: str, at, problems) -> None:
    if not MAC.fullmatch(mac.lower()):
        problems.append(Problem(at, f"{mac!r} is not a MAC address like 02:00:00:00:00:01"))
    elif int(mac[:2], 16) & 1:
        problems.append(Problem(at, f"{mac} is a multicast address; an interface needs a unicast one "
                                "(the first octet even, e.g. 02:...)"))
    elif mac.lower() == "00:00:00:00:00:00":
        problems.append(Problem(at, "00:00:00:00:00:00 is not a usable MAC address"))


@functools.lru_cache(maxsize=None)
def normalize_address(text: str) -> str:
    return str(_interface(text))


@functools.lru_cache(maxsize=None)
def _interface(text: str):
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
            if spec.peer:
                pns, pname = spec.peer.split("/")
                peers[(ns, name)] = (pns, pname)
                peers[(pns, pname)] = (ns, name)
    namespaces: dict[str, Namespace] = {}
    names = set(topo.namespaces) | {HOST}
    for ns in sorted(names):
        nspec = topo.namespaces.get(ns, NamespaceSpec())
        links: dict[str, Link] = {}
        if ns != HOST:
            links[LOOPBACK] = Link(LOOPBACK, "loopback", addresses=None, up=True)
        for name, spec in nspec.interfaces.items():
            peer = peers.get((ns, name))
            links[name] = Link(
                name=name,
                kind=spec.kind or "veth",
                peer=peer,
                master=spec.master,
                addresses=frozenset(normalize_address(a) for a in spec.addresses),
                up=spec.up,
                mtu=spec.mtu,
                mac=spec.mac.lower() if spec.mac else None,
                owner=topo.name,
            )
        namespaces[ns] = Namespace(ns, None if ns == HOST else topo.name, links)
    return State(namespaces)
