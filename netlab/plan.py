"""The plan: what will change, as Terraform shows it, and the ordered steps that change it. Pure data,
printable as text and as JSON.

A plan has two views of the same work. `changes` is what a person reads: one entry per object (a
namespace, a link, a veth pair), with its action (`+` create, `~` update, `-` delete, `-/+` replace) and
what it will be. `steps` is what the applier runs, in order: the kernel operations, each with its undo,
computed by the planner from the live state so that rollback is data too. Each change lists its steps;
the symbol comes from the change's action, never from the text of a reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .state import Link, Qdisc, Route, sysctl_name
from .sysctls import interface_of

FORMAT_VERSION = 4  # 3: routes and sysctls; each change says what it is about ("object"); 4: impairments

# Kernel operations, in symmetric pairs (set_sysctl, replace_route, change_qdisc and replace_qdisc are their
# own inverse).
OPS = frozenset({"create_netns", "delete_netns", "create_link", "delete_link", "add_address", "delete_address",
                 "set_master", "clear_master", "set_up", "set_down", "set_mtu", "set_mac",
                 "add_route", "delete_route", "replace_route", "set_sysctl", "change_link", "set_vlans",
                 "set_self_vlans", "add_qdisc", "delete_qdisc", "change_qdisc", "replace_qdisc"})
ROUTE_OPS = frozenset({"add_route", "delete_route", "replace_route"})
QDISC_OPS = frozenset({"add_qdisc", "delete_qdisc", "change_qdisc", "replace_qdisc"})


class Action(Enum):
    """What happens to an object, with Terraform's symbols."""

    CREATE = "+"
    UPDATE = "~"
    DELETE = "-"
    REPLACE = "-/+"

    @property
    def word(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class NewLink:
    """What a create_link step makes, and what a delete_link step removes: the link and, for a veth, the
    other end of the pair (created by the same request)."""

    link: Link
    peer: Link | None = None

    def summary(self) -> str:
        """The kind, what identifies the link, and the MTU and MAC it is made with (of each end)."""
        from .kinds import kind

        parts = [kind(self.link.kind).summary(self.link)]
        for end, prefix in ((self.link, ""), (self.peer, "peer ")):
            if end is not None:
                parts += [f"{prefix}{attr} {getattr(end, attr)}" for attr in ("mtu", "mac")
                          if getattr(end, attr) is not None]
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = {"link": self.link.to_dict()}
        if self.peer is not None:
            d["peer"] = self.peer.to_dict()
        return d


@dataclass(frozen=True)
class Step:
    """One kernel operation.

    `namespace` is where it happens (`host` for the root namespace); `name` is the link, the sysctl's
    path (set_sysctl), or None for a namespace or route step. `value` is what the step sets (an address, a
    master, an MTU, a MAC, a sysctl's value; for create_link a NewLink; for the route steps the Route, the
    new one for replace_route; for change_link the Link with the kind's options it gets; for delete_netns
    the links elsewhere that die with the namespace; for the qdisc steps the link's root Qdisc), `before`
    what was there (for delete_link, a NewLink; for replace_route, the Route replaced; for change_link, the
    Link as it was; for set_sysctl, the value, None where the object is new; for delete_qdisc,
    change_qdisc and replace_qdisc, the Qdisc as it was). `undo` is the steps that reverse this one.
    """

    op: str
    namespace: str
    name: str | None = None
    value: Any = None  # its type follows `op`, as above
    before: Any = None
    undo: tuple[Step, ...] = field(default=(), compare=False)

    def __init__(self, op: str, namespace: str, name: str | None = None, value: Any = None, before: Any = None,
                 undo: tuple[Step, ...] = ()):
        """The dataclass's own, checking `op`, without its one object.__setattr__ per field (frozen): a plan
        for a 300-router chain makes 180,000 steps."""
        if op not in OPS:
            raise ValueError(f"unknown step operation {op!r}")
        self.__dict__.update(op=op, namespace=namespace, name=name, value=value, before=before, undo=undo)

    @property
    def where(self) -> str:
        if self.op == "set_sysctl":
            return f"{self.namespace} {sysctl_name(self.name or '')}"
        return self.namespace if self.name is None else f"{self.namespace}/{self.name}"

    def describe(self) -> str:
        """The step alone, in words: how errors name it."""
        if self.op in ROUTE_OPS:
            route: Route = self.value
            return f"route {self.namespace} {route.label} ({route.summary()})"
        if self.op == "set_sysctl":
            return f"sysctl {self.where} = {self.value}"
        if self.op in QDISC_OPS:
            return f"impair {self.where} ({self.detail()})"
        if self.op in ("create_netns", "delete_netns"):
            return f"namespace {self.namespace}" + (f" ({self.detail()})" if self.value else "")
        if self.op in ("create_link", "delete_link"):
            return f"link {self.where} ({self.detail()})"
        if self.op in ("add_address", "delete_address"):
            return f"address {self.value} on {self.where}"
        return f"link {self.where}: {self.detail()}"

    def detail(self, created: bool = False) -> str:
        """What the step does to its object, as part of a change: 'master none -> br0', 'address
        +10.0.0.1/24'; for an object being `created`, what it will be: 'master br0', 'address 10.0.0.1/24'."""
        op, v, b = self.op, self.value, self.before
        if op == "create_link":
            made: NewLink = v
            return made.summary()
        if op == "delete_link":
            from .kinds import kind

            return kind(b.link.kind).summary(b.link) if b is not None else "?"
        if op == "delete_netns":
            return "; ".join(part for part in (
                f"and with it {', '.join(v)}" if v else "",
                f"not the topology's: {', '.join(b['foreign'])}" if b and b.get("foreign") else "",
                f"{', '.join(b['returned'])} back to the root namespace" if b and b.get("returned") else "",
            ) if part)
        if op == "create_netns":
            return ""
        if op in ("add_route", "delete_route"):
            return str(v.summary())
        if op == "replace_route":
            return f"{b.summary()} -> {v.summary()}"
        if op == "set_sysctl":
            return v if created or b is None else f"{b} -> {v}"
        if op in QDISC_OPS:
            from .impair import changes, summary

            if op == "change_qdisc":
                return ", ".join(changes(b, v))
            return summary(b if op == "delete_qdisc" else v)
        if op in ("add_address", "delete_address"):
            return f"address {v}" if created else f"address {'+' if op == 'add_address' else '-'}{v}"
        if op in ("set_up", "set_down"):
            return ("up" if op == "set_up" else "down") if created else \
                ("down -> up" if op == "set_up" else "up -> down")
        if op == "clear_master":
            return f"master {b} -> none"
        if op in ("set_vlans", "set_self_vlans"):  # a bridge port's VLANs; the bridge's own
            new = ", ".join(vlan.text for vlan in v) or "none"
            old_text = ", ".join(vlan.text for vlan in b) if b else "none"
            return f"vlans {new}" if created else f"vlans {old_text} -> {new}"
        if op == "change_link":
            from .kinds import kind
            from .kinds.base import show_option

            old = b.opts
            return ", ".join(f"{k} {show_option(val)}" if created else f"{k} {show_option(old.get(k))} -> "
                             f"{show_option(val)}" for k, val in kind(v.kind).changed(b, v).items())
        attr = op.removeprefix("set_")
        return f"{attr} {v}" if created else f"{attr} {b if b is not None else 'none'} -> {v}"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op, "namespace": self.namespace}
        if self.name is not None:
            d["name"] = self.name
        for key, value in (("value", self.value), ("before", self.before)):
            if value is not None:
                d[key] = value.to_dict() if isinstance(value, (NewLink, Route, Link, Qdisc)) else value
        d["description"] = self.describe()
        d["undo"] = [u.to_dict() for u in self.undo]
        return d


@dataclass(frozen=True)
class Change:
    """One object's change: what it is (`what`: a namespace, a link, for a veth pair the end it is made
    from, a route or a sysctl), where, its name (a link's, a route's label, a sysctl's; None for a
    namespace), what happens to it, why, and the positions of its steps in the plan."""

    action: Action
    namespace: str
    name: str | None
    steps: tuple[int, ...]
    reason: str = ""
    what: str = "link"

    @property
    def subject(self) -> str:
        if self.name is None:
            return f"namespace {self.namespace}"
        if self.what in ("link", "impair"):
            return f"{self.what} {self.namespace}/{self.name}"
        return f"{self.what} {self.namespace} {self.name}"

    def describe(self, steps: tuple[Step, ...]) -> str:
        """One line: the object, then what its steps do, grouped by link (a pair's other end, a
        namespace's lo), then the reason."""
        created = self.action in (Action.CREATE, Action.REPLACE)
        if self.what in ("route", "sysctl", "impair"):  # one object, no links: its steps' details in one group
            text = ", ".join(steps[i].detail(created) for i in self.steps
                             if not (self.action is Action.REPLACE and steps[i].op.startswith("delete_")))
            line = f"{self.subject}: {text}" if text else self.subject
            return f"{line}  # {self.reason}" if self.reason else line
        own = self.namespace if self.name is None else f"{self.namespace}/{self.name}"
        parts: dict[str, list[str]] = {}
        for i in self.steps:
            step = steps[i]
            if self.action is Action.REPLACE and step.op.startswith("delete_"):
                continue  # what it was is in the reason; the line says what it will be
            detail = step.detail(created)
            if step.op == "set_sysctl":  # of a namespace or link made here: under its interface's name
                iface = interface_of(step.name or "")
                where = f"{step.namespace}/{iface}" if iface and self.name is not None else own
                parts.setdefault("" if where == own else where, []).append(f"{sysctl_name(step.name or '')} {detail}")
            elif self.name is None and step.name is not None:  # a namespace's lo
                parts.setdefault("", []).append(f"{step.name} {detail}")
            elif detail:
                parts.setdefault(step.where if step.where != own else "", []).append(detail)
        groups = [", ".join(parts.pop("", []))] + [f"{where}: {', '.join(d)}" for where, d in parts.items()]
        text = "; ".join(g for g in groups if g)
        line = f"{self.subject}: {text}" if text else self.subject
        return f"{line}  # {self.reason}" if self.reason else line

    def to_dict(self, steps: tuple[Step, ...]) -> dict[str, Any]:
        d: dict[str, Any] = {"action": self.action.word, "symbol": self.action.value,
                             "object": "namespace" if self.name is None else self.what, "namespace": self.namespace}
        if self.name is not None:
            d["name"] = self.name
        if self.reason:
            d["reason"] = self.reason
        d["description"] = self.describe(steps)
        d["steps"] = list(self.steps)
        return d


@dataclass(frozen=True)
class Plan:
    topology: str
    steps: tuple[Step, ...] = ()
    changes: tuple[Change, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps

    def summary(self) -> dict[str, int]:
        """Objects to add, change and destroy; a replacement counts as one added and one destroyed."""
        n = Counter(c.action for c in self.changes)
        return {
            "add": n[Action.CREATE] + n[Action.REPLACE],
            "change": n[Action.UPDATE],
            "destroy": n[Action.DELETE] + n[Action.REPLACE],
        }

    def summary_line(self) -> str:
        if self.empty:
            return f"No changes. The kernel matches topology '{self.topology}'."
        s = self.summary()
        return f"Plan: {s['add']} to add, {s['change']} to change, {s['destroy']} to destroy."

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "topology": self.topology,
            "in_sync": self.empty,
            "summary": self.summary(),
            "changes": [c.to_dict(self.steps) for c in self.changes],
            "steps": [s.to_dict() for s in self.steps],
        }

    def render(self) -> str:
        lines = [f"  {c.action.value:<3} {c.describe(self.steps)}" for c in self.changes]
        if lines:
            lines.append("")
        lines.append(self.summary_line())
        return "\n".join(lines)
