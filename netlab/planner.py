"""Planning: `plan(desired, live, topology)` is a pure function from two States to a Plan.

No netlink, no root, no I/O: every case is unit-testable with golden files. The rules:

- Ownership first. A namespace or link that the topology wants and that exists without this topology's
  mark is a CONFLICT, reported (all of them) before any step is planned. Only objects that carry the mark
  are ever changed or deleted; a foreign port on an owned bridge, or a foreign namespace, is never touched.
  A namespace is deleted with everything in it, so one that holds links that are not the topology's (or
  whose veths reach out to a user's link) is a CONFLICT too, unless `force` is given.
- The plan is built in named phases, in this order (PHASES): unroute (delete routes that go, and those
  the kernel would delete as a side effect of what follows), shrink (delete addresses, clear masters, set
  down), delete (links, namespaces), create (namespaces, then links kind by kind in the registry's order),
  sysctl (those that rewrite others first, per-interface ones last), modify (MTU, MAC), grow (set masters,
  add addresses), up (bridges last), impair (root qdiscs), route (add and replace routes, once what they
  go through is there).
  Routes are deleted first and added last so that each undo, run in reverse, finds what it needs: a route
  put back finds its link and its gateway's subnet back.
- A link is replaced (deleted, then created) when its kind changed or its kind says the change cannot be
  made in place (a veth whose peer changed).
- Every step carries its undo, computed here from the live state.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from . import sysctls
from .errors import ConflictError, MissingError
from .kinds import KINDS, create_order, kind
from .plan import Action, Change, NewLink, Plan, Step
from .state import (
    HOST,
    LOOPBACK,
    Link,
    Namespace,
    Qdisc,
    Route,
    RouteKey,
    State,
    sorted_addresses,
    sysctl_name,
    without_links,
)

Key = tuple[str, str]  # (namespace, link name)
Subject = tuple[str, str, str | None]  # what a change is about: ("namespace", ns, None), ("link", ns, name),
# ("route", ns, label), ("sysctl", ns, name), ("impair", ns, link name)

GONE = "not in the topology"
DESTROY = "destroy"


def plan(desired: State, live: State, topology: str, *, destroy: bool = False, force: bool = False) -> Plan:
    """The steps that turn `live` into `desired`, touching only objects marked as `topology`'s. `destroy`
    gives the reason objects go; `force` lets a namespace go with links in it that are not the topology's
    (they are listed in the plan)."""
    _refuse_conflicts(desired, live, topology)
    _require_parents(desired, live)
    work = _Work(desired, live, topology, DESTROY if destroy else GONE, force)
    for phase in PHASES:
        phase(work)
    return work.plan()


@dataclass
class _Work:
    """The planner's working state, shared by the phases."""

    desired: State
    live: State
    topology: str
    gone_reason: str
    force: bool
    gone_ns: list[str] = field(init=False)
    doomed: dict[Key, str] = field(init=False)  # owned links deleted explicitly, with the reason
    removed: set[Key] = field(init=False)  # every link that goes, explicitly or with its namespace
    after: State = field(init=False)  # live, less what goes; then plus what is created
    staying: list[tuple[str, Link, Link]] = field(init=False)  # (namespace, desired, live) of links kept
    fresh: dict[Key, Link] = field(default_factory=dict)  # links created here, as they are when made
    steps: list[Step] = field(default_factory=list)
    subjects: list[Subject] = field(default_factory=list)  # per step, the change it is part of
    reasons: dict[Subject, str] = field(default_factory=dict)
    made_from: dict[Key, Key] = field(default_factory=dict)  # a created veth's other end -> the end it is made from
    routes: dict[str, dict[RouteKey, Route]] = field(default_factory=dict)  # live routes of ours that stay
    fresh_ns: set[str] = field(default_factory=set)  # namespaces created here

    def __post_init__(self) -> None:
        live, topology = self.live, self.topology
        gone = sorted(n for n, ns in live.namespaces.items()
                      if n != HOST and ns.owner == topology and n not in self.desired.namespaces)
        self.gone_ns = _children_first(live, gone)
        self.doomed = _doomed_links(self.desired, live, topology, set(self.gone_ns))
        removed: set[Key] = set(self.doomed)
        for key in self.doomed:  # a veth dies whole, even the end in a namespace that is not ours
            link = live.link(*key)
            if link is not None and link.peer:
                removed.add(link.peer)
        for ns in self.gone_ns:
            for name, link in live.namespaces[ns].links.items():
                removed.add((ns, name))
                if link.peer:
                    removed.add(link.peer)  # a veth with an end in a removed namespace dies with it
        self._children_go(removed)
        self.removed = removed
        after = without_links(live, removed)
        self.after = State({n: ns for n, ns in after.namespaces.items() if n not in self.gone_ns})
        self.staying = [(ns, want, have) for ns, want in _desired_links(self.desired)
                        if (have := self.after.link(ns, want.name)) is not None]

    def _children_go(self, removed: set[Key]) -> None:
        """The kernel deletes a vlan, macvlan, ipvlan or vxlan with the link it sits on: a child of a link
        that goes is deleted explicitly first (its undo then rebuilds it after its parent's) and created
        again if the topology still has it. A child that is not the topology's is a CONFLICT, unless
        `force`."""
        foreign = []
        while True:
            more = [(ns, link) for ns, have_ns in self.live.namespaces.items() for link in have_ns.links.values()
                    if link.parent in removed and (ns, link.name) not in removed]
            if not more:
                break
            for ns, link in more:
                removed.add((ns, link.name))
                parent = "/".join(link.parent or ())
                if link.owner != self.topology:
                    foreign.append(f"{ns}/{link.name} ({kind(link.kind).summary(link)})")
                    continue
                gone = self.desired.link(*link.parent) is None if link.parent else True
                self.doomed[(ns, link.name)] = f"its parent {parent} is {'deleted' if gone else 'replaced'}"
        if foreign and not self.force:
            raise ConflictError(
                "refusing to delete links that others sit on: the kernel would delete with them links topology '"
                + self.topology + "' did not make; nothing was changed:\n  " + "\n  ".join(foreign)
                + "\n  fix: move or delete them first, or give --force to let the kernel delete them")

    def add(self, step: Step, subject: Subject | None = None, reason: str = "") -> None:
        if subject is None:
            if step.name is None or step.name == LOOPBACK:
                subject = ("namespace", step.namespace, None)
            else:
                key = self.made_from.get((step.namespace, step.name), (step.namespace, step.name))
                subject = ("link", *key)
        self.steps.append(step)
        self.subjects.append(subject)
        if reason:
            self.reasons.setdefault(subject, reason)

    def reason(self, step: Step) -> str:
        """Why a link goes: not in the topology (or destroyed with it), or why it is replaced."""
        why = self.doomed[(step.namespace, step.name or "")]
        return self.gone_reason if why == GONE else why

    def current(self, ns: str, want: Link) -> Link | None:
        """The link as it is when the later phases run: just created, or kept."""
        return self.fresh.get((ns, want.name)) or self.after.link(ns, want.name)

    def plan(self) -> Plan:
        """The steps, and one change per subject in the order subjects first appear. A subject with a
        create step and a delete step is replaced; with only one of them, created or deleted."""
        positions: dict[Subject, list[int]] = {}
        for i, subject in enumerate(self.subjects):
            positions.setdefault(subject, []).append(i)
        changes = []
        steps, reasons = self.steps, self.reasons
        for subject, where in positions.items():
            effect = 0
            for i in where:
                effect |= _EFFECT.get(steps[i].op, 0)
            changes.append(Change(_ACTIONS[effect], subject[1], subject[2], tuple(where), reasons.get(subject, ""),
                                  subject[0]))
        return Plan(self.topology, tuple(self.steps), tuple(changes))


_CREATES, _DELETES = 1, 2
_EFFECT = {"create_link": _CREATES, "create_netns": _CREATES, "add_route": _CREATES, "add_qdisc": _CREATES,
           "delete_link": _DELETES, "delete_netns": _DELETES, "delete_route": _DELETES, "delete_qdisc": _DELETES,
           "replace_qdisc": _CREATES | _DELETES}
_ACTIONS = {0: Action.UPDATE, _CREATES: Action.CREATE, _DELETES: Action.DELETE, _CREATES | _DELETES: Action.REPLACE}
"""A change's action from its steps: what they create and delete, or-ed."""


# --- phases ------------------------------------------------------------------------------------------------


def _unroute(w: _Work) -> None:
    """Delete the routes of ours that go: not in the topology, changed where a change in place could not
    be undone, or about to be deleted by the kernel as a side effect of a later step (their link goes, or
    goes down; the last IPv4 address of their link, or their source address, is deleted). What stays is
    `w.routes`, which the route phase compares with the topology."""
    staying: dict[str, list[tuple[Link, Link]]] = {}
    for ns, want_link, have_link in w.staying:
        staying.setdefault(ns, []).append((want_link, have_link))
    for ns_name, have_ns in sorted(w.live.namespaces.items()):
        if ns_name in w.gone_ns or (ns_name != HOST and have_ns.owner != w.topology):
            continue
        want_ns = w.desired.namespaces.get(ns_name)
        want_routes = want_ns.routes if want_ns else {}
        dying = _dying_routes(w, ns_name, staying.get(ns_name, ())) if have_ns.routes else {}
        kept: dict[RouteKey, Route] = {}
        for key, have in sorted(have_ns.routes.items()):
            if have.owner != w.topology:
                continue
            want = want_routes.get(key)
            why = w.gone_reason if want is None else dying.get(key)
            if why is None and want is not None and want != have and not _holds_after(w, ns_name, have):
                why = "changed, and the route it was could not be put back in place"
            if why is None:
                kept[key] = have
                continue
            w.add(Step("delete_route", ns_name, value=have, undo=(Step("add_route", ns_name, value=have),)),
                  ("route", ns_name, have.label), why)
        w.routes[ns_name] = kept


def _shrink(w: _Work) -> None:
    """Take from links that stay what the topology no longer gives them: addresses, masters, up. A link
    that goes down loses its IPv6 addresses (the kernel's default, keep_addr_on_down=0): they are deleted
    first, so that undo puts them back once it is up again, and added again by the grow phase."""
    for ns, want, have in w.staying:
        if want.addresses is not None and have.addresses is not None:
            gone = have.addresses - want.addresses
            if have.up and not want.up:
                gone |= {a for a in have.addresses if ":" in a}
            for addr in sorted_addresses(gone):
                w.add(_paired("delete_address", "add_address", ns, want.name, addr))
            if gone & want.addresses:
                w.after = _with_link(w.after, ns, replace(have, addresses=have.addresses - gone))
    for ns, want, have in w.staying:
        if have.master is not None and want.master is None:
            w.add(Step("clear_master", ns, want.name, before=have.master,
                       undo=(Step("set_master", ns, want.name, have.master),)))
    for ns, want, have in w.staying:
        if have.up and not want.up:
            w.add(Step("set_down", ns, want.name, undo=(Step("set_up", ns, want.name),)))


def _delete(w: _Work) -> None:
    """Delete what goes: links, then namespaces (with the veths that have an end in them), then masters;
    so that undo, run in reverse, recreates a bridge before the ports that join it."""
    links = sorted(_delete_link_steps(w), key=lambda ss: -_depth(w.live, ss[0].namespace, ss[0].name or ""))
    for step, subject in links:
        if not kind(step.before.link.kind).is_master:
            w.add(step, subject, w.reason(step))
    rank = {ns: i for i, ns in enumerate(w.gone_ns)}
    foreign = _dying_foreign(w)
    tails = _put_back_later(w, rank)
    for ns in w.gone_ns:
        # The links elsewhere that die with it (the adapter waits for them: their names are taken until
        # the kernel's teardown ends), and what in it is not the topology's (listed, with --force).
        ends = _dies_with(w.live.namespaces[ns], rank, w.doomed)
        before = {k: v for k, v in foreign[ns].items() if v}
        w.add(Step("delete_netns", ns, value=ends or None, before=before or None,
                   undo=_rebuild_namespace(w.live, ns, rank, w.doomed, w.topology) + tuple(tails.get(ns, ()))),
              reason=w.gone_reason)
    for step, subject in links:
        if kind(step.before.link.kind).is_master:
            w.add(step, subject, w.reason(step))


def _create(w: _Work) -> None:
    """Create what is missing: namespaces, then links kind by kind (a bridge before its ports), each veth
    pair once, from the end that comes first. Undoing a namespace's creation deletes it, and with it the
    veths that will have an end in it: the adapter waits for their other ends to go."""
    for ns in sorted(w.desired.namespaces):
        if ns != HOST and ns not in w.after.namespaces:
            w.add(Step("create_netns", ns, undo=(
                Step("delete_netns", ns, value=_dies_with(w.desired.namespaces[ns], {ns: 0}, {})),)))
            w.after = State({**w.after.namespaces, ns: Namespace(ns, w.topology, {
                LOOPBACK: Link(LOOPBACK, "loopback", addresses=frozenset(), up=False)})})
            w.fresh_ns.add(ns)
    wanted = [(ns, want) for ns, want in _desired_links(w.desired) if w.after.link(ns, want.name) is None]
    for ns, want in sorted(wanted, key=lambda nw: (_depth(w.desired, nw[0], nw[1].name), create_order(nw[1].kind))):
        if (ns, want.name) in w.fresh:
            continue  # a veth pair, created from its other end
        peer = w.desired.link(*want.peer) if want.peer else None
        made = NewLink(_as_created(want), _as_created(peer) if peer else None)
        w.add(Step("create_link", ns, want.name, made, undo=(Step("delete_link", ns, want.name),)))
        for where, end in ((ns, want), *(((want.peer[0], peer),) if peer and want.peer else ())):
            w.fresh[(where, end.name)] = replace(_as_created(end), master=None, addresses=frozenset(), up=False,
                                                 vlans=None, qdisc=None)
            if (where, end.name) != (ns, want.name):
                w.made_from[(where, end.name)] = (ns, want.name)


def _sysctl(w: _Work) -> None:
    """Write the sysctls that differ: those that make the kernel rewrite others first (their undo puts the
    rewritten ones back too), then namespace-wide ones, then per-interface ones. A sysctl of a namespace or
    interface made by this plan has no undo of its own: undoing the creation removes it."""
    for ns_name, want_ns in sorted(w.desired.namespaces.items()):
        if not want_ns.sysctls:
            continue
        have_ns = w.live.namespaces.get(ns_name) if ns_name not in w.fresh_ns else None
        have_values: Mapping[str, str] = have_ns.sysctls if have_ns is not None else {}
        expect = dict(have_values)  # what the kernel holds once this plan's writes before the next are done
        for path in sorted(want_ns.sysctls, key=sysctls.write_order):
            value = want_ns.sysctls[path]
            iface = sysctls.interface_of(path)
            subject: Subject = ("sysctl", ns_name, sysctl_name(path))
            if have_ns is None:
                subject, old = ("namespace", ns_name, None), None
            elif iface is not None and (ns_name, iface) in w.fresh:
                subject, old = ("link", *w.made_from.get((ns_name, iface), (ns_name, iface))), None
            else:
                old = expect.get(path)  # a key an earlier write of this plan rewrote is written again
                if old == value:
                    continue
            undo: tuple[Step, ...] = ()
            if old is not None:
                undo = (Step("set_sysctl", ns_name, path, old, before=value),)
                undo += tuple(Step("set_sysctl", ns_name, k, have_values[k])
                              for k in sorted(sysctls.rewritten(path, have_values))
                              if (ns_name, sysctls.interface_of(k) or "") not in w.removed
                              and k not in ("net/ipv4/ip_forward", "net/ipv4/conf/all/forwarding"))
            w.add(Step("set_sysctl", ns_name, path, value, before=old, undo=undo), subject)
            expect.update(dict.fromkeys(sysctls.rewritten(path, expect), value))
            expect[path] = value


def _modify(w: _Work) -> None:
    """Change in place the kind's options that the kernel changes so (a macvlan's mode), then set the MTU
    and MAC of links that stay, and the MTU of new links whose kind takes it only by a request of its own
    (a bridge). A child's MTU may not exceed its parent's: MTUs that go down are set children first, then
    those that go up, parents first."""
    for ns, want, have in w.staying:
        if want.options and kind(want.kind).changed(have, want):
            w.add(Step("change_link", ns, want.name, want, before=have,
                       undo=(Step("change_link", ns, want.name, have, before=want),)))
    changing = [(ns, want, have) for ns, want, have in w.staying]
    changing += [(ns, want, w.fresh[(ns, want.name)]) for ns, want in _desired_links(w.desired)
                 if (ns, want.name) in w.fresh]
    # A parent whose MTU goes down takes its children's down with it (the kernel lowers a vlan's; a vxlan
    # keeps room for its header): a child that leaves its MTU to the kernel is lowered explicitly first, so
    # that undo raises it back.
    lowered: dict[Key, int] = {}  # the links whose MTU goes down, by parent depth (a vxlan on a vlan on eth0)
    mtus = []
    for ns, want, have in sorted(changing, key=lambda c: _depth(w.desired, c[0], c[1].name)):
        mtu = want.mtu
        room = kind(want.kind).headroom(want) if want.parent in lowered else None
        if mtu is None and room is not None and have.mtu is not None and want.parent is not None \
                and have.mtu > lowered[want.parent] - room:
            mtu = lowered[want.parent] - room
        if mtu is not None and have.mtu is not None and mtu < have.mtu:
            lowered[(ns, want.name)] = mtu
        if mtu is not None and mtu != have.mtu:
            down = have.mtu is not None and mtu < have.mtu
            depth = _depth(w.desired, ns, want.name)
            mtus.append(((not down, -depth if down else depth), ns, want, have, mtu))
    for _, ns, want, have, mtu in sorted(mtus, key=lambda m: m[0]):
        undo = (Step("set_mtu", ns, want.name, have.mtu, before=mtu),) if have.mtu is not None else ()
        w.add(Step("set_mtu", ns, want.name, mtu, before=have.mtu, undo=undo))
    for ns, want, have in changing:
        if want.mac is not None and want.mac != have.mac:
            undo = (Step("set_mac", ns, want.name, have.mac, before=want.mac),) if have.mac is not None else ()
            w.add(Step("set_mac", ns, want.name, want.mac, before=have.mac, undo=undo))


def _grow(w: _Work) -> None:
    """Join links to their masters, set their bridge VLANs, then add the addresses they lack."""
    for ns, want in _desired_links(w.desired):
        have = w.current(ns, want)
        if have is not None and want.master is not None and have.master != want.master:
            undo = (Step("set_master", ns, want.name, have.master, before=want.master) if have.master
                    else Step("clear_master", ns, want.name, before=want.master))
            w.add(Step("set_master", ns, want.name, want.master, before=have.master, undo=(undo,)))
    for ns, want in _desired_links(w.desired):  # VLANs once a port is in its bridge (joining gives it VLAN 1)
        have = w.current(ns, want)
        if have is not None and want.vlans is not None and have.vlans != want.vlans:
            op = "set_self_vlans" if kind(want.kind).is_master else "set_vlans"
            back = (Step(op, ns, want.name, have.vlans, before=want.vlans),) if have.vlans is not None else ()
            w.add(Step(op, ns, want.name, want.vlans, before=have.vlans, undo=back))
    for ns, want in _desired_links(w.desired):
        have = w.current(ns, want)
        if have is not None and want.addresses is not None and have.addresses is not None:
            for addr in sorted_addresses(want.addresses - have.addresses):
                w.add(_paired("add_address", "delete_address", ns, want.name, addr))


def _up(w: _Work) -> None:
    """Bring links up, masters last, once their ports are wired: a bridge that forwards while a thousand
    ports come up floods each one's IPv6 autoconfiguration traffic to all the others."""
    ups = [(ns, want) for ns, want in _desired_links(w.desired, loopback_first=True)
           if want.up and (have := w.current(ns, want)) is not None and not have.up]
    for ns, want in sorted(ups, key=lambda nw: kind(nw[1].kind).is_master):
        w.add(Step("set_up", ns, want.name, undo=(Step("set_down", ns, want.name),)))


def _impair(w: _Work) -> None:
    """Give links the root qdisc their `impair` asks for: added in the place of the kernel's default,
    changed in place where its handle (its kind, and netem's distribution table) stays, else grafted in the
    old one's place in one step; deleted (the kernel's default comes back) where the topology no longer
    impairs the link. Another's root qdisc was refused as a CONFLICT."""
    for ns, want in _desired_links(w.desired):
        have = w.current(ns, want)
        old = have.qdisc if have is not None and have.qdisc is not None and have.qdisc.ours else None
        new = want.qdisc
        if have is None or old == new:
            continue
        subject: Subject = ("impair", ns, want.name)
        if new is None:
            assert old is not None
            w.add(_deleted_qdisc(ns, want.name, old), subject, w.gone_reason)
        elif old is None:
            w.add(_added_qdisc(ns, want.name, new), subject)
        elif old.handle == new.handle:
            w.add(Step("change_qdisc", ns, want.name, new, before=old,
                       undo=(Step("change_qdisc", ns, want.name, old, before=new),)), subject)
        else:
            why = f"{old.kind} -> {new.kind}" if old.kind != new.kind else \
                f"distribution {old.distribution or 'none'} -> {new.distribution or 'none'}"
            if old.kind == new.kind == "netem" and (_duplicates(old) or _duplicates(new)):
                # The kernel refuses a duplicating netem beside another in one tree, the one being
                # grafted over included (sch_netem.c check_netem_in_tree, 2025, in 6.1.y too): delete, add.
                w.add(_deleted_qdisc(ns, want.name, old), subject, why)
                w.add(_added_qdisc(ns, want.name, new), subject)
            else:
                w.add(Step("replace_qdisc", ns, want.name, new, before=old,
                           undo=(Step("replace_qdisc", ns, want.name, old, before=new),)), subject, why)


def _added_qdisc(ns: str, name: str, qdisc: Qdisc) -> Step:
    return Step("add_qdisc", ns, name, qdisc, undo=(Step("delete_qdisc", ns, name, before=qdisc),))


def _deleted_qdisc(ns: str, name: str, qdisc: Qdisc) -> Step:
    return Step("delete_qdisc", ns, name, before=qdisc, undo=(Step("add_qdisc", ns, name, qdisc),))


def _duplicates(qdisc: Qdisc) -> bool:
    return bool(dict(qdisc.params).get("duplicate", (0,))[0])


def _route(w: _Work) -> None:
    """Add the routes that are missing and replace, in place, those that differ. Routes through a device
    only come first: a gateway may be reachable through one of them."""
    for ns_name, want_ns in sorted(w.desired.namespaces.items(), key=lambda kv: (kv[0] != HOST, kv[0])):
        have_routes = w.routes.get(ns_name, {})
        for key, want in sorted(want_ns.routes.items(), key=lambda kv: (kv[1].via is not None or
                                                                         bool(kv[1].nexthops), kv[0])):
            have = have_routes.get(key)
            if have is None:
                w.add(Step("add_route", ns_name, value=want, undo=(Step("delete_route", ns_name, value=want),)),
                      ("route", ns_name, want.label))
            elif have != want:
                w.add(Step("replace_route", ns_name, value=want, before=have,
                           undo=(Step("replace_route", ns_name, value=have, before=want),)),
                      ("route", ns_name, want.label))


PHASES: tuple[Callable[[_Work], None], ...] = (_unroute, _shrink, _delete, _create, _sysctl, _modify, _grow, _up,
                                               _impair, _route)


# --- helpers -----------------------------------------------------------------------------------------------


def _with_link(state: State, ns: str, link: Link) -> State:
    namespace = state.namespaces[ns]
    return State({**state.namespaces, ns: replace(namespace, links={**namespace.links, link.name: link})})


def _paired(action: str, undo_action: str, ns: str, name: str, value: str) -> Step:
    return Step(action, ns, name, value, undo=(Step(undo_action, ns, name, value),))


def _as_created(link: Link) -> Link:
    """The link as its create_link request makes it: without an MTU where its kind sets that apart, without
    its root qdisc (a step of its own)."""
    if link.qdisc is not None:
        link = replace(link, qdisc=None)
    return link if kind(link.kind).mtu_at_create else replace(link, mtu=None)


def _creation_order(ns: str, name: str) -> tuple[bool, str, str]:
    """A veth pair is created (and marked) from the end that comes first in this order."""
    return ns != HOST, ns, name


def _desired_links(state: State, loopback_first: bool = False) -> Iterator[tuple[str, Link]]:
    """(namespace, link) in a stable order: host first, then namespaces by name; links by name."""
    for ns in sorted(state.namespaces.values(), key=lambda n: (n.name != HOST, n.name)):
        for link in sorted(ns.links.values(), key=lambda lk: (not (loopback_first and lk.kind == "loopback"),
                                                              lk.name)):
            yield ns.name, link


def _refuse_conflicts(desired: State, live: State, topology: str) -> None:
    problems = []
    for name, want_ns in sorted(desired.namespaces.items()):
        have_ns = live.namespaces.get(name)
        if have_ns is None:
            continue
        if name != HOST and have_ns.owner != topology:
            problems.append(f"namespace {name} exists and {_made_by(have_ns.owner)}")
            continue
        for lname, want in sorted(want_ns.links.items()):
            have = have_ns.links.get(lname)
            if want.kind != "loopback" and have is not None and have.owner != topology:
                problems.append(f"link {name}/{lname} ({have.kind}) exists and {_made_by(have.owner)}")
            elif want.qdisc is not None and have is not None and have.qdisc is not None and not have.qdisc.ours:
                problems.append(f"qdisc {have.qdisc.kind} {have.qdisc.handle >> 16:x}: is link {name}/{lname}'s "
                                "root qdisc, which the topology impairs, and was not made by netlab")
        for key, route in sorted(want_ns.routes.items()):
            found = have_ns.routes.get(key)
            if found is not None and found.owner != topology:
                problems.append(f"route {name} {route.label} ({found.summary()}) exists and "
                                f"{_made_by(found.owner)}")
    if problems:
        fix = ["rename them in the topology, or remove them by hand if they are leftovers"] \
            if any(not p.startswith("qdisc ") for p in problems) else []
        if any(p.startswith("qdisc ") for p in problems):
            fix.append("for a qdisc: delete it (tc -n NAMESPACE qdisc del dev LINK root), or take the link's "
                       "impair out")
        if any(p.startswith("route ") for p in problems):
            fix.append("for a route: give it another metric or table, or delete the other one by hand "
                       "(ip -n NAMESPACE route del ...)")
        raise ConflictError(
            "refusing to touch objects that topology '" + topology + "' does not own; nothing was changed:\n  "
            + "\n  ".join(problems) + "".join(f"\n  fix: {f}" for f in fix))


def _require_parents(desired: State, live: State) -> None:
    """A parent the topology does not declare (external, in the root namespace) must be there: netlab
    never makes it."""
    missing = []
    for ns_name, want_ns in sorted(desired.namespaces.items()):
        for want in want_ns.links.values():
            parent = want.parent
            if parent is not None and desired.link(*parent) is None and live.link(*parent) is None:
                missing.append(f"{'/'.join(parent)}, the parent of {ns_name}/{want.name}")
    if missing:
        raise MissingError("links the topology relies on and does not make are not there; nothing was "
                           "changed:\n  " + "\n  ".join(missing) + "\n  fix: create them, or declare them in "
                           "the topology")


def _children_first(live: State, names: list[str]) -> list[str]:
    """Namespaces to delete, those holding links whose parents are in another of them first (deleting the
    parent's namespace deletes them too), so that undo, run in reverse, rebuilds the parent's first."""
    level: dict[str, int] = {}

    def of(ns: str, path: tuple[str, ...] = ()) -> int:
        if ns not in level:
            above = {link.parent[0] for link in live.namespaces[ns].links.values()
                     if link.parent is not None and link.parent[0] != ns and link.parent[0] in names
                     and link.parent[0] not in path}
            level[ns] = 1 + max((of(p, (*path, ns)) for p in above), default=-1)
        return level[ns]

    return sorted(names, key=lambda ns: (-of(ns), ns))


def _depth(state: State, ns: str, name: str) -> int:
    """How many parents a link sits on (a vlan on a macvlan on eth0: 2)."""
    depth, link, seen = 0, state.link(ns, name), set()
    while link is not None and link.parent is not None and link.parent not in seen:
        seen.add(link.parent)
        depth += 1
        link = state.link(*link.parent)
    return depth


def _made_by(owner: str | None) -> str:
    return "was not made by netlab" if owner is None else f"belongs to topology '{owner}'"


def _dying_foreign(w: _Work) -> dict[str, dict[str, list[str]]]:
    """For each namespace that goes, what goes with it that is not the topology's ("foreign": its links,
    a veth with the other end it takes along), and the physical devices the kernel returns to the root
    namespace ("returned"). Foreign links are refused (CONFLICT) unless `force`."""
    found: dict[str, dict[str, list[str]]] = {}
    problems = []
    for ns in w.gone_ns:
        foreign, returned = [], []
        for name, link in sorted(w.live.namespaces[ns].links.items()):
            if link.kind == "device":
                returned.append(name)
            elif link.owner != w.topology and link.kind != "loopback":
                foreign.append(f"{name} ({kind(link.kind).summary(link)})")
        found[ns] = {"foreign": foreign, "returned": returned}
        if foreign:
            problems.append(f"namespace {ns} holds {', '.join(foreign)}")
    if problems and not w.force:
        raise ConflictError(
            "refusing to delete namespaces that hold links topology '" + w.topology + "' did not make: the "
            "kernel would destroy them with the namespace; nothing was changed:\n  " + "\n  ".join(problems)
            + "\n  fix: move or delete them first, or give --force to destroy them with the namespace")
    return found


def _replace_reason(have: Link, want: Link) -> str | None:
    if have.kind != want.kind:
        return f"kind {have.kind} -> {want.kind}"
    return kind(want.kind).replace_reason(have, want)


def _doomed_links(desired: State, live: State, topology: str, gone_ns: set[str]) -> dict[Key, str]:
    """Owned links that must be deleted explicitly, with the reason. Links in a namespace that is deleted
    go with it, veths with an end outside it included: the kernel's namespace teardown removes them in one
    batch, many times faster than deleting veths one by one (the adapter waits for it to finish)."""
    doomed: dict[Key, str] = {}
    for ns_name, have_ns in live.namespaces.items():
        if ns_name != HOST and have_ns.owner != topology:
            continue
        want_ns = desired.namespaces.get(ns_name)
        for link in have_ns.links.values():
            if link.owner != topology or link.kind == "loopback" or ns_name in gone_ns:
                continue
            if link.peer and link.peer[0] in gone_ns:
                continue  # it goes with the namespace of its other end
            want = want_ns.links.get(link.name) if want_ns else None
            if want is None:
                doomed[(ns_name, link.name)] = GONE
            else:
                reason = _replace_reason(link, want)
                if reason:
                    doomed[(ns_name, link.name)] = reason
    # Deleting one end of a veth deletes both: the other end counts as deleted too, if it is in a namespace
    # of ours (so that the delete step is issued from our side, never inside a foreign namespace).
    for key in list(doomed):
        end = live.link(*key)
        if end is not None and end.peer and end.peer not in doomed and live.link(*end.peer):
            peer_ns = live.namespaces[end.peer[0]]
            if peer_ns.name == HOST or peer_ns.owner == topology:
                doomed[end.peer] = doomed[key]
    return doomed


def _delete_link_steps(w: _Work) -> list[tuple[Step, Subject]]:
    steps: list[tuple[Step, Subject]] = []
    done: set[Key] = set()
    for key in sorted(w.doomed):
        if key in done:
            continue
        link = w.live.link(*key)
        assert link is not None
        peer = w.live.link(*link.peer) if link.peer else None
        done.add(key)
        if link.peer:
            done.add(link.peer)
        # A deleted bridge frees its ports: its undo takes back those that stay.
        ports = sorted(lk.name for lk in w.live.namespaces[key[0]].links.values()
                       if lk.master == link.name and (key[0], lk.name) not in w.removed)
        # A pair is one change, named by the end it is made from (as a created pair is).
        named = min(key, link.peer, key=lambda k: _creation_order(*k)) if link.peer and peer else key
        ends = [key] + ([link.peer] if link.peer and peer else [])
        own = [Step("set_sysctl", where, path, value) for where, name in ends
               for path, value in sorted(w.live.namespaces[where].sysctls.items())
               if sysctls.interface_of(path) == name]
        steps.append((Step("delete_link", key[0], link.name, before=NewLink(link, peer),
                           undo=_rebuild_link(key[0], link, peer, ports, own)), ("link", *named)))
    return steps


def _rebuild_link(ns: str, link: Link, peer: Link | None, ports: Sequence[str] = (),
                  settings: Sequence[Step] = ()) -> tuple[Step, ...]:
    """The steps that recreate a deleted link (both ends of a veth; a bridge with the `ports` it had) as
    it was, with its per-interface sysctls (`settings`): the undo of its deletion."""
    if link.kind == "veth" and peer is None:
        return ()  # the other end is somewhere netlab cannot see; it cannot be recreated faithfully
    if peer is not None and link.peer and _creation_order(*link.peer) < _creation_order(ns, link.name):
        ns, link, peer = link.peer[0], peer, link  # from the end that carried the mark, as planned above
    made = NewLink(_as_created(link), _as_created(peer) if peer else None)
    steps = [Step("create_link", ns, link.name, made)]
    ends = [(ns, link)] + ([(link.peer[0], peer)] if peer is not None and link.peer else [])
    for where, end in ends:
        if end.mtu is not None and not kind(end.kind).mtu_at_create:
            steps.append(Step("set_mtu", where, end.name, end.mtu))
    for where, end in ends:
        if end.master:
            steps.append(Step("set_master", where, end.name, end.master))
    steps += [Step("set_master", ns, port, link.name) for port in ports]
    steps += settings
    for where, end in ends:
        for addr in sorted_addresses(end.addresses or ()):
            steps.append(Step("add_address", where, end.name, addr))
    for where, end in ends:
        if end.up:
            steps.append(Step("set_up", where, end.name))
    steps += [Step("add_qdisc", where, end.name, end.qdisc) for where, end in ends
              if end.qdisc is not None and end.qdisc.ours]
    return tuple(steps)


def _dies_with(ns: Namespace, rank: dict[str, int], doomed: dict[Key, str]) -> list[str]:
    """The ends ("namespace/name") elsewhere of the veths that die with namespace `ns`: in namespaces that
    stay, or that are removed after it (`rank` orders the removed ones). Until the kernel's teardown has
    removed them their names are taken, so the adapter waits for them; were it to stop before the later
    removals (a fault), a rollback could not rebuild the veth while its old end still holds the name."""
    mine = rank[ns.name]
    return sorted("/".join(link.peer) for link in ns.links.values()
                  if link.peer and rank.get(link.peer[0], mine + 1) > mine
                  and (ns.name, link.name) not in doomed and link.peer not in doomed)


def _rebuild_namespace(live: State, name: str, rank: dict[str, int], doomed: dict[Key, str],
                       topology: str) -> tuple[Step, ...]:
    """Undo of delete_netns: recreate it with the links of ours that died with it. A veth between two
    removed namespaces is rebuilt by the undo of the one removed first, which runs last, when both exist
    again; a veth that was deleted explicitly has its own undo."""
    ns = live.namespaces[name]
    steps: list[Step] = [Step("create_netns", name)]
    seen: set[Key] = set()
    links = sorted(ns.links.values(), key=lambda lk: (_depth(live, name, lk.name),
                                                      create_order(lk.kind) if lk.kind in KINDS else -1, lk.name))
    for link in links:
        if link.owner != topology or link.kind == "loopback" or (name, link.name) in seen \
                or (name, link.name) in doomed:
            continue
        if link.parent is not None and _rebuilder(live, name, link.name, rank) != name:
            continue  # its parent comes back in a later undo, which makes it too (_put_back_later)
        peer = None
        if link.kind == "veth":
            if link.peer is None or link.peer in doomed:
                continue
            other = link.peer[0]
            if other != name and rank.get(other, rank[name]) < rank[name]:
                continue  # the other namespace's undo rebuilds it
            peer = live.link(*link.peer)
            if peer is None:
                continue
            seen.add(link.peer)
        seen.add((name, link.name))
        steps += _rebuild_link(name, link, peer)
    lo = ns.links.get(LOOPBACK)
    if lo is not None and lo.up:
        steps.append(Step("set_up", name, LOOPBACK))
    if lo is not None:
        steps += [Step("add_address", name, LOOPBACK, addr) for addr in sorted_addresses(lo.addresses or ())]
    steps += [Step("set_sysctl", name, path, ns.sysctls[path]) for path in sorted(ns.sysctls, key=sysctls.write_order)
              if sysctls.interface_of(path) in (None, LOOPBACK)]
    return tuple(steps)


def _rebuilder(live: State, ns: str, name: str, rank: dict[str, int], seen: tuple[Key, ...] = ()) -> str:
    """Of the namespaces that go (`rank`: their order), the one whose undo recreates link ns/name: its
    own, or, for a veth to a namespace removed earlier, that one's (whose undo runs later); for a child, the
    one that recreates its parent, if that runs later."""
    best, link = ns, live.link(ns, name)
    if link is None:
        return best
    if link.peer is not None and link.peer[0] in rank and rank[link.peer[0]] < rank[best]:
        best = link.peer[0]
    if link.parent is not None and link.parent[0] in rank and link.parent not in seen:
        above = _rebuilder(live, *link.parent, rank, (*seen, (ns, name)))
        if rank[above] < rank[best]:
            best = above
    return best


def _put_back_later(w: _Work, rank: dict[str, int]) -> dict[str, list[Step]]:
    """What the undo of a namespace's deletion cannot put back itself, by the namespace whose undo does:
    the undo that rebuilds the link it needs (a veth to a namespace removed earlier is rebuilt by that
    namespace's undo, which runs later). Children whose parent comes back later (a macvlan on such a
    veth) first, parents first; then routes and per-interface sysctls."""
    tails: dict[str, list[Step]] = {}

    def rebuilt_by(ns: Namespace, devices: set[str]) -> str:
        return min([ns.name] + [_rebuilder(w.live, ns.name, dev, rank) for dev in devices], key=rank.__getitem__)

    children = [(where, child) for where in w.gone_ns for child in w.live.namespaces[where].links.values()
                if child.parent is not None and child.owner == w.topology]
    for where, child in sorted(children, key=lambda nl: (_depth(w.live, nl[0], nl[1].name), nl[0], nl[1].name)):
        by = _rebuilder(w.live, where, child.name, rank)
        if by != where:
            tails.setdefault(by, []).extend(_rebuild_link(where, child, None))
    for name in w.gone_ns:
        ns = w.live.namespaces[name]
        for path, value in sorted(ns.sysctls.items()):
            iface = sysctls.interface_of(path)
            link = ns.links.get(iface) if iface else None
            if link is not None and link.owner == w.topology and iface != LOOPBACK:
                tails.setdefault(rebuilt_by(ns, {link.name}), []).append(Step("set_sysctl", name, path, value))
        for route in sorted(ns.routes.values(), key=_route_order):
            if route.owner == w.topology:
                tails.setdefault(rebuilt_by(ns, route.devices()), []).append(Step("add_route", name, value=route))
    return tails


def _route_order(route: Route) -> tuple[bool, RouteKey]:
    """Routes through a device alone first: a gateway may be reachable only through one of them."""
    return route.via is not None or bool(route.nexthops), route.key


def _dying_routes(w: _Work, ns_name: str, staying: Sequence[tuple[Link, Link]]) -> dict[RouteKey, str]:
    """The routes of ours in a namespace that stays that the kernel will delete as a side effect of the
    plan's other steps, with the reason: their link is deleted or goes down, their link (IPv4) loses its
    last IPv4 address (the kernel then flushes its IPv4 routes), or their source address is deleted.
    `staying`: the namespace's links that stay, (desired, live)."""
    have_ns = w.live.namespaces[ns_name]
    why: dict[str, str] = {name: "is deleted" for name in have_ns.links if (ns_name, name) in w.removed}
    no_ipv4: set[str] = set()
    lost: set[str] = set()
    for want, have in staying:
        if have.up and not want.up:
            why[want.name] = "goes down"
        if want.addresses is not None and have.addresses is not None:
            kept = have.addresses & want.addresses
            lost.update(a.split("/")[0] for a in have.addresses - want.addresses)
            if any(":" not in a for a in have.addresses) and not any(":" not in a for a in kept):
                no_ipv4.add(want.name)
    for name, link in have_ns.links.items():  # a deleted link's addresses go with it
        if (ns_name, name) in w.removed:
            lost.update(a.split("/")[0] for a in link.addresses or ())
    dying: dict[RouteKey, str] = {}
    if not (why or no_ipv4 or lost):
        return dying  # no link, address or link state that a route needs goes
    for key, route in have_ns.routes.items():
        if route.owner != w.topology:
            continue
        for dev in sorted(route.devices()):
            if dev in why:
                dying[key] = f"through {dev}, which {why[dev]}"
            elif route.family == 4 and dev in no_ipv4:
                dying[key] = f"through {dev}, whose last IPv4 address is deleted"
        if route.src in lost:
            dying[key] = f"its source address {route.src} is deleted"
    return dying


def _holds_after(w: _Work, ns_name: str, route: Route) -> bool:
    """Whether the kernel would take `route` back once the plan has run (so that replacing it in place
    can be undone): its links are there and up, its gateways on their subnets, its source an address."""
    want_ns = w.desired.namespaces.get(ns_name)
    if want_ns is None:
        return False
    links = want_ns.links
    if any(dev not in links or not links[dev].up for dev in route.devices()):
        return False
    ips = {ipaddress.ip_interface(a) for link in links.values() for a in link.addresses or ()}
    if route.src is not None and ipaddress.ip_address(route.src) not in {i.ip for i in ips}:
        return False
    hops = [(h.via, h.dev, h.onlink) for h in route.nexthops] or [(route.via, route.dev, route.onlink)]
    for via, dev, onlink in hops:
        if via is None or onlink:
            continue
        gateway = ipaddress.ip_address(via)
        if gateway.version == 6 and gateway.is_link_local:
            continue
        on_dev = {i.network for i in ips if dev is None or str(i) in (links[dev].addresses or ())}
        on_dev |= {ipaddress.ip_network(r.to) for r in want_ns.routes.values()
                   if r.via is None and not r.nexthops and r.dev == dev and r.type == "unicast"}
        if not any(gateway in net for net in on_dev):
            return False
    return True
