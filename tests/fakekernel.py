"""An in-memory kernel for applier tests: it executes plan steps on a State with the kernel's semantics
that matter to rollback (a veth pair dies whole, a namespace takes its links, routes and sysctls with it,
a deleted bridge frees its ports), and fails on request at call k. Like the real adapter, it can go on
running a few steps after a failure (`batch_tail`), as the rest of a netlink batch does, and it can be
interrupted just after the result of call k is recorded (`interrupt_after`), which is where the real
adapter lets signals in. A namespace deletion failed with ETIMEDOUT is done, then reported as failed, as
the adapter reports a deletion whose teardown it waited for in vain. Kernel-level behaviour is tested
against the real kernel in test_kernel_*.py; this fake exists to run every k of large plans in
milliseconds.

Routes and sysctls (issue 10), as the kernel has them:
- a route needs its devices to exist (ENODEV) and be up (ENETDOWN), its gateways to be on a subnet of
  their device or behind one of its device-only routes, unless `onlink` (ENETUNREACH), and its `src` to
  be an address of the namespace (EINVAL); adding an existing key is EEXIST, deleting a missing one (or
  one without netlab's mark, which a delete names) ESRCH, which the adapter takes as done, as the real
  one does (`strict_deletes` lets it through, to show a plan that deletes what is gone);
- deleting a link, or setting it down, deletes the routes through it (a multipath route whole); deleting
  the last IPv4 address of a link deletes its IPv4 routes; deleting an address deletes the IPv4 routes
  that have it as their source (an IPv6 route only loses its source);
- every namespace has the namespace-wide keys of NAMESPACE_SYSCTLS, every interface the per-interface
  keys of INTERFACE_SYSCTLS, made from the namespace's `default` values when it is created; writing
  net.ipv4.ip_forward (the same value as conf/all/forwarding) or net.ipv6.conf.all.forwarding rewrites
  every interface's forwarding and `default`'s; a key of an interface that does not exist is ENOENT.
- `observe()` reads the sysctls that `scope` names (paths, '*' for an interface), as the real reader
  reads those a Scope names, or all of them (`observe_all()`, or `scope` None): what a test compares.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import replace

from netlab import sysctls
from netlab.adapter import Results
from netlab.errors import KernelError
from netlab.plan import Step
from netlab.state import HOST, LOOPBACK, Link, Namespace, Qdisc, Route, RouteKey, State

NAMESPACE_SYSCTLS = {"net/ipv4/conf/all/forwarding": "0", "net/ipv4/conf/default/forwarding": "0",
                     "net/ipv6/conf/all/forwarding": "0", "net/ipv6/conf/default/forwarding": "0",
                     "net/ipv4/conf/all/rp_filter": "2", "net/ipv4/conf/default/rp_filter": "2"}
"""A new namespace's (its IPv4 `all` and `default` as a host's with loose reverse-path filtering)."""
INTERFACE_SYSCTLS = ("net/ipv4/conf/{}/forwarding", "net/ipv6/conf/{}/forwarding", "net/ipv4/conf/{}/rp_filter")
IP_FORWARD = "net/ipv4/ip_forward"
ALIASES = {IP_FORWARD: "net/ipv4/conf/all/forwarding"}  # one value, two names
Keys = Mapping[str, frozenset[str]]  # the sysctls read, by namespace, as a Scope names them


def scope_keys(want: State) -> dict[str, frozenset[str]]:
    """The sysctls that netlab reads for a topology whose desired State is `want` (as adapter.Scope.of)."""
    return {name: frozenset(ns.sysctls) | {sysctls.CLOBBERS[p] for p in ns.sysctls if p in sysctls.CLOBBERS}
            for name, ns in want.namespaces.items() if ns.sysctls}


def _matches(path: str, pattern: str) -> bool:
    if "*" not in pattern:
        return path == pattern
    head, tail = pattern.split("*")
    return path.startswith(head) and path.endswith(tail) and "/" not in path[len(head):len(path) - len(tail)] \
        and len(path) > len(head) + len(tail)


class FakeKernel:
    def __init__(self, state: State, fail_at: Set[int] = frozenset(), errno_: int = errno.EBUSY,
                 batch_tail: int = 0, interrupt_after: int | None = None, scope: Keys | None = None,
                 strict_deletes: bool = False):
        self.ns = {n: dict(ns.links) for n, ns in state.namespaces.items()}
        self.owner = {n: ns.owner for n, ns in state.namespaces.items()}
        self.routes: dict[str, dict[RouteKey, Route]] = {n: dict(ns.routes) for n, ns in state.namespaces.items()}
        self.sysctls: dict[str, dict[str, str]] = {}
        for n, ns in state.namespaces.items():
            self.sysctls[n] = dict(NAMESPACE_SYSCTLS)
            for name in ns.links:
                self._new_interface(n, name)
            for path, value in ns.sysctls.items():
                self.sysctls[n][ALIASES.get(path, path)] = value
        self.fail_at = set(fail_at)
        self.errno = errno_
        self.batch_tail = batch_tail
        self.interrupt_after = interrupt_after
        self.scope = scope
        self.strict_deletes = strict_deletes
        self.calls = 0
        self.executed: list[Step] = []

    # --- reading ---------------------------------------------------------------------------------------

    def observe(self) -> State:
        """The State as the reader gives it: the routes, and the sysctls `self.scope` names (all of them
        when it is None)."""
        return self._read(self.scope)

    def observe_all(self) -> State:
        """The State with every sysctl the fake has: what a test compares."""
        return self._read(None)

    def _read(self, keys: Keys | None) -> State:
        out = {}
        for n, links in self.ns.items():
            routes = {}
            for key, route in self.routes[n].items():
                mine = route.owner
                if mine is not None and n != HOST:
                    mine = self.owner[n]  # netlab's mark, in a namespace: the namespace's owner's
                elif mine is not None and not (route.devices() and all(
                        d in links and links[d].owner == mine for d in route.devices())):
                    mine = None  # in the root namespace, a topology's only through its links
                routes[key] = route._replace(owner=mine)
            values = {}
            wanted = None if keys is None else keys.get(n, frozenset())
            for path, value in self.sysctls[n].items() if n != HOST else ():
                for name in [path] + [alias for alias, same in ALIASES.items() if same == path]:
                    if wanted is None or any(_matches(name, w) for w in wanted):
                        values[name] = value
            out[n] = Namespace(n, self.owner[n], dict(links), routes, values)
        return State(out)

    # --- running steps ---------------------------------------------------------------------------------

    def execute(self, steps: Sequence[Step], topology: str, results: Results) -> None:
        tail, failed_in = None, None
        for position, step in enumerate(steps):
            if tail is not None:  # a batch holds the link and route steps of one namespace
                if tail == 0 or step.namespace != failed_in or step.op.endswith("_netns") \
                        or step.op == "set_sysctl":
                    return
                tail -= 1
            self.calls += 1
            try:
                if self.calls in self.fail_at:
                    if self.errno == errno.ETIMEDOUT and step.op == "delete_netns":
                        self.delete_netns(step, topology)  # done, but its teardown was not seen to end
                        self.executed.append(step)
                        results.append((position, None))
                    raise KernelError(f"injected failure at call {self.calls}", self.errno)
                getattr(self, step.op)(step, topology)
                self.executed.append(step)
                results.append((position, None))
            except KernelError as exc:
                results.append((position, exc))
                if tail is None:  # a run of sysctls stops at its first failure, as the adapter's does
                    batched = not step.op.endswith("_netns") and step.op != "set_sysctl"
                    tail, failed_in = (self.batch_tail, step.namespace) if batched else (0, None)
            if self.calls == self.interrupt_after:
                raise KeyboardInterrupt

    def _links(self, ns: str) -> dict[str, Link]:
        if ns not in self.ns:
            raise KernelError(f"no namespace {ns}", errno.ENOENT)
        return self.ns[ns]

    def _get(self, ns: str, name: str) -> Link:
        link = self._links(ns).get(name)
        if link is None:
            raise KernelError(f"no link {ns}/{name}", errno.ENODEV)
        return link

    def _put(self, ns: str, link: Link) -> None:
        self.ns[ns][link.name] = link

    def _new_interface(self, ns: str, name: str) -> None:
        """An interface's own sysctls, from the namespace's `default` ones."""
        values = self.sysctls[ns]
        for pattern in INTERFACE_SYSCTLS:
            values[pattern.format(name)] = values.get(pattern.format("default"), "0")

    def _gone(self, ns: str, name: str) -> None:
        """A link has gone from `ns`: the routes through it and its sysctls go with it."""
        if ns not in self.ns:
            return
        self.ns[ns].pop(name, None)
        self._unroute(ns, lambda route: name in route.devices())
        for pattern in INTERFACE_SYSCTLS:
            self.sysctls[ns].pop(pattern.format(name), None)

    def _unroute(self, ns: str, dies: Callable[[Route], bool]) -> None:
        self.routes[ns] = {k: r for k, r in self.routes[ns].items() if not dies(r)}

    def create_netns(self, step, topology):
        if step.namespace in self.ns:
            raise KernelError("exists", errno.EEXIST)
        self.ns[step.namespace] = {LOOPBACK: Link(LOOPBACK, "loopback", addresses=frozenset(), up=False,
                                                  owner=topology)}
        self.owner[step.namespace] = topology
        self.routes[step.namespace] = {}
        self.sysctls[step.namespace] = dict(NAMESPACE_SYSCTLS)
        self._new_interface(step.namespace, LOOPBACK)

    def delete_netns(self, step, topology):
        links = self.ns.pop(step.namespace, {})
        self.owner.pop(step.namespace, None)
        self.routes.pop(step.namespace, None)
        self.sysctls.pop(step.namespace, None)
        for link in links.values():
            if link.kind == "veth" and link.peer and link.peer[0] in self.ns:
                self._gone(*link.peer)

    def create_link(self, step, topology):
        link, peer = step.value.link, step.value.peer
        links = self._links(step.namespace)
        if step.name in links:
            raise KernelError("exists", errno.EEXIST)
        base = {"kind": link.kind, "addresses": frozenset(), "up": False, "owner": topology}
        if link.peer is not None:
            pns, pname = link.peer
            if pname in self._links(pns):
                raise KernelError("exists", errno.EEXIST)
            self._put(pns, Link(pname, peer=(step.namespace, step.name), mtu=peer.mtu or 1500,
                                mac=peer.mac or "02:00:00:00:00:02", **base))
            self._new_interface(pns, pname)
            base["peer"] = link.peer
        self._put(step.namespace, Link(step.name, mtu=link.mtu or 1500, mac=link.mac or "02:00:00:00:00:01",
                                       **base))
        self._new_interface(step.namespace, step.name)

    def delete_link(self, step, topology):
        link = self._links(step.namespace).get(step.name)
        if link is None:
            return  # ENODEV, which the adapter takes as done
        self._gone(step.namespace, step.name)
        if link.kind == "veth" and link.peer and link.peer[0] in self.ns:
            self._gone(*link.peer)
        if link.kind == "bridge":
            for name, other in list(self.ns[step.namespace].items()):
                if other.master == step.name:
                    self.ns[step.namespace][name] = replace(other, master=None)

    # Root qdiscs, as net/sched/sch_api.c decides: an add takes the place of the default (qdisc None) and
    # fails over another; a change needs that handle and kind there; a graft needs a handle not there, and
    # no duplicating netem beside another netem (sch_netem.c); a delete needs the handle to be the root one's.
    def add_qdisc(self, step, topology):
        link = self._get(step.namespace, step.name)
        if link.qdisc is not None:
            raise KernelError("NLM_F_REPLACE needed to override", errno.EEXIST)
        self._put(step.namespace, replace(link, qdisc=step.value))

    def change_qdisc(self, step, topology):
        link = self._get(step.namespace, step.name)
        if link.qdisc is None or link.qdisc.handle != step.value.handle:
            raise KernelError("no such qdisc", errno.ENOENT)
        if link.qdisc.kind != step.value.kind:
            raise KernelError("Invalid qdisc name", errno.EINVAL)
        self._put(step.namespace, replace(link, qdisc=step.value))

    def replace_qdisc(self, step, topology):
        link = self._get(step.namespace, step.name)
        if link.qdisc is not None and link.qdisc.handle == step.value.handle:
            raise KernelError("Invalid qdisc name", errno.EINVAL)
        old, new = link.qdisc, step.value
        if old is not None and old.kind == new.kind == "netem" and (_duplicates(old) or _duplicates(new)):
            # sch_netem.c check_netem_in_tree: the netem a graft replaces is still in the tree
            raise KernelError("netem: cannot mix duplicating netems with other netems in tree", errno.EINVAL)
        self._put(step.namespace, replace(link, qdisc=new))

    def delete_qdisc(self, step, topology):
        link = self._links(step.namespace).get(step.name)
        if link is None:
            return  # gone with its link
        if link.qdisc is None or link.qdisc.handle != step.before.handle:
            raise KernelError("Invalid handle", errno.EINVAL)
        self._put(step.namespace, replace(link, qdisc=None))

    def set_master(self, step, topology):
        if self._get(step.namespace, step.value).kind != "bridge":
            raise KernelError("not a bridge", errno.EINVAL)
        self._put(step.namespace, replace(self._get(step.namespace, step.name), master=step.value))

    def clear_master(self, step, topology):
        self._put(step.namespace, replace(self._get(step.namespace, step.name), master=None))

    def set_up(self, step, topology):
        self._put(step.namespace, replace(self._get(step.namespace, step.name), up=True))

    def set_down(self, step, topology):
        self._put(step.namespace, replace(self._get(step.namespace, step.name), up=False))
        self._unroute(step.namespace, lambda route: step.name in route.devices())

    def set_mtu(self, step, topology):
        self._put(step.namespace, replace(self._get(step.namespace, step.name), mtu=step.value))

    def set_mac(self, step, topology):
        self._put(step.namespace, replace(self._get(step.namespace, step.name), mac=step.value))

    def add_address(self, step, topology):
        link = self._get(step.namespace, step.name)
        assert link.addresses is not None, "a link whose addresses are not read has none added"
        if step.value in link.addresses:
            raise KernelError("exists", errno.EEXIST)
        self._put(step.namespace, replace(link, addresses=link.addresses | {step.value}))

    def delete_address(self, step, topology):
        link = self._get(step.namespace, step.name)
        assert link.addresses is not None, "a link whose addresses are not read has none deleted"
        left = link.addresses - {step.value}
        self._put(step.namespace, replace(link, addresses=left))
        if step.value not in link.addresses:
            return
        ip = step.value.split("/")[0]
        if ":" not in ip:
            self._unroute(step.namespace, lambda route: route.src == ip)
            if not any(":" not in a for a in left):  # its last IPv4 address: its IPv4 routes are flushed
                self._unroute(step.namespace, lambda route: route.family == 4 and step.name in route.devices())
        else:  # an IPv6 route only loses its source
            self.routes[step.namespace] = {k: r._replace(src=None) if r.src == ip else r
                                           for k, r in self.routes[step.namespace].items()}

    # --- routes ----------------------------------------------------------------------------------------

    def _check_route(self, ns: str, route: Route) -> None:
        """What the kernel checks when a route is added: its devices, its gateways, its source."""
        links = self._links(ns)
        for name in sorted(route.devices()):
            if name not in links:
                raise KernelError(f"no link {ns}/{name}", errno.ENODEV)
            if not links[name].up:
                raise KernelError(f"link {ns}/{name} is down", errno.ENETDOWN)
        hops = [(h.via, h.dev, h.onlink) for h in route.nexthops] or [(route.via, route.dev, route.onlink)]
        for via, dev, onlink in hops:
            if via is None or onlink:
                continue
            gateway = ipaddress.ip_address(via)
            if gateway.version == 6 and gateway.is_link_local and dev is not None:
                continue
            devs = [dev] if dev is not None else list(links)
            nets = {ipaddress.ip_interface(a).network for d in devs for a in links[d].addresses or ()}
            nets |= {ipaddress.ip_network(r.to) for r in self.routes[ns].values()
                     if r.via is None and not r.nexthops and r.type == "unicast" and r.dev in devs}
            if not any(gateway in net for net in nets if net.version == gateway.version):
                raise KernelError(f"gateway {via} is not reachable in {ns}", errno.ENETUNREACH)
        if route.src is not None and not any(a.split("/")[0] == route.src for lk in links.values()
                                             for a in lk.addresses or ()):
            raise KernelError(f"source {route.src} is not an address of {ns}", errno.EINVAL)

    def add_route(self, step, topology):
        route: Route = step.value
        self._check_route(step.namespace, route)
        if route.key in self.routes[step.namespace]:
            raise KernelError("exists", errno.EEXIST)
        self.routes[step.namespace][route.key] = route._replace(owner=topology)

    def replace_route(self, step, topology):
        route: Route = step.value
        self._check_route(step.namespace, route)
        self.routes[step.namespace][route.key] = route._replace(owner=topology)

    def delete_route(self, step, topology):
        route: Route = step.value
        if step.namespace not in self.routes and self.strict_deletes:
            raise KernelError(f"no namespace {step.namespace}", errno.ENOENT)
        routes = self.routes.get(step.namespace, {})
        found = routes.get(route.key)
        if found is None or found.owner is None:  # a delete names netlab's mark: another's is not found
            if self.strict_deletes:
                raise KernelError(f"no route {route.label} in {step.namespace}", errno.ESRCH)
            return  # ESRCH, which the adapter takes as done
        del routes[route.key]

    # --- sysctls ---------------------------------------------------------------------------------------

    def set_sysctl(self, step, topology):
        if step.namespace not in self.ns:
            raise KernelError(f"no namespace {step.namespace}", errno.ENOENT)
        values = self.sysctls[step.namespace]
        path = ALIASES.get(step.name, step.name)
        iface = sysctls.interface_of(path)
        if iface is not None and iface not in self.ns[step.namespace]:
            raise KernelError(f"no sysctl {path} in {step.namespace}", errno.ENOENT)
        values[path] = step.value
        pattern = sysctls.CLOBBERS.get(path)
        if pattern is not None:  # every interface's, and default's
            head, tail = pattern.split("*")
            for key in values:
                if key.startswith(head) and key.endswith(tail):
                    values[key] = step.value


def _duplicates(qdisc: Qdisc) -> bool:
    return bool(dict(qdisc.params).get("duplicate", (0,))[0])


def host_only() -> State:
    return State({HOST: Namespace(HOST)})
