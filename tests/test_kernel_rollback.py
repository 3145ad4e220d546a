"""Rollback against the real kernel (issue 4, guarantees 1 and 2). A failure injected at every step k of
30+ step plans (create, change, destroy), with six errnos (a timeout among them), leaves the kernel as it
was, as iproute2 sees it, and the error names the step, the object and the errno. A second fault, in the
rollback itself, is reported as ROLLBACK_INCOMPLETE with what is left (exit 1, never success), and a later
apply or destroy still converges. A user's objects beside the topology come through byte-identical."""

import errno
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pytest
from typer.testing import CliRunner

from netlab import api, cli
from netlab.adapter import Scope
from netlab.errors import RollbackIncomplete, RolledBack
from netlab.kernel import Kernel
from netlab.model import Topology, load
from netlab.netlink import transport
from netlab.plan import Plan, Step
from netlab.planner import plan as make_plan
from netlab.state import HOST, Namespace, State

from canaries import Canaries
from conftest import Lab, count
from faults import Faulty, timed_out
from scenarios import KINDS, KINDS_CHANGED, ROUTED, ROUTED_CHANGED
from test_kernel_kinds import kinds_snapshot
from test_kernel_reconcile import CHANGED, HOST_BRIDGE, SEED

pytestmark = pytest.mark.kernel
CODES = [errno.EEXIST, errno.ENODEV, errno.EBUSY, errno.EPERM, errno.EINVAL, errno.ETIMEDOUT]


def charged(steps: Sequence[Step], k: int, code: int) -> int:
    """The step (1-based) whose failure a fault injected at step k is reported as: k, except for a timed
    out namespace deletion, whose error is charged to the last deletion of its run."""
    if not timed_out(steps[k - 1], code):
        return k
    while k < len(steps) and steps[k].op == "delete_netns":
        k += 1
    return k


def the_plan(run: str, topo: Topology) -> Plan:
    if run == "apply":
        return api.diff(topo)
    with Kernel() as kernel:
        live = api._observe(kernel, Scope(topo.name, frozenset(), frozenset()))
    return make_plan(State({HOST: Namespace(HOST)}), live, topo.name, destroy=True)


def run_every_k(lab: Lab, canaries: Canaries, figures: dict[str, int], run: str, topo: Topology,
                minimum: int = 30, snapshot: Callable[[Lab], dict[str, dict[str, Any]]] = Lab.snapshot) -> int:
    """Inject a fault at every step k of the plan of `run` (apply or destroy) of `topo`: each time the
    kernel, as `snapshot` reads it (iproute2's view), must be as it was before."""
    before = snapshot(lab)
    steps = the_plan(run, topo).steps
    n = len(steps)
    assert n >= minimum
    timeouts = 0
    for k in range(1, n + 1):
        code = CODES[k % len(CODES)]
        if steps[k - 1].op == "delete_netns":  # the timeout's real path, and one other errno
            code = errno.ETIMEDOUT if k % 2 else CODES[k % (len(CODES) - 1)]
            timeouts += code == errno.ETIMEDOUT
        with pytest.raises(RolledBack) as info, api.using(partial(Faulty, {k}, code)):
            getattr(api, run)(topo)
        at = charged(steps, k, code)
        step = steps[at - 1]
        assert f"step {at}/{n} failed: {step.op} {step.describe()}: " in str(info.value)
        assert f"({errno.errorcode[code]}, errno {code})" in str(info.value)
        assert info.value.cause.errno == code
        after = snapshot(lab)
        assert after == before, f"k={k} ({step.op} {step.describe()}): the kernel is not as it was: " + \
            delta(before, after)
        assert canaries.changes() == [], f"k={k}"
    count(figures, f"rollback: faults injected, every step of a {n}-step plan ({run})", n)
    count(figures, "rollback: namespace deletions whose teardown wait timed out", timeouts)
    return n


def delta(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> str:
    """What differs between two snapshots: per namespace, the links, and the routes and sysctls only as
    far as they differ."""
    out = []
    for ns in sorted(set(before) | set(after)):
        b, a = before.get(ns, {}), after.get(ns, {})
        for name in sorted(set(b) | set(a)):
            if b.get(name) == a.get(name):
                continue
            if name == "<routes>":
                out.append(f"{ns}: routes gone {sorted(set(b[name]) - set(a.get(name, [])))}, "
                           f"routes new {sorted(set(a.get(name, [])) - set(b.get(name, [])))}")
            elif name == "<sysctls>":
                out.append(f"{ns}: sysctls " + repr({k: (b.get(name, {}).get(k), a.get(name, {}).get(k))
                                                     for k in set(b.get(name, {})) | set(a.get(name, {}))
                                                     if b.get(name, {}).get(k) != a.get(name, {}).get(k)}))
            else:
                out.append(f"{ns}: {name}: {b.get(name)} -> {a.get(name)}")
    return "\n".join(out)


def both(lab):
    return load(lab.write(SEED + "\n".join(HOST_BRIDGE.split("\n")[3:]), "both.yaml"))


def test_failure_at_every_step_of_a_create_rolls_back(lab, canaries, figures):
    topo = both(lab)
    run_every_k(lab, canaries, figures, "apply", topo)
    api.apply(topo)  # and without a fault it still works
    assert lab.ping(f"{lab.p}c1", "10.1.0.12") and lab.ping(f"{lab.p}n1", "10.0.0.3")


def test_failure_at_every_step_of_a_change_rolls_back(lab, canaries, figures):
    api.apply(load(lab.write(SEED)))
    changed = CHANGED.replace("vth1: {addresses: [10.0.0.12/24, \"fd00::2/64\"], mtu: 1400}",
                              "vth1: {addresses: [10.0.0.12/24, \"fd00::2/64\"], mtu: 1400}\n"
                              "      vth9: {kind: veth, peer: \"@n3/vth8\", addresses: [10.2.0.1/24, 10.2.1.1/24]}")
    changed = changed.replace("vth3: {addresses: [10.0.0.3/24]}",
                              "vth3: {addresses: [10.0.0.3/24]}\n      vth8: {addresses: [10.2.0.2/24], up: false}")
    topo = load(lab.write(changed, "changed.yaml"))
    run_every_k(lab, canaries, figures, "apply", topo, minimum=20)
    api.apply(topo)
    assert api.diff(topo).empty


def test_failure_at_every_step_of_a_destroy_rolls_back_with_a_users_port(lab, canaries, figures):
    topo = both(lab)
    api.apply(topo)
    canaries.join(f"{lab.p}br")  # rebuilding the bridge must take the user's port back
    run_every_k(lab, canaries, figures, "destroy", topo, minimum=5)
    assert api.diff(topo).empty
    api.destroy(topo)
    assert canaries.changes(port_freed=True) == []


def test_a_fault_in_the_rollback_is_reported_and_a_later_run_converges(lab, canaries, figures):
    """The step k fails, then the first undo after it. The verdict comes from the kernel: where the state
    is as before anyway (a namespace took the link whose undo failed with it) that is a rollback;
    otherwise ROLLBACK_INCOMPLETE with the leftovers, exit 1. Then apply (even k) or destroy (odd k)."""
    topo = both(lab)
    path = lab.tmp / "both.yaml"
    empty = lab.snapshot()
    n = len(api.diff(topo).steps)
    incomplete = 0
    runner = CliRunner()
    for k in range(2, n + 1):
        with api.using(partial(Faulty, {k, k + 1}, errno.EBUSY)):
            result = runner.invoke(cli.app, ["apply", str(path), "-o", "json"])
        assert result.exit_code == 1, result.output
        if '"ROLLBACK_INCOMPLETE"' in result.output:
            incomplete += 1
            assert '"leftovers"' in result.output and lab.snapshot() != empty, f"k={k}: {result.output}"
        else:
            assert '"ROLLED_BACK"' in result.output and lab.snapshot() == empty, f"k={k}: {result.output}"
        if k % 2 == 0:
            api.apply(topo)
            assert api.diff(topo).empty, f"k={k}"
        api.destroy(topo)
        assert lab.snapshot() == empty, f"k={k}"
        assert canaries.changes() == [], f"k={k}"
    count(figures, "rollback: double faults (a step, then its rollback)", n - 1)
    count(figures, "rollback: double faults reported as ROLLBACK_INCOMPLETE (the rest: the kernel was as before)",
          incomplete)
    assert incomplete >= n // 6, f"only {incomplete} of {n - 1} double faults left the rollback incomplete"


def test_rollback_incomplete_lists_what_is_left(lab, canaries):
    topo = both(lab)
    steps = api.diff(topo).steps
    k = next(i for i, s in enumerate(steps, 1) if s.op == "create_link" and s.namespace == HOST)
    with pytest.raises(RollbackIncomplete) as info, api.using(lambda: Faulty({k + 1, k + 2}, errno.EBUSY)):
        api.apply(topo)
    message = str(info.value)
    assert f"step {k + 1}/{len(steps)} failed" in message and "ROLLBACK INCOMPLETE" in message
    assert f"could not undo 'link {steps[k - 1].describe().split(' ', 1)[1]}" in message
    assert f"Device or resource busy (EBUSY, errno {errno.EBUSY})" in message
    assert "fix: run 'netlab apply' again" in message
    left = [name for name in lab.links() if name.startswith(lab.p) and not name.startswith(f"{lab.p}u")]
    assert left and all(any(name in item for item in info.value.leftovers) for name in left)
    api.destroy(topo)


def test_acks_the_kernel_drops_roll_back_and_a_small_buffer_is_enough(lab, canaries, monkeypatch):
    """The kernel runs every request of a sendmsg inside the syscall, so a receive buffer too small for the
    acks drops acks, not requests: the steps whose acks were lost may or may not have run. With batches
    sized to the buffer (a 4 KiB one here, which the kernel doubles: nine acks), the apply goes through;
    when acks are dropped anyway (the sizing defeated), it is an error that rolls back through the usual
    path, judged by the kernel, never a traceback."""
    many = "\n".join(f"      x{i}: {{kind: veth, peer: \"@n0/y{i}\", addresses: [10.3.{i}.1/24]}}\n      y{i}: {{}}"
                     for i in range(30))
    topo = load(lab.write(SEED.replace("interfaces:", "interfaces:\n" + many, 1), "many.yaml"))
    empty = lab.snapshot()
    monkeypatch.setattr(transport, "RCVBUF", 4096)
    api.apply(topo)  # 30 veths with their addresses in one namespace, nine acks at a time
    assert api.diff(topo).empty and lab.ping(f"{lab.p}n1", "10.0.0.3")
    api.destroy(topo)
    assert lab.snapshot() == empty
    monkeypatch.setattr(transport, "ACK_COST", 1)  # every batch as large as it comes: acks are dropped
    with pytest.raises(RolledBack) as info:
        api.apply(topo)
    assert "No buffer space available (ENOBUFS" in str(info.value) and "dropped" in str(info.value)
    assert lab.snapshot() == empty and canaries.changes() == []


# --- a routed topology (issue 10): route and sysctl steps in the every-k loop ---------------------------

# What the routed tests compare beside links and routes: forwarding (which the global keys rewrite on
# every interface) and reverse-path filtering, in every namespace of the test (and the root namespace's).
ROUTED_SYSCTLS = ["net/ipv4/ip_forward", "net/ipv4/conf/*/forwarding", "net/ipv6/conf/*/forwarding",
                  "net/ipv4/conf/*/rp_filter"]


def routed(lab: Lab, text: str = ROUTED, filename: str = "routed.yaml") -> Topology:
    lab.sysctls = ROUTED_SYSCTLS
    return load(lab.write(text, filename))


def reaches(lab: Lab, ns: str, address: str, tries: int = 10) -> bool:
    """A ping that waits for IPv6 duplicate address detection to let the addresses be used."""
    return any(lab.ping(ns, address) for _ in range(tries))


def routes_work(lab: Lab) -> None:
    p = lab.p
    assert reaches(lab, f"{p}h1", "10.255.0.1")  # h1's /32 route (metric 50, src) to r's lo address
    assert reaches(lab, f"{p}h2", "10.201.0.1")  # h2's metric 100 route through eth1
    assert reaches(lab, f"{p}h1", "fd02::1") and lab.ping(f"{p}h2", "fd01::1")  # the IPv6 default routes
    assert reaches(lab, f"{p}h1", "fd02::2") and lab.ping(f"{p}h2", "fd01::2")  # forwarded by r


def test_failure_at_every_step_of_a_routed_create_rolls_back(lab, canaries, figures):
    topo = routed(lab)
    steps = api.diff(topo).steps
    assert {"add_route", "set_sysctl"} <= {s.op for s in steps}
    run_every_k(lab, canaries, figures, "apply", topo, minimum=45)
    api.apply(topo)
    assert api.diff(topo).empty
    routes_work(lab)


def test_failure_at_every_step_of_a_routed_change_rolls_back(lab, canaries, figures):
    api.apply(routed(lab))
    topo = routed(lab, ROUTED_CHANGED, "changed.yaml")
    ops = {s.op for s in api.diff(topo).steps}
    assert {"add_route", "delete_route", "replace_route", "set_sysctl", "delete_link", "create_link"} <= ops, ops
    run_every_k(lab, canaries, figures, "apply", topo, minimum=20)
    api.apply(topo)
    assert api.diff(topo).empty
    p = lab.p
    assert lab.run_in(f"{p}r", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
    assert lab.run_in(f"{p}r", "cat", "/proc/sys/net/ipv4/conf/eth3/rp_filter").stdout.strip() == "0"
    assert reaches(lab, f"{p}h1", "10.201.0.254")  # the changed gateway
    assert reaches(lab, f"{p}h2", "10.201.0.1")  # the route whose metric changed, through the new link


def test_failure_at_every_step_of_a_routed_destroy_rolls_back(lab, canaries, figures):
    """The router's namespace is deleted last: it is deleted, and put back with its routes and sysctls,
    when a deletion of the run times out (ETIMEDOUT, the fault's real path: all of the run are done)."""
    topo = routed(lab)
    api.apply(topo)
    run_every_k(lab, canaries, figures, "destroy", topo, minimum=4)
    assert api.diff(topo).empty
    routes_work(lab)
    api.destroy(topo)


# --- the link kinds of issue 11 on this kernel: macvlan, vxlan, tap, bridge STP ------------------------
# Judged by kinds_snapshot: Lab.snapshot and, per link, the kind's own data (a macvlan's mode and source
# MACs, a vxlan's VNI, remote, local, port, learning; a tap's type, owner, group, queues; a bridge's STP
# state) and its parent by name across namespaces, as `ip -j -d link show` reports them.

def kinds_work(lab: Lab) -> None:
    p = lab.p
    assert reaches(lab, f"{p}a", "192.168.71.2")  # across the vxlan overlay
    assert reaches(lab, f"{p}c", "10.72.0.1")  # macvlans in bridge mode, one in another namespace
    assert reaches(lab, f"{p}b", "10.73.0.1")  # the same, on @a/eth2, whose children are replaced with it


def test_failure_at_every_step_of_a_kinds_create_rolls_back(lab, canaries, figures):
    topo = load(lab.write(KINDS))
    kinds = {s.value.link.kind for s in api.diff(topo).steps if s.op == "create_link"}
    assert {"macvlan", "vxlan", "tap", "bridge", "veth"} <= kinds, kinds
    run_every_k(lab, canaries, figures, "apply", topo, minimum=45, snapshot=kinds_snapshot)
    api.apply(topo)
    assert api.diff(topo).empty
    kinds_work(lab)


def test_failure_at_every_step_of_a_kinds_change_rolls_back(lab, canaries, figures):
    """In-place changes (change_link: a macvlan's mode and MACs, STP, a vxlan's learning and remote) and
    replacements (a tap, a vxlan's VNI, a veth with its macvlan children here and in another namespace)."""
    api.apply(load(lab.write(KINDS)))
    applied = kinds_snapshot(lab)
    topo = load(lab.write(KINDS_CHANGED, "changed.yaml"))
    steps = api.diff(topo).steps
    changed = {s.name for s in steps if s.op == "change_link"}
    replaced = {s.name for s in steps if s.op == "delete_link"} & {s.name for s in steps if s.op == "create_link"}
    assert changed == {"br1", "mv1", "vx0", "mv3"} and {"tap0", "vx1", "eth2", "mv5", "mv6"} <= replaced, steps
    run_every_k(lab, canaries, figures, "apply", topo, minimum=20, snapshot=kinds_snapshot)
    assert kinds_snapshot(lab) == applied
    api.apply(topo)
    assert api.diff(topo).empty
    after = kinds_snapshot(lab)
    assert after[f"{lab.p}c"]["br1"]["data"] == {"stp_state": 0}
    assert after[f"{lab.p}b"]["vx0"]["data"]["remote"] == "10.71.0.3"
    assert after[f"{lab.p}b"]["mv6"]["parent"] == (f"{lab.p}a", "eth2")
    kinds_work(lab)


def test_failure_at_every_step_of_a_kinds_destroy_rolls_back(lab, canaries, figures):
    topo = load(lab.write(KINDS))
    api.apply(topo)
    run_every_k(lab, canaries, figures, "destroy", topo, minimum=3, snapshot=kinds_snapshot)
    assert api.diff(topo).empty
    kinds_work(lab)
    api.destroy(topo)
