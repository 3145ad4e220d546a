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
        for name, link in live.namespaces[ns].links.items():
            removed.add((ns, name))
            if link.kind == "veth" and link.peer:
                removed.add(link.peer)  # a veth with an end in a removed namespace dies with it
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

    # ... then delete what goes: veths, namespaces (with the veths that have an end in them), bridges; so
    # that undo, run in reverse, recreates the bridges before the ports that join them.
    links = _delete_link_steps(doomed, live, topology, removed)
    steps += [s for s in links if s.before["kind"] != "bridge"]
    rank = {ns: i for i, ns in enumerate(gone_ns)}
    for ns in gone_ns:
        steps.append(Step("delete_netns", ns, value=_dies_with(live.namespaces[ns], rank, doomed),
                          reason="not in the topology",
                          undo=_rebuild_namespace(live, ns, rank, doomed, topology)))
    steps += [s for s in links if s.before["kind"] == "bridge"]

    # Create what is missing. Undoing a namespace's creation deletes it, and with it the veths that will
    # have an end in it: the adapter waits for their other ends to go before the rollback is judged.
    for ns in sorted(desired.namespaces):
        if ns != HOST and ns not in after.namespaces:
            steps.append(Step("create_netns", ns, undo=(
                Step("delete_netns", ns, value=_dies_with(desired.namespaces[ns], {ns: 0}, {})),)))
            after = State({**after.namespaces, ns: Namespace(ns, topology, {
                LOOPBACK: Link(LOOPBACK, "loopback", addresses=None, up=False)})})
    created: list[tuple[str, Link]] = []
    made: set[Key] = set()
    for kind in ("bridge", "veth"):
        for ns, want in _desired_links(desired):
            if want.kind != kind or after.link(ns, want.name) is not None:
                continue
            if kind == "veth" and want.peer in made:
                continue  # the pair was created from its other end
            peer = desired.link(*want.peer) if want.peer else None
            steps.append(_create_link_step(ns, want, peer, topology))
            created.append((ns, want))
            made.add((ns, want.name))
            if peer is not None:
                created.append((want.peer[0], peer))
                made.add(want.peer)
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
    # Bridges come up last, once their ports are wired: a bridge that forwards while a thousand ports
    # come up floods each one's IPv6 autoconfiguration traffic to all the others.
    ups = [(ns, want) for ns, want in _desired_links(desired, loopback_first=True)
           if want.up and (have := current(ns, want)) is not None and not have.up]
    for ns, want in sorted(ups, key=lambda nw: nw[1].kind == "bridge"):
        steps.append(Step("set_up", ns, want.name, undo=(Step("set_down", ns, want.name),)))
    return Plan(topology, tuple(steps))


def _step(action: str, ns: str, name: str, value, undo_action: str) -> Step:
    return Step(action, ns, name, value, undo=(Step(undo_action, ns, name, value),))


def _creation_order(ns: str, name: str) -> tuple:
    """A veth pair is created (and marked) from the end that comes first in this order."""
    return ns != HOST, ns, name


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
    """Owned links that must be deleted explicitly, with the reason. Links in a namespace that is deleted
    go with it, veths with an end outside it included: the kernel's namespace teardown removes them in one
    batch, many times faster than deleting veths one by one (the adapter waits for it to finish)."""
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
                continue
            if link.kind == "veth" and link.peer and link.peer[0] in gone_ns:
                continue  # it goes with the namespace of its other end
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


def _delete_link_steps(doomed: dict[Key, str], live: State, topology: str, removed: set[Key]) -> list[Step]:
    steps, done = [], set()
    for key in sorted(doomed):
        if key in done:
            continue
        link = live.link(*key)
        peer = live.link(*link.peer) if link.kind == "veth" and link.peer else None
        done.add(key)
        if link.peer:
            done.add(link.peer)
        # A deleted bridge frees its ports: its undo takes back those that stay.
        ports = sorted(l.name for l in live.namespaces[key[0]].links.values()
                       if l.master == link.name and (key[0], l.name) not in removed)
        steps.append(Step("delete_link", key[0], link.name, before=_spec(link, peer), reason=doomed[key],
                          undo=_rebuild_link(key[0], link, peer, topology, ports)))
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


def _rebuild_link(ns: str, link: Link, peer: Link | None, topology: str,
                  ports: list[str] = ()) -> tuple[Step, ...]:
    """The steps that recreate a deleted link (both ends of a veth; a bridge with the `ports` it had) as
    it was: the undo of its deletion."""
    if link.kind == "veth" and peer is None:
        return ()  # the other end is somewhere netlab cannot see; it cannot be recreated faithfully
    if peer is not None and _creation_order(*link.peer) < _creation_order(ns, link.name):
        ns, link, peer = link.peer[0], peer, link  # from the end that carried the mark, as planned below
    steps = [Step("create_link", ns, link.name, _spec(link, peer))]
    ends = [(ns, link)] + ([(link.peer[0], peer)] if peer is not None else [])
    for where, end in ends:
        if end.master:
            steps.append(Step("set_master", where, end.name, end.master))
    steps += [Step("set_master", ns, port, link.name) for port in ports]
    for where, end in ends:
        for addr in sorted_addresses(end.addresses or ()):
            steps.append(Step("add_address", where, end.name, addr))
    for where, end in ends:
        if end.up:
            steps.append(Step("set_up", where, end.name))
    return tuple(steps)


def _dies_with(ns: Namespace, rank: dict[str, int], doomed: dict[Key, str]) -> list[str] | None:
    """The ends ("namespace/name") elsewhere of the veths that die with namespace `ns`: in namespaces that
    stay, or that are removed after it (`rank` orders the removed ones). Until the kernel's teardown has
    removed them their names are taken, so the adapter waits for them; were it to stop before the later
    removals (a fault), a rollback could not rebuild the veth while its old end still holds the name."""
    mine = rank[ns.name]
    ends = sorted("/".join(link.peer) for link in ns.links.values()
                  if link.kind == "veth" and link.peer and rank.get(link.peer[0], mine + 1) > mine
                  and (ns.name, link.name) not in doomed and link.peer not in doomed)
    return ends or None


def _rebuild_namespace(live: State, name: str, rank: dict[str, int], doomed: dict[Key, str],
                       topology: str) -> tuple[Step, ...]:
    """Undo of delete_netns: recreate it with the links of ours that died with it. A veth between two
    removed namespaces is rebuilt by the undo of the one removed first, which runs last, when both exist
    again; a veth that was deleted explicitly has its own undo."""
    ns = live.namespaces[name]
    steps = [Step("create_netns", name)]
    seen: set[Key] = set()
    links = sorted(ns.links.values(), key=lambda l: (l.kind != "bridge", l.name))
    for link in links:
        if link.owner != topology or link.kind == "loopback" or (name, link.name) in seen \
                or (name, link.name) in doomed:
            continue
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
        steps += _rebuild_link(name, link, peer, topology)
    lo = ns.links.get(LOOPBACK)
    if lo is not None and lo.up:
        steps.append(Step("set_up", name, LOOPBACK))
    return tuple(steps)
