"""Rollback against the real kernel: a failure injected at every step k of a 20+ step plan (create and
change) leaves the kernel as it was, as iproute2 sees it."""

import errno

import pytest

from netlab import api
from netlab.errors import KernelError, RolledBack
from netlab import netlink
from netlab.kernel import Kernel, _Op
from netlab.model import load

from test_kernel_reconcile import CHANGED, HOST_BRIDGE, SEED


class FailingKernel(Kernel):
    """The real adapter, except that the step it runs as number `fail_at` (counting the rollback's) fails
    with `code`. A link step fails inside its batch, as a request the kernel refuses (the steps after it
    in the batch still run); a namespace step raises before it does anything."""

    def __init__(self, fail_at: int, code: int):
        super().__init__()
        self.fail_at, self.code, self.calls, self.target = fail_at, code, 0, None

    def execute(self, steps, topology, results):
        self.target = None
        if self.calls < self.fail_at <= self.calls + len(steps):
            self.target = steps[self.fail_at - self.calls - 1]
        first = len(results)
        super().execute(steps, topology, results)
        for i in range(first, len(results)):
            position, error = results[i]
            if steps[position] is self.target:
                results[i] = (position, KernelError(f"injected {errno.errorcode[self.code]}", self.code))
        self.calls += max((p for p, _ in results[first:]), default=-1) + 1

    def _op(self, step, alias, flush):
        if step is self.target:
            # A malformed attribute (a 1-byte MTU): the kernel refuses it with EINVAL before it looks for
            # the link, whatever the step; the error is then reported as `code`.
            bad = netlink.Request(netlink.RTM_SETLINK, 0, netlink.ifinfo(0x7FFFFFFF)
                                  + netlink.attr(netlink.IFLA_MTU, b"\x01"))
            return _Op([bad])
        return super()._op(step, alias, flush)

    def _create_netns(self, step, alias):
        self._inject(step)
        super()._create_netns(step, alias)

    def _delete_netns(self, step, alias):
        self._inject(step)
        super()._delete_netns(step, alias)

    def _inject(self, step):
        if step is self.target:
            raise KernelError(f"injected {errno.errorcode[self.code]}", self.code)


def plan_length(topo) -> int:
    return len(api.diff(topo).steps)


def run_every_k(lab, monkeypatch, topo, codes):
    before = lab.snapshot()
    n = plan_length(topo)
    assert n >= 20
    for k in range(1, n + 1):
        code = codes[k % len(codes)]
        monkeypatch.setattr(api, "_kernel", lambda k=k, code=code: FailingKernel(k, code))
        with pytest.raises(RolledBack) as info:
            api.apply(topo)
        assert f"step {k}/{n} failed" in str(info.value)
        assert info.value.cause.errno == code
        after = lab.snapshot()
        assert after == before, f"k={k}: the kernel is not as it was: " + repr(
            [(ns, l, before.get(ns, {}).get(l), after.get(ns, {}).get(l)) for ns in set(before) | set(after)
             for l in set(before.get(ns, {})) | set(after.get(ns, {}))
             if before.get(ns, {}).get(l) != after.get(ns, {}).get(l)])
    monkeypatch.undo()
    return n


CODES = [errno.EEXIST, errno.ENODEV, errno.EBUSY, errno.EPERM, errno.EINVAL]


def test_failure_at_every_step_of_a_create_rolls_back(lab, monkeypatch):
    both = lab.write(SEED + "\n".join(HOST_BRIDGE.split("\n")[3:]), "both.yaml")
    topo = load(both)
    run_every_k(lab, monkeypatch, topo, CODES)
    assert lab.snapshot() == {"<host>": {}}
    api.apply(topo)  # and without a fault it still works
    assert lab.ping(f"{lab.p}c1", "10.1.0.12") and lab.ping(f"{lab.p}n1", "10.0.0.3")


def test_failure_at_every_step_of_a_change_rolls_back(lab, monkeypatch):
    api.apply(load(lab.write(SEED)))
    changed = CHANGED.replace("vth1: {addresses: [10.0.0.12/24, \"fd00::2/64\"], mtu: 1400}",
                              "vth1: {addresses: [10.0.0.12/24, \"fd00::2/64\"], mtu: 1400}\n"
                              "      vth9: {kind: veth, peer: \"@n3/vth8\", addresses: [10.2.0.1/24, 10.2.1.1/24]}")
    changed = changed.replace("vth3: {addresses: [10.0.0.3/24]}",
                              "vth3: {addresses: [10.0.0.3/24]}\n      vth8: {addresses: [10.2.0.2/24], up: false}")
    topo = load(lab.write(changed, "changed.yaml"))
    run_every_k(lab, monkeypatch, topo, CODES)
    api.apply(topo)
    assert api.diff(topo).empty
