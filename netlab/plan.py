"""The plan: an ordered tuple of typed steps. Pure data, printable as text (Terraform-like) and as JSON.

The applier does exactly what a plan says and nothing else; every step carries its own undo, computed by
the planner from the live state, so that rollback is data too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 1

# Step actions in symmetric pairs. The symbol is how `diff` shows the step.
ADD = {"create_netns", "create_link", "add_address"}
DESTROY = {"delete_netns", "delete_link", "delete_address"}
CHANGE = {"set_master", "clear_master", "set_up", "set_down", "set_mtu", "set_mac"}
ACTIONS = ADD | DESTROY | CHANGE


@dataclass(frozen=True)
class Step:
    """One kernel operation.

    `namespace` is where it happens (`host` for the root namespace); `name` is the link, or None for a
    namespace step. `value` is what the step sets (an address, a master, an MTU, a MAC; for create_link the
    link's spec; for delete_netns the veth ends elsewhere that die with the namespace), `before` what was
    there. `undo` is the steps that reverse this one.
    """

    action: str
    namespace: str
    name: str | None = None
    value: Any = None
    before: Any = None
    reason: str = ""
    undo: tuple["Step", ...] = field(default=(), compare=False)

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise ValueError(f"unknown step action {self.action!r}")

    @property
    def where(self) -> str:
        return self.namespace if self.name is None else f"{self.namespace}/{self.name}"

    @property
    def symbol(self) -> str:
        if self.action in ADD:
            return "+"
        if self.action in DESTROY:
            return "-/+" if self.reason.startswith("replace") else "-"
        return "~"

    def describe(self) -> str:
        a, v, b = self.action, self.value, self.before
        if a in ("create_netns", "delete_netns"):
            text = f"namespace {self.namespace}"
            if a == "delete_netns" and v:
                text += f" (and with it {', '.join(v)})"
        elif a in ("create_link", "delete_link"):
            spec = v if a == "create_link" else b
            text = f"link {self.where} ({_link_summary(spec)})"
        elif a in ("add_address", "delete_address"):
            text = f"address {v} on {self.where}"
        elif a == "set_master":
            text = f"link {self.where}: master {b or 'none'} -> {v}"
        elif a == "clear_master":
            text = f"link {self.where}: master {b} -> none"
        elif a in ("set_up", "set_down"):
            text = f"link {self.where}: {'down -> up' if a == 'set_up' else 'up -> down'}"
        else:
            field_name = a.removeprefix("set_")
            text = f"link {self.where}: {field_name} {b if b is not None else '?'} -> {v}"
        if self.reason and not self.reason.startswith("replace"):
            text += f"  # {self.reason}"
        elif self.reason:
            text += f"  # {self.reason.removeprefix('replace: ')}"
        return text

    def to_dict(self) -> dict:
        d: dict = {"action": self.action, "namespace": self.namespace}
        if self.name is not None:
            d["name"] = self.name
        if self.value is not None:
            d["value"] = self.value
        if self.before is not None:
            d["before"] = self.before
        if self.reason:
            d["reason"] = self.reason
        d["description"] = self.describe()
        d["undo"] = [u.to_dict() for u in self.undo]
        return d


def _link_summary(spec: dict | None) -> str:
    if not spec:
        return "?"
    parts = [spec.get("kind", "?")]
    peer = spec.get("peer")
    if peer:
        parts.append(f"peer {peer['namespace']}/{peer['name']}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Plan:
    topology: str
    steps: tuple[Step, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.steps

    def summary(self) -> dict[str, int]:
        return {
            "add": sum(s.action in ADD for s in self.steps),
            "change": sum(s.action in CHANGE for s in self.steps),
            "destroy": sum(s.action in DESTROY for s in self.steps),
        }

    def summary_line(self) -> str:
        if self.empty:
            return f"No changes. The kernel matches topology '{self.topology}'."
        s = self.summary()
        return f"Plan: {s['add']} to add, {s['change']} to change, {s['destroy']} to destroy."

    def to_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "topology": self.topology,
            "in_sync": self.empty,
            "summary": self.summary(),
            "steps": [s.to_dict() for s in self.steps],
        }

    def render(self) -> str:
        lines = [f"  {s.symbol:<3} {s.describe()}" for s in self.steps]
        if lines:
            lines.append("")
        lines.append(self.summary_line())
        return "\n".join(lines)
