"""Hostile input: generated and mutated topology files, binary junk, alias bombs, huge files and names at
and past every limit. Loading any of them either gives a valid Topology or a ValidationError naming what
is wrong: never another exception, never more than a bounded time and memory, never a change to the
kernel. A sample also goes through the `netlab` command, which must exit 0 or 1 without a traceback.

Routed topologies (routes and sysctls drawn from pools of good and bad values around a fixed set of
links) must be refused with every problem at a file:line, or plan: fresh, against themselves (nothing),
and destroyed (every route and sysctl of theirs put back by the undo).

Kinded topologies (issue 11's link kinds: children on a fixed set of links, each kind's fields drawn from
pools of good values, one field in eight swapped for a bad one) must be refused at a file:line, or plan
the same twice, make parents first, never touch the external link, and converge on a fake kernel that keeps
what the kinds' encoders send and reads it back with their decoders, fresh and after an edit (in place or
replaced); on this machine's kernel (macvlan, vxlan, tun/tap, bridge stp) a few pairs are applied, diffed,
changed and destroyed for real.

Impairments (issue 12): some interfaces of routed and kinded topologies carry an `impair` (netem or tbf
shapes drawn field by field from pools of good values, one in eight broken by a bad value or a bad
combination); the properties above hold with them: refused at a file:line, or planned, converging on the
fake kernel (which refuses a graft that puts a duplicating netem beside another, as the kernel does), and
destroyed.

NETLAB_FUZZ_EXAMPLES sets the number of examples per property (default 1000; a soak run may use 20000).
"""

import copy
import errno
import os
import string
import subprocess
import sys
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from netlab.errors import KernelError, ValidationError
from netlab.kernel.tuntap import NO_ID
from netlab.kinds import kind
from netlab.model import MAX_FILE_BYTES, Topology, desired, load, loads
from netlab.netlink import rtnl
from netlab.plan import QDISC_OPS
from netlab.planner import plan
from netlab.state import HOST, Link, Namespace, State, options as link_options

from conftest import _require_root, count
from fakekernel import FakeKernel, scope_keys

EXAMPLES = int(os.environ.get("NETLAB_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.too_slow],
                derandomize="CI" in os.environ)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "topologies", "seed.yaml")) as f:
    SEED = f.read()

NASTY = ["", ".", "..", "/", "a/b", "%d", "eth%d", "a:b", "a b", "a\nb", "a\tb", "$(reboot)", "`id`", ";rm -rf /",
         "ä", "名前", "\u202e", "\x00", "-", "host", "lo", "x" * 15, "x" * 16, "y" * 255, "y" * 256, "../../etc"]
names = st.one_of(st.sampled_from(NASTY), st.text(min_size=0, max_size=20),
                  st.text(alphabet=string.ascii_lowercase + string.digits + "-_.", min_size=1, max_size=17))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True), names,
                    st.sampled_from(["10.0.0.1/24", "fd00::1/64", "10.0.0.0/24", "fe80::1/64", "300.1.1.1/8",
                                     "10.0.0.1", "02:00:00:00:00:01", "01:00:00:00:00:00", "bridge", "veth"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(names, inner, max_size=4)), max_leaves=12)
KIND_NAMES = ["veth", "bridge", "dummy", "vlan", "macvlan", "ipvlan", "vxlan", "tun", "tap", "loopback", "Vlan"]
FIELDS = ["kind", "peer", "master", "addresses", "mtu", "mac", "up", "extra", "parent", "id", "protocol", "mode",
          "macs", "flags", "vni", "remote", "group", "local", "port", "learning", "ttl", "owner", "multi_queue", "stp",
          "vlan_filtering", "vlans", "pvid"]
interface = st.dictionaries(st.sampled_from(FIELDS), st.one_of(values, st.sampled_from(KIND_NAMES)), max_size=5)
topology = st.fixed_dictionaries(
    {"name": st.one_of(names, values)},
    optional={"namespaces": st.one_of(values, st.dictionaries(
        names, st.one_of(values, st.fixed_dictionaries({}, optional={
            "interfaces": st.dictionaries(names, interface, max_size=4),
            "routes": st.one_of(values, st.lists(st.dictionaries(
                st.sampled_from(["to", "via", "dev", "metric", "src", "type", "onlink", "table", "mtu", "nexthops",
                                 "gw"]), values, max_size=4), max_size=3)),
            "sysctls": values, "forwarding": values})), max_size=4)), "extra": values})

# Routed topologies: fixed links (a/e0 -- b/e0, a/e1 -- a/e2, and with `host`, host/h0 -- b/e1) with their
# addresses, and routes and sysctls drawn coherently (a family, then a destination, gateway, device and
# source of that family that the namespace can use), one field in eight then swapped for a value that
# breaks some rule.
ADDRESSES = {("a", "e0"): ["10.0.0.1/24", "fd00::1/64"], ("a", "e1"): ["10.0.1.1/24"], ("a", "e2"): [],
             ("b", "e0"): ["10.0.0.2/24", "fd00::2/64"], ("b", "e1"): ["10.0.5.2/24"], ("host", "h0"): ["10.0.5.1/24"]}
GOOD: dict[str, dict[str, list[str]]] = {  # per namespace: gateways, devices, sources (both families mixed)
    "a": {"via": ["10.0.0.2", "10.0.1.2", "fd00::2"], "dev": ["e0", "e1", "lo"],
          "src": ["10.0.0.1", "10.0.1.1", "fd00::1"]},
    "b": {"via": ["10.0.0.1", "fd00::1"], "dev": ["e0", "lo"], "src": ["10.0.0.2", "fd00::2"]},
    "host": {"via": ["10.0.5.2"], "dev": ["h0"], "src": ["10.0.5.1"]},
}
DESTINATIONS = {4: ["default", "10.9.0.0/16", "10.8.0.0/16", "192.0.2.0/24", "198.51.100.0/24", "10.255.0.9/32"],
                6: ["default6", "fd00:9::/48", "fd00:8::/48", "::/0"]}
BAD: dict[str, list[Any]] = {"to": ["10.9.0.1/16", "10.9.0.0/33", "nowhere", "", "0.0.0.0/0", "10.0.0.0/24", 7],
       "via": ["fe80::1", "192.0.2.1", "10.0.0.9", "224.0.0.1", "0.0.0.0", "10.0.0.1", "10.0.0.1/24", "gw"],
       "dev": ["e2", "h0", "nope", "b/e0", "", 3], "metric": [-1, 2**32, "low"], "table": [0, 255, "local", -1],
       "type": ["local", "throw", "Blackhole"], "mtu": [67, 65536, 1279], "src": ["10.0.0.9", "fd00::9", "x"],
       "weight": [0, 257], "onlink": ["yes", None], "gw": ["10.0.0.2"]}
SYSCTLS = ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.forwarding",
           "net.ipv4.conf.e0.rp_filter", "net.ipv4.conf.e0.forwarding", "net.ipv6.conf.e0.forwarding",
           "net.ipv4.conf.default.rp_filter", "net.ipv4.conf.lo.rp_filter", "net/ipv4/conf/e0/arp_ignore",
           "net.ipv4.conf.all.rp_filter", "net.core.somaxconn", "net.ipv4.tcp_rmem"]
BAD_SYSCTLS = ["net.ipv4.conf.nope.rp_filter", "kernel.pid_max", "net", "net..x", "net/ipv4/conf/e0.10/rp_filter"]
SYSCTL_VALUES: list[Any] = [0, 1, 2, "1", "4096 87380 6291456"]
BAD_SYSCTL_VALUES: list[Any] = [True, None, [1], "", "a\nb", 1.5, {"a": 1}]
rarely = st.sampled_from([False] * 7 + [True])


IMPAIR_GOOD: dict[str, list[Any]] = {
    "delay": ["40ms", "1us", "2s", "0.5ms"], "jitter": ["5ms", "1ms 25%"],
    "distribution": ["normal", "pareto", "paretonormal"], "loss": ["1%", "0.1% 25%", "100%"],
    "duplicate": ["1%", "5% 50%"], "corrupt": ["0.1%", "1% 10%"], "reorder": ["10%", "25% 50%"], "gap": [1, 5],
    "rate": ["10mbit", "1gbit", "100kbit", "40gbit", "1mbps"], "limit": [1, 1000, 100000],
    "burst": ["32kb", "1514b", "1mb"], "latency": ["50ms", "1s"],
}
IMPAIR_BAD: dict[str, list[Any]] = {
    "delay": ["-1ms", 40, "40", "40 ms", "1h", True], "jitter": ["5ms 200%", "1ms 2% 3%", "3s"],
    "distribution": ["gauss", "Normal", 1], "loss": ["101%", "1", "1% 2% 3%", -1, "1%%"],
    "duplicate": ["200%"], "corrupt": ["-0.1%"], "reorder": ["10"], "gap": [0, -1, "3"],
    "rate": ["0mbit", "10", "7bit", "10mb"], "limit": [0, "10kb", -1, 2**32], "burst": ["0kb", "32", "5gb"],
    "latency": ["-1ms", "50"], "nope": [1],
}
TBF_KERNEL_RATES = ["10mbit", "100mbit", "1gbit"]  # what the tbf kernel test draws: well above tbf's slowest


@st.composite
def an_impair(draw: Any, kernel: bool = False) -> Any:
    """An `impair:`: a netem shape (fields drawn with what each needs: a jitter a delay, a distribution a
    jitter, a reorder a delay, a gap a reorder) or a tbf one (rate, perhaps burst and latency); one in eight
    broken: a bad value, or a field where it does not belong, or nothing at all. `kernel`: tbf only (this
    machine's kernel has no sch_netem), at rates its bucket arithmetic is safe at, never broken."""
    if kernel:
        return {"rate": draw(st.sampled_from(TBF_KERNEL_RATES)),
                **({"burst": "1mb"} if draw(st.booleans()) else {})}
    spec: dict[str, Any] = {}
    if draw(st.sampled_from(["netem", "netem", "tbf"])) == "tbf":
        spec["rate"] = draw(st.sampled_from(IMPAIR_GOOD["rate"]))
        for field in ("burst", "latency"):
            if draw(st.booleans()):
                spec[field] = draw(st.sampled_from(IMPAIR_GOOD[field]))
    else:
        for field in ("delay", "jitter", "distribution", "loss", "duplicate", "corrupt", "reorder", "gap", "rate",
                      "limit"):
            needs = {"jitter": "delay", "distribution": "jitter", "reorder": "delay", "gap": "reorder"}.get(field)
            if (needs is None or needs in spec) and draw(st.booleans()):
                spec[field] = draw(st.sampled_from(IMPAIR_GOOD[field]))
        if not {"delay", "loss", "duplicate", "corrupt"} & set(spec):
            spec["loss"] = draw(st.sampled_from(IMPAIR_GOOD["loss"]))  # rate alone would be a tbf
        if spec.get("jitter") == "3s":
            spec["jitter"] = "1ms"
    if draw(rarely):  # one rule broken
        how = draw(st.sampled_from(["value", "value", "value", "misplaced", "empty"]))
        if how == "value":
            field = draw(st.sampled_from(sorted(IMPAIR_BAD)))
            spec[field] = draw(st.sampled_from(IMPAIR_BAD[field]))
        elif how == "misplaced":  # tbf's fields with netem's, or what needs another field without it
            field, value = draw(st.sampled_from([("burst", "32kb"), ("latency", "1s"), ("gap", 2), ("jitter", "1ms"),
                                                 ("distribution", "normal"), ("reorder", "5%")]))
            if field in ("burst", "latency"):
                spec.setdefault("delay", "1ms")
            else:
                spec.pop({"gap": "reorder", "jitter": "delay", "distribution": "jitter", "reorder": "delay"}[field],
                         None)
            spec[field] = value
        else:
            spec = {}
    return spec


@st.composite
def a_route(draw: Any, ns: str) -> dict[str, Any]:
    family = draw(st.sampled_from([4, 4, 6]))
    mine = {k: [v for v in vs if (":" in v) == (family == 6) or k == "dev"] for k, vs in GOOD[ns].items()}
    r: dict[str, Any] = {"to": draw(st.sampled_from(DESTINATIONS[family]))}
    shape = draw(st.sampled_from(["via", "via", "dev", "type", "nexthops", "onlink"]))
    if shape == "via" and mine["via"]:
        r["via"] = draw(st.sampled_from(mine["via"]))
    elif shape == "type":
        r["type"] = draw(st.sampled_from(["blackhole", "unreachable", "prohibit"]))
    elif shape == "nexthops" and len(mine["via"]) > 1:
        vias = draw(st.lists(st.sampled_from(mine["via"]), min_size=2, max_size=3, unique=True))
        r["nexthops"] = [{"via": v, **({"weight": draw(st.integers(1, 256))} if draw(st.booleans()) else {})}
                         for v in vias]
    elif shape == "onlink" and ns != HOST:
        r.update(via="192.0.2.1" if family == 4 else "fd00:ff::1", dev="e0", onlink=True)
    else:
        r["dev"] = draw(st.sampled_from([d for d in mine["dev"] if ns == HOST or d != "lo" or family == 4]))
    if draw(st.booleans()):
        r["metric"] = draw(st.sampled_from([1, 100, 2**32 - 1]))
    if draw(st.booleans()):
        r["table"] = draw(st.sampled_from(["main", "default", 100, 1000, 2**32 - 1]))
    if mine["src"] and "type" not in r and draw(st.booleans()):
        r["src"] = draw(st.sampled_from(mine["src"]))
    if "type" not in r and draw(st.booleans()):
        r["mtu"] = draw(st.sampled_from([1280, 1400, 9000]))
    if draw(rarely):  # one rule broken
        field = draw(st.sampled_from(sorted(BAD)))
        r[field] = draw(st.sampled_from(BAD[field]))
    return r


@st.composite
def routed(draw: Any) -> dict[str, Any]:
    with_host = draw(st.booleans())
    links: dict[str, dict[str, dict[str, Any]]] = {
        "a": {"e0": {"kind": "veth", "peer": "b/e0"}, "e1": {"kind": "veth", "peer": "a/e2"}, "e2": {}},
        "b": {"e0": {}, **({"e1": {}} if with_host else {})},
        **({"host": {"h0": {"kind": "veth", "peer": "b/e1"}}} if with_host else {}),
    }
    namespaces: dict[str, Any] = {}
    for ns, interfaces in links.items():
        for name, spec in interfaces.items():
            spec["addresses"] = [a for a in ADDRESSES[(ns, name)] if not draw(rarely)]
            if draw(rarely):
                spec["up"] = False
            if draw(st.sampled_from([False] * 3 + [True])):
                spec["impair"] = draw(an_impair())
        if ns != HOST and draw(st.booleans()):
            interfaces["lo"] = {"addresses": [f"10.255.0.{1 if ns == 'a' else 2}/32"]}
            if draw(rarely) and draw(rarely):
                interfaces["lo"]["impair"] = {"delay": "1ms"}  # lo cannot be impaired
        routes = draw(st.lists(a_route(ns), max_size=5))
        body: dict[str, Any] = {"interfaces": interfaces, "routes": routes}
        if ns != HOST or draw(rarely):
            keys = st.one_of(st.sampled_from(SYSCTLS), st.sampled_from(BAD_SYSCTLS)) if draw(rarely) else \
                st.sampled_from(SYSCTLS)
            vals = st.sampled_from(SYSCTL_VALUES + (BAD_SYSCTL_VALUES if draw(rarely) else []))
            body["sysctls"] = draw(st.dictionaries(keys, vals, max_size=3))
            body["forwarding"] = draw(st.sampled_from([None, None, True, False] + (["yes"] if draw(rarely) else [])))
        namespaces[ns] = body
    return {"name": "fz", "namespaces": namespaces}


class NoAliases(yaml.SafeDumper):
    """Writes a value drawn twice (the same list object) twice, not as an anchor and an alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


EMPTY = State({HOST: Namespace(HOST)})
PLANNED = {"valid": 0, "refused": 0, "routes": 0, "changes": 0, "impaired": 0, "qdisc steps": 0}


def run(kernel: FakeKernel, steps: Any, topology: str = "fz") -> None:
    results: list[Any] = []
    kernel.execute(steps, topology, results)
    failed = [(steps[i].describe(), e) for i, e in results if e is not None]
    assert not failed, failed


def routed_state(doc: dict[str, Any], path: Path) -> State | None:
    """The desired State of a routed document, or None if it is refused (every problem at a file:line)."""
    path.write_text(yaml.dump(doc, Dumper=NoAliases))
    try:
        topo = load(str(path))
    except ValidationError as exc:
        PLANNED["refused"] += 1
        assert exc.problems
        for p in exc.problems:
            assert p.message and p.file == str(path) and p.line is not None and p.path, str(p)
        return None
    PLANNED["valid"] += 1
    return desired(topo)


@FUZZ
@given(doc=routed())
def test_routed_topologies_are_refused_at_a_line_or_plan_and_converge(tmp_path_factory, doc):
    want = routed_state(doc, tmp_path_factory.mktemp("r") / "t.yaml")
    if want is None:
        return
    routes = sum(len(ns.routes) for ns in want.namespaces.values())
    sysctls = sum(len(ns.sysctls) for ns in want.namespaces.values())
    impaired = {(n, link.name) for n, ns in want.namespaces.items() for link in ns.links.values() if link.qdisc}
    PLANNED["routes"] += routes
    PLANNED["impaired"] += len(impaired)
    assert plan(want, want, "fz").empty
    fresh = plan(want, EMPTY, "fz")
    ops = [s.op for s in fresh.steps]
    assert ops.count("add_route") == routes and ops.count("set_sysctl") == sysctls
    assert all(op == "add_route" for op in ops[len(ops) - routes:])  # routes last
    assert {(s.namespace, s.name) for s in fresh.steps if s.op == "add_qdisc"} == impaired
    assert ops.count("add_qdisc") == len(impaired)
    # destroyed: each route, each sysctl and each impairment comes back in some undo
    gone = plan(EMPTY, want, "fz", destroy=True)
    undone = [u for s in gone.steps for u in s.undo]
    assert sum(u.op == "add_route" for u in undone) == routes
    assert sum(u.op == "set_sysctl" for u in undone) == sysctls
    assert {(u.namespace, u.name) for u in undone if u.op == "add_qdisc"} == impaired
    # applied on the in-memory kernel (tests/fakekernel.py), it converges at once, and destroy leaves host
    kernel = FakeKernel(EMPTY, scope=scope_keys(want))
    run(kernel, fresh.steps)
    assert plan(want, kernel.observe(), "fz").empty, plan(want, kernel.observe(), "fz").render()
    run(kernel, plan(EMPTY, kernel.observe(), "fz", destroy=True).steps)
    assert set(kernel.observe().namespaces) == {HOST} and not kernel.observe().namespaces[HOST].routes


CHANGES = settings(FUZZ, max_examples=max(20, EXAMPLES // 2))  # two files each: a tenth of the pairs are valid


@CHANGES
@given(first=routed(), then=routed())
def test_a_routed_topology_changed_converges_in_one_apply(tmp_path_factory, first, then):
    tmp = tmp_path_factory.mktemp("c")
    old, new = routed_state(first, tmp / "1.yaml"), routed_state(then, tmp / "2.yaml")
    if old is None or new is None:
        return
    kernel = FakeKernel(EMPTY, scope=scope_keys(old))
    run(kernel, plan(old, EMPTY, "fz").steps)
    kernel.scope = scope_keys(new)
    live = kernel.observe()
    PLANNED["changes"] += 1
    change = plan(new, live, "fz")
    PLANNED["qdisc steps"] += sum(s.op in QDISC_OPS for s in change.steps)
    run(kernel, change.steps)
    again = plan(new, kernel.observe(), "fz")
    assert again.empty, again.render()


# --- what the fuzzing and the review found: bugs of netlab/, pinned until fixed -------------------------------

FOUND = """name: t
namespaces:
  a:
    interfaces:
      e0: {kind: veth, peer: b/e0, addresses: [10.0.1.1/24]}
      e1: {kind: veth, peer: PEER, addresses: [10.0.2.1/24], up: UP}
    routes: [ROUTES]
    sysctls: {SYSCTLS}
  b:
    interfaces:
      e0: {addresses: [10.0.1.2/24]}
      END: {}
"""


def found(peer: str = "b/e1", up: str = "true", routes: str = "", sysctls: str = "") -> str:
    return (FOUND.replace("PEER", peer).replace("END", peer.split("/")[1]).replace("UP", up)
            .replace("ROUTES", routes).replace("SYSCTLS", sysctls))


def applied(text: str) -> tuple[State, FakeKernel]:
    want = desired(loads(text))
    kernel = FakeKernel(EMPTY, scope=scope_keys(want))
    run(kernel, plan(want, EMPTY, "t").steps, "t")
    return want, kernel


def test_found_a_gateway_on_a_link_declared_down_is_refused():
    with pytest.raises(ValidationError, match="down"):
        loads(found(up="false", routes="{to: 10.9.0.0/16, via: 10.0.2.2}"))


def test_found_ip_forward_and_conf_all_forwarding_are_one_key():
    with pytest.raises(ValidationError):
        loads(found(sysctls="net.ipv4.ip_forward: 1, net.ipv4.conf.all.forwarding: 0"))


def test_found_a_forwarding_key_rewritten_by_ip_forward_is_written_again():
    # found by the change property above; fixed in aa23abc (planner._sysctl compares with what the plan's
    # earlier writes leave)
    _, kernel = applied(found(sysctls="net.ipv4.ip_forward: 0, net.ipv4.conf.e0.forwarding: 0"))
    want = desired(loads(found(sysctls="net.ipv4.ip_forward: 1, net.ipv4.conf.e0.forwarding: 0")))
    kernel.scope = scope_keys(want)
    run(kernel, plan(want, kernel.observe(), "t").steps, "t")
    assert plan(want, kernel.observe(), "t").empty


def test_found_the_undo_of_a_destroy_puts_back_los_sysctls():
    _, kernel = applied(found(sysctls="net.ipv4.conf.lo.rp_filter: 0"))
    gone = plan(EMPTY, kernel.observe(), "t", destroy=True)
    assert ("a", "net/ipv4/conf/lo/rp_filter", "0") in {(u.namespace, u.name, u.value) for s in gone.steps
                                                        for u in s.undo if u.op == "set_sysctl"}


def test_found_a_route_whose_source_is_on_a_replaced_link_is_put_back():
    route = "{to: 10.9.0.0/16, via: 10.0.1.2, src: 10.0.2.1}"
    _, kernel = applied(found(routes=route))
    after = desired(loads(found(peer="b/e2", routes=route)))
    p = plan(after, kernel.observe(), "t")
    assert [s.op for s in p.steps if s.op.endswith("_route")] == ["delete_route", "add_route"], p.render()


def kernel_view() -> tuple[list[str], list[str]]:
    netns = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    return netns, sorted(os.listdir("/sys/class/net"))


LOADED = {"valid": 0, "refused": 0}


@pytest.fixture(scope="module", autouse=True)
def kernel_untouched(figures):
    before = kernel_view()
    yield
    assert kernel_view() == before, "loading topology files changed the kernel"
    count(figures, "fuzz: files loaded, valid", LOADED["valid"])
    count(figures, "fuzz: files loaded, refused with a ValidationError", LOADED["refused"])
    count(figures, "fuzz: routed topologies, valid and planned", PLANNED["valid"])
    count(figures, "fuzz: routed topologies, refused", PLANNED["refused"])
    count(figures, "fuzz: routes planned", PLANNED["routes"])
    count(figures, "fuzz: routed changes applied on the fake kernel", PLANNED["changes"])
    count(figures, "fuzz: impaired links planned (routed topologies)", PLANNED["impaired"])
    count(figures, "fuzz: qdisc steps in routed changes applied on the fake kernel", PLANNED["qdisc steps"])
    count(figures, "fuzz: kinded topologies, valid, applied and planned again", KINDED["valid"])
    count(figures, "fuzz: kinded topologies, refused", KINDED["refused"])
    count(figures, "fuzz: kinded links planned", KINDED["links"])
    count(figures, "fuzz: kinded changes applied on the fake kernel", KINDED["changes"])
    count(figures, "fuzz: kinded changes, in-place steps", KINDED["in place"])
    count(figures, "fuzz: kinded changes, qdisc steps", KINDED["qdisc steps"])
    count(figures, "fuzz: kinded topologies on the real kernel", KINDED["kernel"])


def load_text(tmp_path: Path, data: bytes) -> Topology | None:
    path = tmp_path / "t.yaml"
    path.write_bytes(data)
    try:
        topo = load(str(path))
        LOADED["valid"] += 1
        return topo
    except ValidationError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        LOADED["refused"] += 1
        return None


@FUZZ
@given(doc=topology)
def test_generated_documents(tmp_path_factory, doc):
    text = yaml.safe_dump(doc, allow_unicode=True)
    load_text(tmp_path_factory.mktemp("g"), text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(SEED)), st.integers(0, 8),
                                st.sampled_from(["", ":", " ", "\n", "-", "!!python/object:os.system", "&a", "*a",
                                                 "{", "}", "[", "]", "'", '"', "\t", "name: x\n", "\\x00", "ä",
                                                 "  ns0:\n", "<<: *a", "!!binary", "%YAML 1.1\n", "---\n"])),
                      min_size=1, max_size=6))
def test_mutated_seed(tmp_path_factory, edits):
    text = SEED
    for at, cut, insert in edits:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + cut:]
    load_text(tmp_path_factory.mktemp("m"), text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(junk=st.binary(max_size=4096))
def test_binary_junk(tmp_path_factory, junk):
    load_text(tmp_path_factory.mktemp("b"), junk)


@pytest.mark.parametrize("text", [
    # The billion laughs: refused at the first alias, before anything is expanded.
    "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "name: t\n",
    "name: !!python/object/apply:os.system [echo pwned]\n",
    "name: t\nname: u\n",
    "name: t\nnamespaces: {" + ", ".join(f"n{i}: {{interfaces: {{e: {{peer: n{i}/e}}}}}}" for i in range(9000)) + "}\n",
])
def test_bombs_are_refused_in_bounded_memory(text):
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError):
            loads(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 << 20


def test_the_largest_valid_file_loads_in_bounded_memory():
    """The worst case per byte: a file near the limit of nothing but namespaces (330,000 of them), loaded
    in a process of its own whose peak RSS is measured (tracemalloc would make it four times slower)."""
    code = """if True:
        import resource, sys
        from netlab.model import MAX_FILE_BYTES, loads
        text = "name: t\\nnamespaces: {" + ", ".join(f"n{i}: {{}}" for i in range(330000)) + "}\\n"
        assert MAX_FILE_BYTES * 0.85 < len(text) < MAX_FILE_BYTES, len(text)
        assert len(loads(text).namespaces) == 330000
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(done.stdout) < 1 << 20  # KiB: 1 GiB (measured: 387 MiB)


def test_a_file_over_the_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"name: t\n#" + b"x" * MAX_FILE_BYTES)
    with pytest.raises(ValidationError, match="larger than"):
        load(str(path))


# --- the link kinds of issue 11 ---------------------------------------------------------------------------
#
# Kinded topologies: a fixed skeleton (a/e0 -- b/e0 and a/e1 -- a/e2, a bridge a/br0 with a/e2 as its port,
# and x9, a root-namespace link the topology does not declare: an external NIC), with children drawn on
# it: each kind's fields from pools of good values (parents in the same namespace, another one, host/x9, or
# another child), then one field in eight swapped for a value that breaks some rule. Valid ones are
# planned, applied on the fake kernel below (its links keep what the kinds' encoders send, read back by
# the kinds' decoders, as the real reader does), and planned again: nothing. A few go to the real kernel.

ABSENT = object()
EXTERNAL = "x9"
KIND_GOOD: dict[str, dict[str, list[Any]]] = {
    "vlan": {"id": [1, 10, 4094], "protocol": [ABSENT, "802.1Q", "802.1ad"]},
    "macvlan": {"mode": [ABSENT, "private", "vepa", "bridge", "passthru", "source"]},
    "ipvlan": {"mode": [ABSENT, "l2", "l3", "l3s"], "flags": [ABSENT, "bridge", "private", "vepa"]},
    "vxlan": {"vni": [0, 42, 2**24 - 1], "port": [ABSENT, 4789, 8472, 1], "learning": [ABSENT, True, False],
              "ttl": [ABSENT, 1, 64, 255]},
    "tun": {"owner": [ABSENT, 0, 1000, 65534], "group": [ABSENT, 0, 1000], "multi_queue": [ABSENT, True, False]},
}
KIND_GOOD["tap"] = KIND_GOOD["tun"]
BAD_PARENTS: list[Any] = ["nope", "b/nope", "zz/e0", "lo", "a/b/c", "", "host/", "/e0", 7, None, "e2"]
KIND_BAD: dict[str, dict[str, list[Any]]] = {
    "vlan": {"id": [0, 4095, -1, "10", True, None], "protocol": ["802.1q", "8021Q", 0x8100, ""], "parent": BAD_PARENTS},
    "macvlan": {"mode": ["Bridge", "passthrough", 4, ""], "parent": BAD_PARENTS,
                "macs": [[], ["zz:00:00:00:00:01"], "02:00:00:00:00:01", ["02:00:00:00:00:01"]]},
    "ipvlan": {"mode": ["l4", "L2", 1], "flags": ["bridge,private", 0, "Vepa"], "parent": BAD_PARENTS},
    "vxlan": {"vni": [2**24, -1, "42"], "remote": ["10.0.0.300", "10.0.0.0/24", "239.1.1.1", "::", "0.0.0.0"],
              "group": ["10.0.0.3", "ff05::1"], "local": ["fd00::1", "10.0.0.1/24", "224.0.0.1"],
              "port": [0, 65536, "4789"], "learning": ["no", 0], "ttl": [0, 256], "parent": ["b/e0", "nope"],
              "mtu": [65536, 9000]},
    "tun": {"owner": [-1, "1000", 1.5, 2**32, "root"], "group": ["wheel", -1], "multi_queue": ["yes", 1],
            "mac": ["02:00:00:00:00:09"]},
    "bridge": {"stp": [1, "on"], "vlan_filtering": ["yes", 0], "master": ["br0"]},
}
KIND_BAD["tap"] = {k: v for k, v in KIND_BAD["tun"].items() if k != "mac"}
STACKED = ("vlan", "macvlan", "ipvlan")
PURE_KINDS = ["vlan", "macvlan", "ipvlan", "vxlan", "tun", "tap"]
HERE_KINDS = ["macvlan", "vxlan", "tun", "tap"]  # what this machine's 6.18 has (issue 11)


@st.composite
def kinded(draw: Any, kernel: bool = False) -> dict[str, Any]:
    """A kinded topology document (namespaces a, b; x9 external). `kernel`: only what this machine's kernel
    makes (macvlan but not passthru, vxlan, tun/tap, bridge stp), all valid but for the rare bad field."""
    e0_mtu = draw(st.sampled_from([None, 1500, 9000]))
    a: dict[str, Any] = {"e0": {"kind": "veth", "peer": "b/e0", **({"mtu": e0_mtu} if e0_mtu else {})},
                         "e1": {"kind": "veth", "peer": "a/e2"}, "e2": {}}
    b: dict[str, Any] = {"e0": {}}
    namespaces = {"a": a, "b": b}
    if draw(st.booleans()):
        bridge: dict[str, Any] = {"kind": "bridge"}
        for field in ("stp",) + (() if kernel else ("vlan_filtering",)):
            value = draw(st.sampled_from([ABSENT, True, False]))
            if value is not ABSENT:
                bridge[field] = value
        a["br0"] = bridge
        a["e2"]["master"] = "br0"
        if bridge.get("vlan_filtering") and draw(st.booleans()):
            a["e2"].update(vlans=[10, 20], pvid=draw(st.sampled_from([10, 30])))
        if draw(rarely):
            field = draw(st.sampled_from(sorted(KIND_BAD["bridge"])))
            bridge[field] = draw(st.sampled_from(KIND_BAD["bridge"][field]))
    ipvlan_port: dict[str, tuple[str, str]] = {}  # ipvlans on one parent share mode and flags: drawn once
    for i in range(draw(st.integers(0, 4))):
        ns = draw(st.sampled_from(["a", "a", "b"]))
        here = namespaces[ns]
        name = f"c{i}"
        kind_name = draw(st.sampled_from(HERE_KINDS if kernel else PURE_KINDS))
        if kind_name in ("tun", "tap") and draw(st.booleans()):
            kind_name = "tap" if kind_name == "tun" else "tun"
        spec: dict[str, Any] = {"kind": kind_name}
        for field, pool in KIND_GOOD[kind_name].items():
            if kernel and kind_name == "macvlan":
                pool = [m for m in pool if m != "passthru"]  # one per parent, taking it over: not drawn here
            value = draw(st.sampled_from(pool))
            if value is not ABSENT:
                spec[field] = value
        children = [n for n in here if n.startswith("c")]
        parent_mtu: int | None = None
        if kind_name in STACKED:
            mine = ["e0", "e1", *(["br0"] if "br0" in here else [])] if ns == "a" else ["e0"]
            far = ["b/e0"] if ns == "a" else ["a/e0", "a/e1"]
            choices = mine + far + [f"host/{EXTERNAL}"] + [c for c in children if here[c]["kind"] != "macvlan"
                                                          or kind_name != "macvlan"]
            spec["parent"] = draw(st.sampled_from(choices))
            if spec["parent"] == "e0" and ns == "a":
                parent_mtu = e0_mtu
        elif kind_name == "vxlan":
            family = draw(st.sampled_from([4, 6]))
            far_end = draw(st.sampled_from(["remote", "group", None]))
            if far_end == "remote":
                spec["remote"] = "10.0.0.3" if family == 4 else "fd00::3"
            elif far_end == "group":
                spec["group"] = "239.1.1.1" if family == 4 else "ff05::1"
            if draw(st.booleans()):
                spec["local"] = "10.0.0.1" if family == 4 else "fd00::1"
            if far_end == "group" or draw(st.booleans()):
                spec["parent"] = draw(st.sampled_from(["e0"] + [c for c in children if here[c]["kind"] in STACKED]))
                parent_mtu = e0_mtu if spec["parent"] == "e0" and ns == "a" else None
            # one VNI and port per namespace
            taken = {(c.get("vni"), c.get("port", 4789)) for c in here.values() if c.get("kind") == "vxlan"}
            while (spec["vni"], spec.get("port", 4789)) in taken:
                spec["vni"] += 1
        if kind_name == "macvlan" and spec.get("mode") == "source":
            spec["macs"] = draw(st.lists(st.sampled_from(["02:00:00:00:00:0a", "02:00:00:00:00:0B",
                                                          "02:AA:00:00:00:01"]), min_size=1, max_size=3, unique=True))
        if kind_name == "ipvlan":
            parent = spec["parent"] if "/" in spec["parent"] else f"{ns}/{spec['parent']}"
            first = ipvlan_port.setdefault(parent, (spec.get("mode", "l3"), spec.get("flags", "bridge")))
            if not draw(rarely):  # else perhaps two modes on one parent
                spec["mode"], spec["flags"] = first
        if parent_mtu is not None and draw(st.booleans()):
            spec["mtu"] = parent_mtu - (70 if kind_name == "vxlan" else draw(st.sampled_from([0, 100])))
        if draw(rarely):  # one rule broken
            bad = KIND_BAD[kind_name]
            field = draw(st.sampled_from(sorted(bad) + (["parent-self"] if kind_name in STACKED else [])))
            if field == "parent-self":
                spec["parent"] = name
            else:
                spec[field] = draw(st.sampled_from(bad[field]))
        here[name] = spec
    for links in namespaces.values():  # impairments, on any link
        for spec in links.values():
            if draw(st.sampled_from([False] * 3 + [True])):
                spec["impair"] = draw(an_impair(kernel))
    return {"name": "fz", "namespaces": {ns: {"interfaces": links} for ns, links in namespaces.items()}}


CHANGED_FAR = {"remote": [["10.0.0.3", "10.0.0.4"], ["fd00::3", "fd00::4"]],
               "group": [["239.1.1.1", "239.1.1.2"], ["ff05::1", "ff05::2"]]}


@st.composite
def kinded_pair(draw: Any, kernel: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """A kinded document and the same one edited as a user would: options of some children redrawn (all
    the ipvlans on one parent together), a vxlan's remote or group moved within its family, a child
    removed, the bridge's options or a parent's MTU changed."""
    first = draw(kinded(kernel))
    then = copy.deepcopy(first)
    for links in (ns["interfaces"] for ns in then["namespaces"].values()):
        for name in [n for n in links if n.startswith("c")]:
            spec = links[name]
            what = draw(st.sampled_from(["keep", "option", "option", "option", "delete"]))
            if what == "delete":
                del links[name]
                continue
            pools = {k: v for k, v in KIND_GOOD.get(spec["kind"], {}).items() if k not in ("vni", "port")
                     or draw(rarely)}  # a replace, now and then
            pools.update({k: CHANGED_FAR[k][":" in spec[k]] for k in CHANGED_FAR if isinstance(spec.get(k), str)})
            if what == "keep" or not pools:
                continue
            field = draw(st.sampled_from(sorted(pools)))
            value = draw(st.sampled_from([v for v in pools[field] if not (kernel and v == "passthru")]))
            same = [s for s in links.values() if s.get("kind") == "ipvlan" and s.get("parent") == spec.get("parent")] \
                if spec["kind"] == "ipvlan" else [spec]
            for target in same:
                if value is ABSENT:
                    target.pop(field, None)
                else:
                    target[field] = value
            if spec["kind"] == "macvlan":
                if spec.get("mode") == "source":
                    spec.setdefault("macs", ["02:00:00:00:00:0c"])
                else:
                    spec.pop("macs", None)
    for links in (ns["interfaces"] for ns in then["namespaces"].values()):  # impairments added, changed, removed
        for spec in links.values():
            what = draw(st.sampled_from(["keep", "keep", "keep", "draw", "remove"]))
            if what == "draw":
                spec["impair"] = draw(an_impair(kernel))
            elif what == "remove":
                spec.pop("impair", None)
    bridge = then["namespaces"]["a"]["interfaces"].get("br0")
    if bridge is not None and draw(st.booleans()):
        field = draw(st.sampled_from(["stp"] if kernel else ["stp", "vlan_filtering"]))
        bridge[field] = not bridge.get(field, False)
    if draw(st.booleans()):
        e0 = then["namespaces"]["a"]["interfaces"]["e0"]
        e0.pop("mtu", None)
        mtu = draw(st.sampled_from([None, 1500, 9000]))
        if mtu:
            e0["mtu"] = mtu
    return first, then


EXTERNAL_LINK = Link(EXTERNAL, "device", addresses=frozenset(), up=True, mtu=1500, mac="02:00:00:00:00:99")
WITH_NIC = State({HOST: Namespace(HOST, links={EXTERNAL: EXTERNAL_LINK})})
KINDED = {"valid": 0, "refused": 0, "links": 0, "changes": 0, "in place": 0, "kernel": 0, "qdisc steps": 0}
DATA = {"vlan": rtnl.VLAN_INFO, "macvlan": rtnl.MACVLAN_INFO, "ipvlan": rtnl.IPVLAN_INFO, "vxlan": rtnl.VXLAN_INFO,
        "bridge": rtnl.BRIDGE_INFO}


class _Facts:
    namespace = ""

    def netns_fd(self, ns: str) -> int:
        return 0

    def index(self, ns: str, name: str) -> int:
        return 0

    def parent_index(self, link: Link) -> int:
        return 1


class KindKernel(FakeKernel):
    """The fake kernel with issue 11's kinds, as the kernel has them: a link keeps the IFLA_INFO_DATA its
    create sent (the kind's info_data), a change request changes the attributes it names and keeps the
    rest (the kernel's changelink), and the link reads back through the kind's read(), as the reader reads
    it. A child needs its parent (ENODEV), a stacked child's MTU is at most its parent's and a vxlan's leaves
    its header's room (EINVAL); lowering a parent lowers its stacked children; deleting a link or its
    namespace deletes its children wherever they are; a macvlan and a bridge port exclude each other (EBUSY);
    a macvlan's mode does not change to or from passthru in place (EINVAL)."""

    def __init__(self, state: State, **kwargs: Any):
        super().__init__(state, **kwargs)
        self.data: dict[tuple[str, str], dict[str, Any]] = {}

    def _read_back(self, ns: str, link: Link) -> Link:
        made = kind(link.kind)
        if link.kind in ("tun", "tap"):
            opts = link.opts
            raw = {"owner": NO_ID if opts["owner"] is None else opts["owner"], "type": 1 if link.kind == "tun" else 2,
                   "group": NO_ID if opts["group"] is None else opts["group"], "multi_queue": int(opts["multi_queue"])}
            data = rtnl.TUN_INFO.encode(raw)
        elif link.kind in DATA:
            data = DATA[link.kind].encode(self.data[(ns, link.name)])
        else:
            return link
        info: Any = {"info_data": data, "link": None, "link_nsid": None}
        return replace(link, options=link_options(made.read(info)))

    def _parent_of(self, ns: str, link: Link) -> Link | None:
        if link.parent is None:
            return None
        parent = self.ns.get(link.parent[0], {}).get(link.parent[1])
        if parent is None:
            raise KernelError(f"no link {'/'.join(link.parent)}, the parent of {ns}/{link.name}", errno.ENODEV)
        return parent

    def _room(self, link: Link) -> int | None:
        room = kind(link.kind).headroom(link)
        return room if link.parent is not None else None

    def create_link(self, step, topology):
        link: Link = step.value.link
        parent = self._parent_of(step.namespace, link)
        room = self._room(link)
        if parent is not None and room is not None and link.mtu is not None and parent.mtu is not None \
                and link.mtu > parent.mtu - room:
            raise KernelError(f"mtu {link.mtu} above {parent.mtu} - {room}", errno.EINVAL)
        if parent is not None and link.kind == "macvlan" and parent.master is not None:
            raise KernelError("a bridge port cannot carry a macvlan", errno.EBUSY)
        super().create_link(step, topology)
        made = self.ns[step.namespace][step.name]
        mtu = link.mtu or (parent.mtu - room if parent is not None and parent.mtu and room is not None else 1500)
        if link.kind in DATA:
            data = kind(link.kind).info_data(link, None, _Facts())
            self.data[(step.namespace, step.name)] = DATA[link.kind].decode(data or b"")
        self._put(step.namespace, self._read_back(step.namespace, replace(
            made, parent=link.parent, options=link.options, mtu=mtu)))

    def change_link(self, step, topology):
        want: Link = step.value
        made = kind(want.kind)
        have = self._get(step.namespace, step.name)
        change = DATA[want.kind].decode(made.change_data(want, made.changed(step.before, want)))
        old = self.data[(step.namespace, step.name)]
        modes = (change.get("mode"), old.get("mode"))
        if want.kind == "macvlan" and modes[0] != modes[1] and 8 in modes:
            raise KernelError("macvlan mode to or from passthru", errno.EINVAL)
        self.data[(step.namespace, step.name)] = {**old, **change}
        self._put(step.namespace, self._read_back(step.namespace, have))

    def _children(self, ns: str, name: str) -> list[tuple[str, str]]:
        return [(n, lk.name) for n, links in self.ns.items() for lk in links.values() if lk.parent == (ns, name)]

    def _cascade(self, ns: str, name: str) -> None:
        for cns, cname in self._children(ns, name):
            self._cascade(cns, cname)
            self._gone(cns, cname)
            self.data.pop((cns, cname), None)

    def delete_link(self, step, topology):
        link = self._links(step.namespace).get(step.name)
        super().delete_link(step, topology)
        self.data.pop((step.namespace, step.name), None)
        self._cascade(step.namespace, step.name)
        if link is not None and link.kind == "veth" and link.peer:
            self._cascade(*link.peer)

    def delete_netns(self, step, topology):
        links = list(self.ns.get(step.namespace, {}).values())
        super().delete_netns(step, topology)
        for link in links:
            self._cascade(step.namespace, link.name)
            if link.kind == "veth" and link.peer:
                self._cascade(*link.peer)

    def set_mtu(self, step, topology):
        link = self._get(step.namespace, step.name)
        parent = self._parent_of(step.namespace, link)
        room = self._room(link)
        if parent is not None and room is not None and parent.mtu is not None and step.value > parent.mtu - room:
            raise KernelError(f"mtu {step.value} above {parent.mtu} - {room}", errno.EINVAL)
        super().set_mtu(step, topology)
        for cns, cname in self._children(step.namespace, step.name):
            child = self.ns[cns][cname]
            if child.kind in STACKED and child.mtu is not None and child.mtu > step.value:
                self._put(cns, replace(child, mtu=step.value))

    def set_master(self, step, topology):
        if any(self.ns[n][c].kind == "macvlan" for n, c in self._children(step.namespace, step.name)):
            raise KernelError("a link with macvlans cannot be a bridge port", errno.EBUSY)
        super().set_master(step, topology)

    def set_vlans(self, step, topology):
        self._put(step.namespace, replace(self._get(step.namespace, step.name), vlans=step.value))

    set_self_vlans = set_vlans


def kinded_state(doc: dict[str, Any], path: Path) -> State | None:
    """The desired State of a kinded document, or None if it is refused (every problem at a file:line)."""
    path.write_text(yaml.dump(doc, Dumper=NoAliases))
    try:
        topo = load(str(path))
    except ValidationError as exc:
        KINDED["refused"] += 1
        assert exc.problems
        for p in exc.problems:
            assert p.message and p.file == str(path) and p.line is not None and p.path, str(p)
        return None
    KINDED["valid"] += 1
    return desired(topo)


def untouched(steps: Any) -> None:
    """No step names the external link."""
    assert not [s.describe() for s in steps if s.namespace == HOST and s.name == EXTERNAL]


KINDS_FUZZ = settings(FUZZ, max_examples=max(20, EXAMPLES // 2))  # with the pairs: the file's budget as it was
KINDS_CHANGES = settings(FUZZ, max_examples=max(20, EXAMPLES // 4))


@KINDS_FUZZ
@given(doc=kinded())
def test_kinded_topologies_are_refused_at_a_line_or_plan_and_converge(tmp_path_factory, doc):
    tmp = tmp_path_factory.mktemp("k")
    want = kinded_state(doc, tmp / "t.yaml")
    if want is None:
        return
    KINDED["links"] += sum(len(ns.links) for ns in want.namespaces.values())
    fresh = plan(want, WITH_NIC, "fz")
    assert fresh.render() == plan(kinded_state(doc, tmp / "again.yaml"), WITH_NIC, "fz").render()  # type: ignore[arg-type]
    untouched(fresh.steps)
    made: dict[tuple[str, str], int] = {}  # where each link is made (a veth's other end with it)
    for i, s in enumerate(fresh.steps):
        if s.op == "create_link":
            made[(s.namespace, s.value.link.name)] = i
            if s.value.link.peer:
                made[s.value.link.peer] = i
    for (ns, name), i in made.items():  # a declared parent is made first
        parent = want.namespaces[ns].links[name].parent
        if parent is not None and parent != (HOST, EXTERNAL):
            assert made[parent] < i, fresh.render()
    kernel = KindKernel(WITH_NIC, scope=scope_keys(want))
    run(kernel, fresh.steps)
    again = plan(want, kernel.observe(), "fz")
    assert again.empty, again.render()
    gone = plan(EMPTY, kernel.observe(), "fz", destroy=True)
    untouched(gone.steps)
    run(kernel, gone.steps)
    assert kernel.observe().namespaces == WITH_NIC.namespaces


@KINDS_CHANGES
@given(pair=kinded_pair())
def test_a_kinded_topology_changed_converges_in_one_apply(tmp_path_factory, pair):
    first, then = pair
    tmp = tmp_path_factory.mktemp("kc")
    old, new = kinded_state(first, tmp / "1.yaml"), kinded_state(then, tmp / "2.yaml")
    if old is None or new is None:
        return
    kernel = KindKernel(WITH_NIC, scope=scope_keys(old))
    run(kernel, plan(old, WITH_NIC, "fz").steps)
    kernel.scope = scope_keys(new)
    change = plan(new, kernel.observe(), "fz")
    untouched(change.steps)
    KINDED["changes"] += 1
    KINDED["in place"] += sum(s.op == "change_link" for s in change.steps)
    KINDED["qdisc steps"] += sum(s.op in QDISC_OPS for s in change.steps)
    run(kernel, change.steps)
    again = plan(new, kernel.observe(), "fz")
    assert again.empty, change.render() + "\n---\n" + again.render()
    assert kernel.observe().namespaces[HOST].links[EXTERNAL] == EXTERNAL_LINK


def test_found_a_vxlan_ttl_removed_from_the_file_converges():
    """Found by the change property (and test_codec): the change request sent no IFLA_VXLAN_TTL for ttl None,
    and the kernel's changelink keeps what the data does not name (6.18: `ip -d link` still said ttl 5), so
    the vxlan never converged. Fixed in e3721e1 (ttl 0, inherit, always sent)."""
    text = """name: t
namespaces:
  a:
    interfaces:
      vx0: {kind: vxlan, vni: 42, remote: 10.0.0.3TTL}
"""
    old, new = desired(loads(text.replace("TTL", ", ttl: 5"))), desired(loads(text.replace("TTL", "")))
    kernel = KindKernel(EMPTY)
    run(kernel, plan(old, EMPTY, "t").steps, "t")
    run(kernel, plan(new, kernel.observe(), "t").steps, "t")
    again = plan(new, kernel.observe(), "t")
    assert again.empty, again.render()


# On this machine's kernel: kinded pairs (macvlan but passthru, vxlan, tun/tap, bridge stp) applied, diffed,
# changed, diffed and destroyed through the library, each under a prefix of its own, with a veth standing
# in for the external NIC (its MTU, alias and state compared before and after).
ON_KERNEL = settings(max_examples=max(3, EXAMPLES // 50), deadline=None, derandomize="CI" in os.environ,
                     suppress_health_check=[HealthCheck.too_slow])


def prefixed(doc: dict[str, Any], p: str) -> dict[str, Any]:
    """The document with its names under prefix `p`: the topology, namespaces a and b, and host/x9."""
    out = copy.deepcopy(doc)
    out["name"] = p
    out["namespaces"] = {p + ns: body for ns, body in out["namespaces"].items()}
    for body in out["namespaces"].values():
        for spec in body["interfaces"].values():
            for field in ("peer", "parent"):
                text = spec.get(field)
                if isinstance(text, str) and "/" in text:
                    ns, _, name = text.partition("/")
                    spec[field] = f"host/{p}{name}" if ns == HOST else f"{p}{ns}/{name}"
    return out


def nic_view(name: str) -> tuple[Any, ...]:
    from conftest import ip_json

    [link] = ip_json("-d", "link", "show", name)
    return link["mtu"], link.get("ifalias"), link["flags"], link["address"], link.get("master")


@pytest.mark.kernel
@ON_KERNEL
@given(pair=kinded_pair(kernel=True))
def test_kinded_topologies_on_this_kernel_apply_diff_change_destroy(tmp_path_factory, pair):
    import secrets

    from netlab import api

    from conftest import netns_names

    _require_root()
    p = "k" + secrets.token_hex(2)
    nic = p + EXTERNAL
    subprocess.run(["ip", "link", "add", nic, "type", "veth", "peer", "name", p + "x8"], check=True)
    subprocess.run(["ip", "link", "set", nic, "up"], check=True)
    tmp = tmp_path_factory.mktemp("kk")
    try:
        before = nic_view(nic)
        states: list[State] = []
        for i, doc in enumerate(pair):
            path = tmp / f"{i}.yaml"
            path.write_text(yaml.dump(prefixed(doc, p), Dumper=NoAliases))
            try:
                topo = load(str(path))
            except ValidationError:
                break
            states.append(desired(topo))
            api.apply(topo)
            left = api.diff(topo)
            assert left.empty, left.render()
            KINDED["kernel"] += 1
        if states:
            api.destroy(p)
        assert not [ns for ns in netns_names() if ns.startswith(p)]
        assert nic_view(nic) == before
    finally:
        try:
            api.destroy(p)
        finally:
            subprocess.run(["ip", "link", "del", nic], check=False)
            for ns in netns_names():
                if ns.startswith(p):
                    subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.mark.kernel
def test_found_a_macvlan_on_a_macvlan_never_converges(tmp_path):
    """The kernel makes a macvlan on a macvlan on the lower macvlan's own parent (macvlan_common_newlink:
    `if (netif_is_macvlan(lowerdev)) lowerdev = macvlan_dev_real_dev(lowerdev)`; 6.18: `mv2@e0`), so the
    parent read back is e0, not the declared mv1: every apply replaces mv2 and ends NOT_CONVERGED. The fuzz
    does not draw this shape (kinded()); validation should refuse it, naming the parent to declare."""
    import secrets

    from netlab import api

    _require_root()
    p = "m" + secrets.token_hex(2)
    path = tmp_path / "t.yaml"
    path.write_text(f"""name: {p}
namespaces:
  {p}a:
    interfaces:
      e0: {{kind: veth, peer: {p}a/e1}}
      e1: {{}}
      mv1: {{kind: macvlan, parent: e0}}
      mv2: {{kind: macvlan, parent: mv1}}
""")
    try:
        try:
            topo = load(str(path))
        except ValidationError:
            return  # refused: fixed
        api.apply(topo)  # raises NotConverged while the bug is there
        assert api.diff(topo).empty
    finally:
        api.destroy(p)


# --- the command: exit codes, never a traceback ------------------------------------------------------------

COMMAND = settings(max_examples=max(10, EXAMPLES // 50), deadline=None, derandomize="CI" in os.environ)


def run_command(tmp_path_factory: pytest.TempPathFactory, command: str, doc: Any) -> subprocess.CompletedProcess[str]:
    path = tmp_path_factory.mktemp("c") / "t.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8", errors="surrogatepass")
    proc = subprocess.run([sys.executable, "-m", "netlab", command, str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode in (0, 1, 2) and "Traceback" not in proc.stderr, proc.stderr
    return proc


@COMMAND
@given(doc=st.one_of(topology, kinded()))  # junk, and the kinds' fields with good and bad values
def test_validate_exits_0_or_1_without_a_traceback(tmp_path_factory, doc):
    assert run_command(tmp_path_factory, "validate", doc).returncode in (0, 1)


@pytest.mark.kernel  # `diff` of a valid file reads the kernel's namespaces: it needs root to do more than refuse
@COMMAND
@given(doc=topology)
def test_diff_exits_0_1_or_2_without_a_traceback(tmp_path_factory, doc):
    _require_root()
    run_command(tmp_path_factory, "diff", doc)
