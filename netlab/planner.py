"""Planning: `plan(desired, live, topology)` is a pure function from two States to a Plan.

No netlink, no root, no I/O: every case is unit-testable with golden files. The rules:

- Ownership first. A namespace or link that the topology wants and that exists without this topology's
  mark is a CONFLICT, reported (all of them) before any step is planned. Only objects that carry the mark
  are ever changed or deleted; a foreign port on an owned bridge, or a foreign namespace, is never touched.
- Order: delete addresses, clear masters, set down, delete links, delete namespaces; then create
  namespaces, create links (bridges before veths), set MTU/MAC, set masters, add addresses, set up.
- A link whose kind changed, or a veth whose peer changed, is replaced (deleted, then created).
- Every step carries its undo, computed here from the live state.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import ConflictError
from .plan import Plan, Step
from .state import HOST, LOOPBACK, Link, Namespace, State, sorted_addresses, without_links

Key = tuple[str, str]  # (namespace, link name)


def plan(desired: State, live: State, topology: str) -> Plan:
    """The steps that turn `live` into `desired`, touching only objects marked as `topology`'s."""
    _refuse_conflicts(desired, live, topology)
    steps: list[Step] = []

    gone_ns = sorted(n for n, ns in live.namespaces.items()
                     if n != HOST and ns.owner == topology and n not in desired.namespaces)
    doomed = _doomed_links(desired, live, topology, set(gone_ns))
    removed: set[Key] = set(doomed)
    for key in doomed:  # a veth dies whole, even the end in a namespace that is not ours
        link = live.link(*key)
        if link.kind == "veth" and link.peer:
            removed.add(link.peer)
    for ns in gone_ns:
        removed |= {(ns, name) for name in live.namespaces[ns].links}
    after = without_links(live, removed)
    after = State({n: ns for n, ns in after.namespaces.items() if n not in gone_ns})

    # Changes to links that stay: shrink first (addresses, masters, down) ...
    staying = [(ns, want, after.link(ns, want.name)) for ns, want in _desired_links(desired)
               if after.link(ns, want.name) is not None]
    for ns, want, have in staying:
        if want.addresses is not None:
            for addr in sorted_addresses(have.addresses - want.addresses):
                steps.append(_step("delete_address", ns, want.name, addr, undo_action="add_address"))
    for ns, want, have in staying:
        if have.master is not None and want.master is None:
            steps.append(Step("clear_master", ns, want.name, before=have.master,
                              undo=(Step("set_master", ns, want.name, have.master),)))
    for ns, want, have in staying:
        if have.up and not want.up:
            steps.append(Step("set_down", ns, want.name, undo=(Step("set_up", ns, want.name),)))

    # ... then delete what goes: veths before bridges, so that undo (run in reverse) recreates bridges first.
    steps += _delete_link_steps(doomed, live, topology, set(gone_ns))
    for ns in gone_ns:
        steps.append(Step("delete_netns", ns, reason="not in the topology",
                          undo=_rebuild_namespace(live.namespaces[ns], topology)))

    # Create what is missing.
    for ns in sorted(desired.namespaces):
        if ns != HOST and ns not in after.namespaces:
            steps.append(Step("create_netns", ns, undo=(Step("delete_netns", ns),)))
            after = State({**after.namespaces, ns: Namespace(ns, topology, {
                LOOPBACK: Link(LOOPBACK, "loopback", addresses=None, up=False)})})
    created: list[tuple[str, Link]] = []
    for kind in ("bridge", "veth"):
        for ns, want in _desired_links(desired):
            if want.kind != kind or after.link(ns, want.name) is not None:
                continue
            if kind == "veth" and any(want.peer == (n, w.name) for n, w in created):
                continue  # the pair was created from its other end
            peer = desired.link(*want.peer) if want.peer else None
            steps.append(_create_link_step(ns, want, peer, topology))
            created.append((ns, want))
            if peer is not None:
                created.append((want.peer[0], peer))
    fresh = {(ns, link.name): replace(link, master=None, addresses=frozenset(), up=False)
             for ns, link in created}

    def current(ns: str, want: Link) -> Link | None:
        return fresh.get((ns, want.name)) or after.link(ns, want.name)

    for ns, want, have in staying:
        for attr in ("mtu", "mac"):
            new, old = getattr(want, attr), getattr(have, attr)
            if new is not None and new != old:
                steps.append(Step(f"set_{attr}", ns, want.name, new, before=old,
                                  undo=(Step(f"set_{attr}", ns, want.name, old, before=new),)))
    for ns, want in _desired_links(desired):
        have = current(ns, want)
        if have is not None and want.master is not None and have.master != want.master:
            undo = (Step("set_master", ns, want.name, have.master, before=want.master) if have.master
                    else Step("clear_master", ns, want.name, before=want.master))
            steps.append(Step("set_master", ns, want.name, want.master, before=have.master, undo=(undo,)))
    for ns, want in _desired_links(desired):
        have = current(ns, want)
        if have is not None and want.addresses is not None:
            for addr in sorted_addresses(want.addresses - have.addresses):
                steps.append(_step("add_address", ns, want.name, addr, undo_action="delete_address"))
    for ns, want in _desired_links(desired, loopback_first=True):
        have = current(ns, want)
        if have is not None and want.up and not have.up:
            steps.append(Step("set_up", ns, want.name, undo=(Step("set_down", ns, want.name),)))
    return Plan(topology, tuple(steps))


def _step(action: str, ns: str, name: str, value, undo_action: str) -> Step:
    return Step(action, ns, name, value, undo=(Step(undo_action, ns, name, value),))


def _desired_links(state: State, loopback_first: bool = False):
    """(namespace, link) in a stable order: host first, then namespaces by name; links by name."""
    for ns in sorted(state.namespaces.values(), key=lambda n: (n.name != HOST, n.name)):
        for link in sorted(ns.links.values(), key=lambda l: (not (loopback_first and l.kind == "loopback"),
                                                             l.name)):
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
    if problems:
        raise ConflictError(
            "refusing to touch objects that topology '" + topology + "' does not own; nothing was changed:\n  "
            + "\n  ".join(problems)
            + "\n  fix: rename them in the topology, or remove them by hand if they are leftovers")


def _made_by(owner: str | None) -> str:
    return "was not made by netlab" if owner is None else f"belongs to topology '{owner}'"


def _replace_reason(have: Link, want: Link) -> str | None:
    if have.kind != want.kind:
        return f"replace: kind {have.kind} -> {want.kind}"
    if want.kind == "veth" and have.peer != want.peer:
        old = "/".join(have.peer) if have.peer else "a namespace netlab does not manage"
        return f"replace: peer {old} -> {'/'.join(want.peer)}"
    return None


def _doomed_links(desired: State, live: State, topology: str, gone_ns: set[str]) -> dict[Key, str]:
    """Owned links that must be deleted explicitly, with the reason. Links inside a namespace that is
    deleted go with it, except veths with an end outside it: those are deleted first, so that nothing of
    the topology outlives the step that removes it (the kernel tears namespaces down asynchronously)."""
    doomed: dict[Key, str] = {}
    for ns_name, have_ns in live.namespaces.items():
        if ns_name != HOST and have_ns.owner != topology:
            continue
        want_ns = desired.namespaces.get(ns_name)
        for link in have_ns.links.values():
            if link.owner != topology or link.kind == "loopback":
                continue
            key = (ns_name, link.name)
            if ns_name in gone_ns:
                if link.kind == "veth" and (link.peer is None or link.peer[0] != ns_name):
                    doomed[key] = "its namespace is removed"
                continue
            want = want_ns.links.get(link.name) if want_ns else None
            if want is None:
                doomed[key] = "not in the topology"
            else:
                reason = _replace_reason(link, want)
                if reason:
                    doomed[key] = reason
    # Deleting one end of a veth deletes both: the other end counts as deleted too, if it is in a namespace
    # of ours (so that the delete step is issued from our side, never inside a foreign namespace).
    for key in list(doomed):
        link = live.link(*key)
        if link.kind == "veth" and link.peer and link.peer not in doomed and live.link(*link.peer):
            peer_ns = live.namespaces[link.peer[0]]
            if peer_ns.name == HOST or peer_ns.owner == topology:
                doomed[link.peer] = doomed[key]
    return doomed


def _delete_link_steps(doomed: dict[Key, str], live: State, topology: str, gone_ns: set[str]) -> list[Step]:
    steps, done = [], set()
    order = sorted(doomed, key=lambda k: (live.link(*k).kind == "bridge", k[0] in gone_ns, k))
    for key in order:
        if key in done:
            continue
        link = live.link(*key)
        peer = live.link(*link.peer) if link.kind == "veth" and link.peer else None
        done.add(key)
        if link.peer:
            done.add(link.peer)
        steps.append(Step("delete_link", key[0], link.name, before=_spec(link, peer), reason=doomed[key],
                          undo=_rebuild_link(key[0], link, peer, topology)))
    return steps


def _spec(link: Link, peer: Link | None) -> dict:
    spec: dict = {"kind": link.kind}
    if link.mtu is not None:
        spec["mtu"] = link.mtu
    if link.mac is not None:
        spec["mac"] = link.mac
    if link.kind == "veth" and link.peer is not None:
        spec["peer"] = {"namespace": link.peer[0], "name": link.peer[1]}
        if peer is not None and peer.mtu is not None:
            spec["peer"]["mtu"] = peer.mtu
        if peer is not None and peer.mac is not None:
            spec["peer"]["mac"] = peer.mac
    return spec


def _create_link_step(ns: str, link: Link, peer: Link | None, topology: str) -> Step:
    return Step("create_link", ns, link.name, _spec(link, peer), undo=(Step("delete_link", ns, link.name),))


def _rebuild_link(ns: str, link: Link, peer: Link | None, topology: str) -> tuple[Step, ...]:
    """The steps that recreate a deleted link (both ends of a veth) as it was: the undo of its deletion."""
    if link.kind == "veth" and peer is None:
        return ()  # the other end is somewhere netlab cannot see; it cannot be recreated faithfully
    steps = [Step("create_link", ns, link.name, _spec(link, peer))]
    ends = [(ns, link)] + ([(link.peer[0], peer)] if peer is not None else [])
    for where, end in ends:
        if end.master:
            steps.append(Step("set_master", where, end.name, end.master))
    for where, end in ends:
        for addr in sorted_addresses(end.addresses or ()):
            steps.append(Step("add_address", where, end.name, addr))
    for where, end in ends:
        if end.up:
            steps.append(Step("set_up", where, end.name))
    return tuple(steps)


def _rebuild_namespace(ns: Namespace, topology: str) -> tuple[Step, ...]:
    """Undo of delete_netns: recreate it with the links that lived only inside it."""
    steps = [Step("create_netns", ns.name)]
    inside = [l for l in ns.links.values() if l.owner == topology and l.kind != "loopback"
              and (l.kind != "veth" or (l.peer is not None and l.peer[0] == ns.name))]
    seen: set[str] = set()
    for link in sorted(inside, key=lambda l: (l.kind != "bridge", l.name)):
        if link.name in seen:
            continue
        peer = ns.links.get(link.peer[1]) if link.peer else None
        seen |= {link.name} | ({peer.name} if peer else set())
        steps += [s for s in _rebuild_link(ns.name, link, peer, topology)]
    lo = ns.links.get(LOOPBACK)
    if lo is not None and lo.up:
        steps.append(Step("set_up", ns.name, LOOPBACK))
    return tuple(steps)
