"""Writing to the kernel: runs plan steps. Consecutive link steps in one namespace go in one batch (one
`sendmsg`), each acknowledgement matched to its step; namespace steps run alone. SIGINT and SIGTERM are
held while a batch or a namespace step runs, so an interrupt arrives between batches, with the result of
every step known.

A batch is built in three stages that never mix: the ifindexes it needs are resolved (most are known:
read, or chosen by this run), the requests are built (no I/O), then sent.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from .. import impair
from ..errors import KernelError
from ..kinds import kind
from ..netlink import codec, rtnl, transport
from ..plan import QDISC_OPS, ROUTE_OPS, NewLink, Step
from ..state import ROUTE_PROTOCOL, Link, Qdisc, Route, mark
from . import bridge_vlan, sysctl, tuntap
from .namespaces import Namespaces, signals_held

Results = list[tuple[int, KernelError | None]]
Item = tuple[int, Step]  # a step and its position in the run

# Errors that mean the step's goal already holds: deleting what is gone.
_ALREADY_SO = {("delete_link", errno.ENODEV), ("delete_address", errno.EADDRNOTAVAIL),
               ("delete_address", errno.ENODEV), ("delete_route", errno.ESRCH)}
# Steps that name links the batch must know the ifindexes of: the master, the link itself, a route's.
_NEEDS_INDEX: dict[str, Callable[[Step], Iterable[str]]] = {
    "set_master": lambda step: (step.value,), "add_address": lambda step: (step.name or "",),
    "delete_address": lambda step: (step.name or "",), "add_route": lambda step: step.value.devices(),
    "replace_route": lambda step: step.value.devices(), "set_vlans": lambda step: (step.name or "",),
    "set_self_vlans": lambda step: (step.name or "",),
    **dict.fromkeys(QDISC_OPS, lambda step: (step.name or "",)),
    "create_link": lambda step: (step.value.link.parent[1],) if step.value.link.parent is not None
    and step.value.link.parent[0] == step.namespace else ()}


@dataclass
class _Op:
    """One step as netlink requests. `cleanup` is sent if the first request succeeded and a later one
    failed, so that a failed step leaves nothing behind."""

    requests: list[transport.Request]
    cleanup: transport.Request | None = None


class Writer:
    def __init__(self, namespaces: Namespaces):
        self.ns = namespaces

    def execute(self, steps: Sequence[Step], topology: str, results: Results) -> None:
        """Run steps in order, appending (position, None or the error) to `results` as each batch comes
        back. Stops after the first batch in which a step failed; steps after it were not run. A failed
        step has changed nothing (a compound step undoes its own first half); deleting what is already
        gone counts as success."""
        alias = mark(topology)
        refused = self._probe(steps)
        if refused is not None:
            results.append(refused)
            return
        for op, items in _runs(steps):
            if op == "create_netns":
                done = self._create_netns(items[0], alias, results)
            elif op == "delete_netns":
                done = self._delete_netns(items, results)
            elif op == "set_sysctl":
                done = self._sysctls(items, results)
            elif op == "tuntap":
                done = self._tuntap(items[0], alias, results)
            elif op == "child":
                done = self._create_child(items[0], alias, results)
            else:
                done = self._batch(items, alias, results)
            if not done:
                return

    def _probe(self, steps: Sequence[Step]) -> tuple[int, KernelError] | None:
        """Before any change: for each kind the steps make that a kernel may lack (a module, a build
        option), make one in a scratch namespace, on a veth for a kind with a parent. The first step that
        needs what the kernel refuses as not supported, with the error naming what is missing; None if
        it has all. The scratch namespace lives only as long as its socket: nothing is left behind."""
        needs: dict[tuple[str, bytes], tuple[int, Link]] = {}
        qdiscs: dict[str, tuple[int, Qdisc]] = {}
        for position, step in enumerate(steps):
            link = step.value.link if step.op == "create_link" else step.value if step.op == "change_link" else None
            data = kind(link.kind).probe(link) if link is not None else None
            if link is not None and data is not None:
                needs.setdefault((link.kind, data), (position, link))
            if step.op in QDISC_OPS and step.op != "delete_qdisc":
                qdiscs.setdefault(step.value.kind, (position, step.value))
        if not needs and not qdiscs:
            return None
        try:
            sock = self.ns.scratch()
        except KernelError:
            return None  # no scratch namespace here: the kernel's answer to the step itself will say
        try:
            sock.request(rtnl.new_link("p0", "veth", 2, peer={"name": "p1", "index": 3}))
            for (name, data), (position, link) in needs.items():
                made = kind(name)
                code = sock.batch([rtnl.new_link("x0", name, 4, info_data=data or None,
                                                 link=2 if made.parent == "link" else None), rtnl.del_link(index=4)])[0]
                if code == errno.EOPNOTSUPP:
                    return position, KernelError.of(code, made.lacking(link) or f"make a {name} link")
            for name, (position, qdisc) in qdiscs.items():  # on the scratch namespace's lo
                ack = sock.acks([rtnl.qdisc("add", 1, qdisc.handle, name, _qdisc_options(qdisc)),
                                 rtnl.qdisc("delete", 1, qdisc.handle)])[0]
                if _unknown_qdisc(ack.code, ack.message):
                    return position, KernelError.of(ack.code, _lacking_qdisc(name), ack.message)
        finally:
            sock.close()
        return None

    # --- namespaces ----------------------------------------------------------------------------------

    def _create_netns(self, item: Item, alias: str, results: Results) -> bool:
        position, step = item
        with signals_held():
            try:
                self.ns.create(step.namespace, alias)
            except OSError as exc:
                results.append((position, _kernel_error(exc)))
                return False
            results.append((position, None))
        return True

    def _delete_netns(self, items: list[Item], results: Results) -> bool:
        """Delete a run of namespaces, then wait for the kernel's teardown to remove the links elsewhere
        that die with them (their names are taken until then)."""
        with signals_held():
            for position, step in items:
                try:
                    self.ns.delete(step.namespace)
                except OSError as exc:
                    results.append((position, _kernel_error(exc)))
                    return False
                results.append((position, None))
            error = self._await_gone([end for _, step in items for end in step.value or ()])
        if error is not None:  # the deletions are done (and recorded); the last one is also failed
            results.append((items[-1][0], error))
            return False
        return True

    def _await_gone(self, ends: list[str], timeout: float = 60.0) -> KernelError | None:
        """Wait until the kernel's teardown of deleted namespaces has removed the veth ends they took
        with them ("namespace/name"), so that what comes next (a link of the same name) does not find
        them still there. One end is probed at a time: while it is there, the ones after it (torn down
        later, or with it) are not asked about."""
        deadline, pause = time.monotonic() + timeout, 0.001
        for end in ends:
            ns, name = end.split("/", 1)
            probe = rtnl.link_by_name(name)
            while self.ns.fd(ns) is not None and self.ns.sock(ns).batch([probe])[0] != errno.ENODEV:
                if time.monotonic() > deadline:
                    return KernelError.of(errno.ETIMEDOUT, f"the kernel has not finished removing {end} "
                                                          f"after {timeout:.0f} s")
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
        return None

    # --- sysctls -------------------------------------------------------------------------------------

    def _sysctls(self, items: list[Item], results: Results) -> bool:
        """Write a run of one namespace's sysctls, one file each, from inside the namespace."""
        with signals_held():
            for position, step in items:
                try:
                    sysctl.write(self.ns, step.namespace, step.name or "", step.value)
                except KernelError as exc:
                    results.append((position, exc))
                    return False
                results.append((position, None))
        return True

    # --- tun and tap ---------------------------------------------------------------------------------

    def _tuntap(self, item: Item, alias: str, results: Results) -> bool:
        """Make a tun or tap through /dev/net/tun (kernel/tuntap.py), at an ifindex of our choosing."""
        position, step = item
        link: Link = step.value.link
        ns = step.namespace
        with signals_held():
            try:
                index = self._free_index(ns)
                opts = link.opts
                tuntap.create(self.ns, ns, link.name, tap=link.kind == "tap", owner=opts.get("owner"),
                              group=opts.get("group"), multi_queue=bool(opts.get("multi_queue")), alias=alias,
                              index=index, mtu=link.mtu, mac=_mac(link.mac))
            except KernelError as exc:
                results.append((position, exc))
                return False
            self.ns.indexes.setdefault(ns, {})[link.name] = index
            results.append((position, None))
        return True

    # --- a link whose parent is in another namespace ---------------------------------------------------

    def _create_child(self, item: Item, alias: str, results: Results) -> bool:
        """Create a link whose parent is in another namespace (a macvlan on a host NIC, in a container's
        namespace), at an ifindex of our choosing, and mark it, in one batch sent in the child's namespace:
        the create names the parent by IFLA_LINK and IFLA_LINK_NETNSID (the id the child's namespace knows
        the parent's by, assigned if missing), under a temporary name, 'nl' and the ifindex in hex; then,
        by that ifindex, its name and the mark. Why the temporary name: a kernel such as 6.1 makes such a
        link in the parent's namespace and then moves it, so a name taken there (a container's `eth0` on the
        host's `eth0`) would fail with EEXIST. Sending the create from the parent's namespace with
        IFLA_NET_NS_FD, as `ip link add ... netns` does, avoids that too, but the mark would then be a
        second syscall on another socket: a crash between them would leave an unmarked link."""
        position, step = item
        made: NewLink = step.value
        link, ns = made.link, step.namespace
        assert link.parent is not None
        pns, pname = link.parent
        with signals_held():
            try:
                parent = self.ns.indexes.get(pns, {}).get(pname)
                parent = parent if parent is not None else self._lookup(pns, pname)
                if parent is None:
                    raise KernelError.of(errno.ENODEV, f"link {pns}/{pname}, the parent of {ns}/{link.name}")
                data = kind(link.kind).info_data(link, None, _Facts(self.ns, ns, {}))
                nsid = self._assigned_nsid(ns, pns)
                index = self._free_index(ns)
                create = rtnl.new_link(f"nl{index:x}", link.kind, index, link.mtu, _mac(link.mac), info_data=data,
                                       link=parent, link_netnsid=nsid)
                sock = self.ns.sock(ns)
                acks = sock.acks([create, rtnl.set_link(index=index, rename=link.name, alias=alias)])
                if acks[0].code == 0 and acks[1].code:
                    sock.batch([rtnl.del_link(index=index)])  # a failed step leaves nothing behind
                failed = next((ack for ack in acks if ack.code), None)
                if failed is not None:
                    raise KernelError.of(failed.code, detail=failed.message)
            except KernelError as exc:
                results.append((position, exc))
                return False
            self.ns.indexes.setdefault(ns, {})[link.name] = index
            results.append((position, None))
        return True

    # --- link batches --------------------------------------------------------------------------------

    def _batch(self, items: list[Item], alias: str, results: Results) -> bool:
        """Resolve, build and send one namespace's run of link steps. A step that cannot be built (its
        namespace or master is missing) fails after the steps before it have been sent."""
        ns = items[0][1].namespace
        ops: list[tuple[int, Step, _Op | None]] = []
        error: tuple[int, KernelError] | None = None
        try:
            sock = self.ns.sock(ns)
            known = self._resolve(ns, items)
        except KernelError as exc:
            results.append((items[0][0], exc))
            return False
        for position, step in items:
            try:
                ops.append((position, step, self._op(step, alias, known)))
            except KernelError as exc:
                error = (position, exc)
                break
        if not self._send(sock, ops, results):
            return False
        if error is not None:
            results.append(error)
            return False
        return True

    def _resolve(self, ns: str, items: list[Item]) -> dict[str, int | None]:
        """The ifindexes the batch's steps name, by link name (None: no such link). Links made by this
        run have the index it chose; the others are looked up, before anything is built."""
        made = self.ns.indexes.get(ns, {})
        coming = {step.name for _, step in items if step.op == "create_link"}
        names = {name for _, step in items if step.op in _NEEDS_INDEX for name in _NEEDS_INDEX[step.op](step)}
        known: dict[str, int | None] = {}
        for name in sorted(names):
            if name in made or name in coming:
                continue
            known[name] = self._lookup(ns, name)
        return known

    def _assigned_nsid(self, ns: str, other: str) -> int:
        """The id namespace `ns` knows namespace `other` by, assigned now if it has none (as `ip netns set
        NAME auto` does): a link's parent in another namespace is named by it (IFLA_LINK_NETNSID)."""
        fd = self.ns.fd(other)
        if fd is None:
            raise KernelError.of(errno.ENOENT, f"namespace {other}")
        sock = self.ns.sock(ns)
        nsid = rtnl.decode_nsid(sock.get(rtnl.RTM_GETNSID, rtnl.nsid_request(fd)))
        if nsid is None or nsid < 0:  # NETNSA_NSID_NOT_ASSIGNED
            assign = codec.message(rtnl.RTGENMSG, {"family": socket.AF_UNSPEC}, rtnl.NETNSA, {"nsid": -1, "fd": fd})
            code = sock.batch([transport.Request(_RTM_NEWNSID, 0, assign)])[0]
            if code not in (0, errno.EEXIST):  # EEXIST: another run assigned one meanwhile
                raise KernelError.of(code, f"assign an id to namespace {other} in {ns}")
            nsid = rtnl.decode_nsid(sock.get(rtnl.RTM_GETNSID, rtnl.nsid_request(fd)))
        if nsid is None or nsid < 0:
            raise KernelError.of(errno.EINVAL, f"the id of namespace {other} in {ns}")
        self.ns.nsids[(ns, other)] = nsid
        return nsid

    def _lookup(self, ns: str, name: str) -> int | None:
        probe = rtnl.link_by_name(name)
        try:
            return rtnl.decode_link(self.ns.sock(ns).get(probe.type, probe.body))["index"]
        except transport.NetlinkError as exc:
            if exc.errno != errno.ENODEV:
                raise KernelError.of(exc.errno, f"look up {ns}/{name}") from None
            return None

    def _index(self, ns: str, name: str, known: dict[str, int | None]) -> int | None:
        made = self.ns.indexes.get(ns, {}).get(name)
        return made if made is not None else known.get(name)

    def _op(self, step: Step, alias: str, known: dict[str, int | None]) -> _Op | None:
        """The netlink requests of one step, or None if there is nothing to do. No I/O."""
        ns, name, op = step.namespace, step.name, step.op
        if op == "create_link":
            return self._create_link(step, alias, known)
        if op == "delete_link":
            return _Op([rtnl.del_link(name)])
        if op in ("set_up", "set_down"):
            return _Op([rtnl.set_link(name, up=op == "set_up")])
        if op == "set_mtu":
            return _Op([rtnl.set_link(name, mtu=step.value)])
        if op == "set_mac":
            return _Op([rtnl.set_link(name, mac=_mac(step.value))])
        if op == "clear_master":
            return _Op([rtnl.set_link(name, master=0)])
        if op in ("set_vlans", "set_self_vlans"):
            index = self._index(ns, name or "", known)
            if index is None:
                raise KernelError.of(errno.ENODEV, f"link {ns}/{name}")
            had = {v.vid: (v.pvid, v.untagged) for v in step.before or ()}
            want = {v.vid: (v.pvid, v.untagged) for v in step.value}
            return _Op(bridge_vlan.changes(index, had, want, op == "set_self_vlans", unread=(1,)))
        if op == "change_link":
            made = kind(step.value.kind)
            return _Op([rtnl.change_link(made.name, made.change_data(step.value, made.changed(step.before, step.value)),
                                         name)])
        if op == "set_master":
            master = self._index(ns, step.value, known)
            if master is None:
                raise KernelError.of(errno.ENODEV, f"link {ns}/{step.value}")
            return _Op([rtnl.set_link(name, master=master)])
        if op in ROUTE_OPS:
            return _Op([self._route(step, known)])
        if op in QDISC_OPS:
            index = self._index(ns, name or "", known)
            if index is None:
                if op == "delete_qdisc":
                    return None  # the link is gone, and its qdisc with it
                raise KernelError.of(errno.ENODEV, f"link {ns}/{name}")
            if op == "delete_qdisc":
                return _Op([rtnl.qdisc("delete", index, step.before.handle)])
            qdisc: Qdisc = step.value
            return _Op([rtnl.qdisc(_QDISC_OP[op], index, qdisc.handle, qdisc.kind, _qdisc_options(qdisc))])
        if op in ("add_address", "delete_address"):
            assert name is not None
            index = self._index(ns, name, known)
            if index is None:
                if op == "delete_address":
                    return None  # the link is gone, and its addresses with it
                raise KernelError.of(errno.ENODEV, f"link {ns}/{name}")
            iface = ipaddress.ip_interface(step.value)
            family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
            return _Op([rtnl.address(op == "add_address", index, family, iface.ip.packed, iface.network.prefixlen)])
        raise ValueError(f"not a link step: {op}")

    def _route(self, step: Step, known: dict[str, int | None]) -> transport.Request:
        """The route request of a route step, with netlab's mark (ROUTE_PROTOCOL). A delete names the route
        by its key and the mark, so that it can only ever delete netlab's route."""
        route: Route = step.value
        family, dst, dst_len = _prefix(route.to)
        op = _ROUTE_OP[step.op]
        if op == "delete":
            return rtnl.route(op, family, dst, dst_len, route.table, route.metric, ROUTE_PROTOCOL)
        hops: list[rtnl.Hop] = []
        if route.type == "unicast":
            ns = step.namespace
            for via, dev, weight, onlink in ([(h.via, h.dev, h.weight, h.onlink) for h in route.nexthops]
                                             if route.nexthops else ((route.via, route.dev, 1, route.onlink),)):
                index = 0
                if dev is not None:
                    found = self._index(ns, dev, known)
                    if found is None:
                        raise KernelError.of(errno.ENODEV, f"link {ns}/{dev}")
                    index = found
                hops.append({"gateway": _packed(via) if via else None, "ifindex": index, "weight": weight,
                             "onlink": onlink})
        return rtnl.route(op, family, dst, dst_len, route.table, route.metric, ROUTE_PROTOCOL, route.type, hops,
                          _packed(route.src) if route.src else None, route.mtu)

    def _create_link(self, step: Step, alias: str, known: dict[str, int | None]) -> _Op:
        """Create the link at an ifindex of our choosing, then mark it by that index, in one batch. The
        kernel runs both in the same syscall, so a crash cannot leave an unmarked link; and if the create
        fails (the name is taken), the mark goes to an index that is free, never to the link that has the
        name. The index is random above 2^24, where the kernel's own counter does not reach, and not one
        that this run has seen in the namespace. A veth's other end gets a chosen index too, so the
        steps that address it need no lookup."""
        made: NewLink = step.value
        link, ns = made.link, step.namespace
        index = self._free_index(ns)
        self.ns.indexes.setdefault(ns, {})[link.name] = index
        if link.peer is not None:
            pns, pname = link.peer
            if self.ns.fd(pns) is None:
                raise KernelError.of(errno.ENOENT, f"namespace {pns}")
            self.ns.indexes.setdefault(pns, {})[pname] = self._free_index(pns)
        facts = _Facts(self.ns, ns, known)
        made_kind = kind(link.kind)
        data = made_kind.info_data(link, made.peer, facts)
        parent = facts.parent_index(link) if made_kind.parent == "link" else None
        return _Op([rtnl.new_link(link.name, link.kind, index, link.mtu, _mac(link.mac), info_data=data, link=parent),
                    rtnl.set_link(index=index, alias=alias)],
                   cleanup=rtnl.del_link(index=index))

    def _free_index(self, ns: str) -> int:
        taken = self.ns.taken.setdefault(ns, set())
        while True:
            index = (1 << 24) + int.from_bytes(os.urandom(4)) % ((1 << 31) - (1 << 24) - 1)
            if index not in taken:
                taken.add(index)
                return index

    def _send(self, sock: transport.Socket, ops: list[tuple[int, Step, _Op | None]], results: Results) -> bool:
        """Send the built steps in one batch; record each step's result. False if any step failed.

        A step whose acknowledgement the kernel dropped (the receive buffer overflowed: batches are sized
        to it, so this is a safety net) may or may not have been done. It is recorded as done, so that a
        rollback runs its undo (deleting what was perhaps not made counts as done), and the batch as
        failed, which starts the rollback; the rollback is judged by reading the kernel again."""
        with signals_held():
            acks = sock.acks([r for _, _, op in ops if op is not None for r in op.requests])
            at, unknown = 0, []
            outcome: Results = []
            for position, step, op in ops:
                ack = transport.OK
                if op is not None:
                    mine = acks[at:at + len(op.requests)]
                    at += len(op.requests)
                    ack = next((a for a in mine if a.code > 0), None) or \
                        next((a for a in mine if a.code == transport.LOST), transport.OK)
                    if ack.code and mine[0].code in (0, transport.LOST) and op.cleanup is not None:
                        sock.batch([op.cleanup])  # a failed step leaves nothing behind
                if (step.op, ack.code) in _ALREADY_SO:
                    ack = transport.OK
                if step.op == "delete_link" or (step.op == "create_link" and ack.code > 0):
                    self._forget_link(step)
                if ack.code == transport.LOST:
                    unknown.append(position)
                    outcome.append((position, None))
                else:
                    outcome.append((position, _error(step, ack.code, ack.message) if ack.code else None))
            if unknown:
                outcome.append((unknown[-1], KernelError.of(errno.ENOBUFS, detail=transport.LOST_ACK.message)))
            results.extend(outcome)
        return all(error is None for _, error in outcome)

    def _forget_link(self, step: Step) -> None:
        """The link is gone, or was never made: forget the ifindexes remembered for it (both ends)."""
        self.ns.indexes.get(step.namespace, {}).pop(step.name or "", None)
        made = step.value if step.op == "create_link" else step.before
        peer = made.link.peer if isinstance(made, NewLink) else None
        if peer:
            self.ns.indexes.get(peer[0], {}).pop(peer[1], None)


class _Facts:
    """What a kind's encoder may ask the adapter while building a create request (no I/O beyond what
    the handles already hold: the batch's indexes were resolved first)."""

    def __init__(self, namespaces: Namespaces, namespace: str, known: dict[str, int | None]):
        self._ns = namespaces
        self.namespace = namespace
        self._known = known

    def parent_index(self, link: Link) -> int:
        """The ifindex of the link's parent, in this namespace (a parent elsewhere: Writer._create_child)."""
        assert link.parent is not None
        pns, pname = link.parent
        found = self._ns.indexes.get(pns, {}).get(pname, self._known.get(pname))
        if found is None:
            raise KernelError.of(errno.ENODEV, f"link {pns}/{pname}, the parent of {self.namespace}/{link.name}")
        return found

    def netns_fd(self, ns: str) -> int:
        fd = self._ns.fd(ns)
        if fd is None:
            raise KernelError.of(errno.ENOENT, f"namespace {ns}")
        return fd

    def index(self, ns: str, name: str) -> int:
        return self._ns.indexes[ns][name]


def _runs(steps: Sequence[Step]) -> Iterator[tuple[str, list[Item]]]:
    """The steps as runs: a namespace creation alone, consecutive namespace deletions together (one wait
    for their teardown), consecutive sysctls of one namespace together (one visit), consecutive link and
    route steps in one namespace together (one batch)."""
    run: list[Item] = []
    for position, step in enumerate(steps):
        if run and (step.op == "create_netns" or _key(step) != _key(run[-1][1])):
            yield _key(run[0][1])[0], run
            run = []
        run.append((position, step))
    if run:
        yield _key(run[0][1])[0], run


def _key(step: Step) -> tuple[str, str]:
    if step.op.endswith("_netns"):
        return step.op, ""
    if step.op == "create_link" and step.value.link.kind in ("tun", "tap"):
        return "tuntap", f"{step.namespace}/{step.name}"  # one at a time, through /dev/net/tun
    if step.op == "create_link" and step.value.link.parent is not None and step.value.link.parent[0] != step.namespace:
        return "child", f"{step.namespace}/{step.name}"  # a parent in another namespace: Writer._create_child
    return ("set_sysctl" if step.op == "set_sysctl" else "links"), step.namespace


_RTM_NEWNSID = 88
_ROUTE_OP = {"add_route": "add", "replace_route": "replace", "delete_route": "delete"}
_QDISC_OP = {"add_qdisc": "add", "change_qdisc": "change", "replace_qdisc": "graft"}


def _qdisc_options(qdisc: Qdisc) -> bytes:
    try:
        return impair.options(qdisc)
    except (OSError, ValueError) as exc:  # a distribution table that is not there (checked when loaded)
        raise KernelError.of(errno.ENOENT, f"the {qdisc.distribution} distribution table: {exc}") from None


def _unknown_qdisc(code: int, message: str | None) -> bool:
    """Whether the kernel refused a qdisc as a kind it does not have (its module is not there)."""
    return code == errno.ENOENT and "kind is unknown" in (message or "")


def _lacking_qdisc(kind_: str) -> str:
    return f"this kernel has no {kind_} qdisc (module sch_{kind_}; 'modprobe sch_{kind_}' loads it where it is " \
           "installed)"


@functools.lru_cache(maxsize=65536)
def _prefix(text: str) -> tuple[int, bytes, int]:
    """(family, packed network, prefix length) of a route's destination."""
    net = ipaddress.ip_network(text)
    return (socket.AF_INET if net.version == 4 else socket.AF_INET6), net.network_address.packed, net.prefixlen


@functools.lru_cache(maxsize=65536)
def _packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def _error(step: Step, code: int, message: str | None) -> KernelError:
    """A step's error; a create or change refused as not supported names what the kernel lacks (a module,
    a build option)."""
    link = step.value.link if step.op == "create_link" else step.value if step.op == "change_link" else None
    lacking = kind(link.kind).lacking(link) if link is not None and code == errno.EOPNOTSUPP else None
    if step.op in ("set_vlans", "set_self_vlans") and code == errno.EOPNOTSUPP:
        lacking = kind("bridge").lacking(Link(step.name or "", "bridge", vlans=step.value))
    if step.op in QDISC_OPS and step.op != "delete_qdisc" and _unknown_qdisc(code, message):
        lacking = _lacking_qdisc(step.value.kind)
    return KernelError.of(code, lacking or "", message)


def _kernel_error(exc: OSError) -> KernelError:
    return exc if isinstance(exc, KernelError) else KernelError.of(exc.errno or 0)


def _mac(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text.replace(":", ""))
