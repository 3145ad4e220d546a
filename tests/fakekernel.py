"""An in-memory kernel for applier tests: it executes plan steps on a State with the kernel's semantics
that matter to rollback (a veth pair dies whole, a namespace takes its links with it, a deleted bridge
frees its ports), and fails on request at call k. Like the real adapter, it can go on running a few steps
after a failure (`batch_tail`), as the rest of a netlink batch does, and it can be interrupted just after
the result of call k is recorded (`interrupt_after`), which is where the real adapter lets signals in.
Kernel-level behaviour is tested against the real kernel in test_kernel_*.py; this fake exists to run
every k of large plans in milliseconds."""

from __future__ import annotations

import errno
from collections.abc import Sequence, Set
from dataclasses import replace

from netlab.adapter import Results
from netlab.errors import KernelError
from netlab.plan import Step
from netlab.state import HOST, LOOPBACK, Link, Namespace, State


class FakeKernel:
    def __init__(self, state: State, fail_at: Set[int] = frozenset(), errno_: int = errno.EBUSY,
                 batch_tail: int = 0, interrupt_after: int | None = None):
        self.ns = {n: dict(ns.links) for n, ns in state.namespaces.items()}
        self.owner = {n: ns.owner for n, ns in state.namespaces.items()}
        self.fail_at = set(fail_at)
        self.errno = errno_
        self.batch_tail = batch_tail
        self.interrupt_after = interrupt_after
        self.calls = 0
        self.executed: list[Step] = []

    def observe(self) -> State:
        return State({n: Namespace(n, self.owner[n], dict(links)) for n, links in self.ns.items()})

    def execute(self, steps: Sequence[Step], topology: str, results: Results) -> None:
        tail, failed_in = None, None
        for position, step in enumerate(steps):
            if tail is not None:  # a batch holds link steps of one namespace
                if tail == 0 or step.namespace != failed_in or step.op.endswith("_netns"):
                    return
                tail -= 1
            self.calls += 1
            try:
                if self.calls in self.fail_at:
                    raise KernelError(f"injected failure at call {self.calls}", self.errno)
                getattr(self, step.op)(step, topology)
                self.executed.append(step)
                results.append((position, None))
            except KernelError as exc:
                results.append((position, exc))
                if tail is None:
                    tail, failed_in = (self.batch_tail, step.namespace) if not step.op.endswith("_netns") \
                        else (0, None)
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

    def create_netns(self, step, topology):
        if step.namespace in self.ns:
            raise KernelError("exists", errno.EEXIST)
        self.ns[step.namespace] = {LOOPBACK: Link(LOOPBACK, "loopback", addresses=frozenset(), up=False,
                                                  owner=topology)}
        self.owner[step.namespace] = topology

    def delete_netns(self, step, topology):
        links = self.ns.pop(step.namespace, {})
        self.owner.pop(step.namespace, None)
        for link in links.values():
            if link.kind == "veth" and link.peer and link.peer[0] in self.ns:
                self.ns[link.peer[0]].pop(link.peer[1], None)

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
            base["peer"] = link.peer
        self._put(step.namespace, Link(step.name, mtu=link.mtu or 1500, mac=link.mac or "02:00:00:00:00:01",
                                       **base))

    def delete_link(self, step, topology):
        link = self._links(step.namespace).pop(step.name, None)
        if link is None:
            return
        if link.kind == "veth" and link.peer and link.peer[0] in self.ns:
            self.ns[link.peer[0]].pop(link.peer[1], None)
        if link.kind == "bridge":
            for name, other in list(self.ns[step.namespace].items()):
                if other.master == step.name:
                    self.ns[step.namespace][name] = replace(other, master=None)

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
        self._put(step.namespace, replace(link, addresses=link.addresses - {step.value}))


def host_only() -> State:
    return State({HOST: Namespace(HOST)})
