"""Rollback against the real kernel: a failure injected at every step k of a 20+ step plan (create and
change) leaves the kernel as it was, as iproute2 sees it."""

import errno

import pytest

from netlab import api
from netlab.errors import KernelError, RolledBack
from netlab.kernel import Kernel
from netlab.model import load

from test_kernel_reconcile import CHANGED, HOST_BRIDGE, SEED


class FailingKernel(Kernel):
    """The real adapter, except that call number `fail_at` of execute() raises instead of running."""

    def __init__(self, fail_at: int, code: int):
        super().__init__()
        self.fail_at, self.code, self.calls = fail_at, code, 0

    def execute(self, step, topology):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KernelError(f"injected {errno.errorcode[self.code]}", self.code)
        super().execute(step, topology)


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
        assert lab.snapshot() == before, f"k={k}: the kernel is not as it was"
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
                              "      vth9: {kind: veth, peer: \"@n3/vth8\", addresses: [10.2.0.1/24]}")
    changed = changed.replace("vth3: {addresses: [10.0.0.3/24]}",
                              "vth3: {addresses: [10.0.0.3/24]}\n      vth8: {addresses: [10.2.0.2/24], up: false}")
    topo = load(lab.write(changed, "changed.yaml"))
    run_every_k(lab, monkeypatch, topo, CODES)
    api.apply(topo)
    assert api.diff(topo).empty
