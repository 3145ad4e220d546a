"""apply / diff / destroy against the real kernel, checked with iproute2 itself (never with netlab's own
reader) and with real traffic between the test's own namespaces."""

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from conftest import ip_json, netns_names

pytestmark = pytest.mark.kernel

# The tutorial's final topology, under the test's prefix '@'.
SEED = """
name: "@"
namespaces:
  "@n0":
    interfaces:
      br0:  {kind: bridge, addresses: [10.0.0.1/24]}
      vth0: {kind: veth, peer: "@n1/vth1", master: br0}
      vth2: {kind: veth, peer: "@n2/vth3", master: br0}
  "@n1":
    interfaces:
      vth1: {addresses: [10.0.0.2/24]}
  "@n2":
    interfaces:
      vth3: {addresses: [10.0.0.3/24]}
"""


def test_apply_builds_the_tutorial_topology(lab):
    path = lab.write(SEED)
    out = lab.netlab("apply", path, check=0).stdout
    assert "Apply complete" in out
    p = lab.p
    assert {f"{p}n0", f"{p}n1", f"{p}n2"} <= set(netns_names())
    n0, n1, n2 = lab.links(f"{p}n0"), lab.links(f"{p}n1"), lab.links(f"{p}n2")
    assert set(n0) == {"lo", "br0", "vth0", "vth2"} and set(n1) == {"lo", "vth1"} and set(n2) == {"lo", "vth3"}
    assert n0["br0"]["kind"] == "bridge" and n0["br0"]["addresses"] == ["10.0.0.1/24"]
    assert n0["vth0"]["master"] == "br0" and n0["vth2"]["master"] == "br0"
    assert n0["vth0"]["addresses"] == [] and n0["vth0"]["kind"] == "veth"
    assert n1["vth1"]["addresses"] == ["10.0.0.2/24"] and n2["vth3"]["addresses"] == ["10.0.0.3/24"]
    assert all(link["up"] for ns in (n0, n1, n2) for link in ns.values())
    assert n0["br0"]["alias"] == f"netlab:{p}" and n0["lo"]["alias"] == f"netlab:{p}"
    # veth ends really are each other's peers, in the right namespaces
    assert lab.peer(f"{p}n1", "vth1") == (f"{p}n0", "vth0")
    assert lab.peer(f"{p}n0", "vth2") == (f"{p}n2", "vth3")
    for src, dst in [("n0", "10.0.0.2"), ("n0", "10.0.0.3"), ("n1", "10.0.0.1"), ("n1", "10.0.0.3"),
                     ("n2", "10.0.0.1"), ("n2", "10.0.0.2")]:
        assert lab.ping(f"{p}{src}", dst), f"{src} cannot reach {dst}"


def test_second_apply_changes_nothing_and_diff_is_clean(lab):
    path = lab.write(SEED)
    lab.netlab("apply", path, check=0)
    before = lab.snapshot()
    out = lab.netlab("apply", path, check=0).stdout
    assert "No changes" in out
    assert lab.snapshot() == before
    assert "No changes" in lab.netlab("diff", path, check=0).stdout
    data = json.loads(lab.netlab("diff", path, "--output", "json", check=0).stdout)
    assert data["plan"]["format_version"] == 4 and data["plan"]["in_sync"] is True


def test_drift_is_shown_exits_2_and_apply_repairs_exactly_it(lab):
    path = lab.write(SEED)
    lab.netlab("apply", path, check=0)
    p = lab.p
    subprocess.run(["ip", "-n", f"{p}n1", "addr", "del", "10.0.0.2/24", "dev", "vth1"], check=True)
    subprocess.run(["ip", "-n", f"{p}n0", "link", "set", "vth2", "down"], check=True)
    subprocess.run(["ip", "-n", f"{p}n0", "link", "set", "vth0", "nomaster"], check=True)
    out = lab.netlab("diff", path, check=2).stdout
    assert f"~   link {p}n1/vth1: address +10.0.0.2/24" in out
    assert f"~   link {p}n0/vth2: down -> up" in out
    assert f"~   link {p}n0/vth0: master none -> br0" in out
    assert "Plan: 0 to add, 3 to change, 0 to destroy." in out
    data = json.loads(lab.netlab("diff", path, "-o", "json", check=2).stdout)
    assert data["plan"]["format_version"] == 4
    assert {s["op"] for s in data["plan"]["steps"]} == {"add_address", "set_up", "set_master"}
    out = lab.netlab("apply", path, check=0).stdout
    assert "0 added, 3 changed, 0 destroyed" in out
    lab.netlab("diff", path, check=0)
    assert lab.ping(f"{p}n1", "10.0.0.3")


def test_a_namespace_deleted_by_hand_is_recreated(lab):
    path = lab.write(SEED)
    lab.netlab("apply", path, check=0)
    p = lab.p
    subprocess.run(["ip", "netns", "del", f"{p}n2"], check=True)
    out = lab.netlab("diff", path, check=2).stdout
    assert f"+   namespace {p}n2" in out
    lab.netlab("apply", path, check=0)
    lab.netlab("diff", path, check=0)
    assert lab.ping(f"{p}n2", "10.0.0.2")


CHANGED = """
name: "@"
namespaces:
  "@n0":
    interfaces:
      br0:  {kind: bridge, addresses: [10.0.0.1/24, "fd00::1/64"]}
      vth0: {kind: veth, peer: "@n1/vth1", master: br0}
      vth2: {kind: veth, peer: "@n3/vth3", master: br0}
      br1:  {kind: bridge}
  "@n1":
    interfaces:
      vth1: {addresses: [10.0.0.12/24, "fd00::2/64"], mtu: 1400}
  "@n3":
    interfaces:
      vth3: {addresses: [10.0.0.3/24]}
"""


def test_changing_the_file_converges(lab):
    path = lab.write(SEED)
    lab.netlab("apply", path, check=0)
    p = lab.p
    path = lab.write(CHANGED)
    out = lab.netlab("apply", path, check=0).stdout
    assert f"-   namespace {p}n2: and with it {p}n0/vth2  # not in the topology" in out
    assert f"+   namespace {p}n3: lo up" in out
    assert f"+   link {p}n0/vth2: veth to {p}n3/vth3, master br0, up; {p}n3/vth3: address 10.0.0.3/24, up" in out
    assert f"{p}n2" not in netns_names() and f"{p}n3" in netns_names()
    n0, n1 = lab.links(f"{p}n0"), lab.links(f"{p}n1")
    assert n0["br1"]["kind"] == "bridge"
    assert n0["br0"]["addresses"] == ["10.0.0.1/24", "fd00::1/64"]
    assert n1["vth1"]["addresses"] == ["10.0.0.12/24", "fd00::2/64"] and n1["vth1"]["mtu"] == 1400
    lab.netlab("diff", path, check=0)
    assert lab.ping(f"{p}n3", "10.0.0.12")
    assert lab.run_in(f"{p}n1", "ping", "-6", "-c", "1", "-W", "2", "fd00::1", check=False).returncode == 0
    # and back again
    path = lab.write(SEED)
    lab.netlab("apply", path, check=0)
    lab.netlab("diff", path, check=0)
    assert f"{p}n3" not in netns_names()
    assert lab.ping(f"{p}n2", "10.0.0.2")


def test_destroy_removes_everything_it_made_and_nothing_else(lab, canaries):
    p = lab.p
    path = lab.write(SEED + "\n".join(HOST_BRIDGE.split("\n")[3:]))
    lab.netlab("apply", path, check=0)
    canaries.join(f"{p}br")  # a user's port on netlab's bridge
    lab.netlab("apply", path, check=0)
    assert canaries.changes() == []
    out = lab.netlab("destroy", path, check=0).stdout
    assert "Destroy complete" in out
    assert [ns for ns in netns_names() if ns.startswith(p)] == [f"{p}user"]
    assert sorted(n for n in lab.links() if n.startswith(p)) == sorted(canaries.state()["<host>"])
    assert canaries.changes(port_freed=True) == [] and lab.links()[f"{p}up0"]["master"] is None
    assert "Nothing to destroy" in lab.netlab("destroy", path, check=0).stdout


def test_destroy_leaves_unmarked_objects_with_the_topologys_names(lab):
    p = lab.p
    lab.ip("netns", "add", f"{p}n0")  # never applied: a user's namespace
    path = lab.write(SEED)
    assert "Nothing to destroy" in lab.netlab("destroy", path, check=0).stdout
    assert f"{p}n0" in netns_names()


def test_a_wanted_name_that_exists_without_the_mark_stops_apply_before_any_change(lab):
    p = lab.p
    lab.ip("netns", "add", f"{p}n1")
    path = lab.write(SEED)
    proc = lab.netlab("apply", path, check=1)
    assert "CONFLICT" in proc.stderr and f"namespace {p}n1 exists and was not made by netlab" in proc.stderr
    assert [ns for ns in netns_names() if ns.startswith(p)] == [f"{p}n1"]
    assert lab.links(f"{p}n1").keys() == {"lo"}


HOST_BRIDGE = """
name: "@"
namespaces:
  host:
    interfaces:
      "@br":  {kind: bridge, addresses: [10.1.0.1/24]}
      "@h1":  {kind: veth, peer: "@c1/eth0", master: "@br"}
      "@h2":  {kind: veth, peer: "@c2/eth0", master: "@br"}
  "@c1":
    interfaces:
      eth0: {addresses: [10.1.0.11/24]}
  "@c2":
    interfaces:
      eth0: {addresses: [10.1.0.12/24]}
"""


def test_host_bridge_and_a_users_port_on_it_survives_destroy(lab, canaries):
    p = lab.p
    path = lab.write(HOST_BRIDGE)
    lab.netlab("apply", path, check=0)
    assert lab.ping(f"{p}c1", "10.1.0.12") and lab.ping(f"{p}c2", "10.1.0.1")
    canaries.join(f"{p}br")
    lab.netlab("diff", path, check=0)  # a foreign port on our bridge is not drift
    assert f"{p}up0" in lab.netlab("show", path, check=0).stdout  # but it is shown
    lab.netlab("apply", path, check=0)
    assert canaries.changes() == []
    lab.netlab("destroy", path, check=0)
    host = lab.links()
    assert f"{p}br" not in host and f"{p}h1" not in host and f"{p}h2" not in host
    assert canaries.changes(port_freed=True) == []  # the user's veth survives, freed
    assert [ns for ns in netns_names() if ns.startswith(p)] == [f"{p}user"]


def _everything() -> tuple[Any, ...]:
    """Every namespace's name and every link of the root namespace and of each namespace, with index,
    MAC, flags, master and addresses (but IPv6 link-local ones, which the kernel adds by itself, later: a
    port freed from a bridge deleted by hand got one during a run), and what /run/netns and /run/netlab
    hold."""
    def links(*pre):
        return sorted((lk["ifindex"], lk["ifname"], lk.get("address"), tuple(lk["flags"]), lk.get("master"), lk["mtu"],
                       tuple(sorted(a["local"] for a in lk.get("addr_info", []) if not a["local"].startswith("fe80:"))))
                      for lk in ip_json(*pre, "addr"))
    listing = {d: sorted(os.listdir(d)) if os.path.isdir(d) else None for d in ("/run/netns", "/run/netlab")}
    return listing, links(), {ns: links("-n", ns) for ns in netns_names()}


def _partial(lab, path):
    lab.netlab("apply", path, check=0)
    subprocess.run(["ip", "netns", "del", f"{lab.p}n2"], check=True)
    subprocess.run(["ip", "-n", f"{lab.p}n0", "link", "del", "br0"], check=True)


def _drifted(lab, path):
    lab.netlab("apply", path, check=0)
    subprocess.run(["ip", "-n", f"{lab.p}n1", "addr", "add", "10.0.0.99/24", "dev", "vth1"], check=True)
    subprocess.run(["ip", "-n", f"{lab.p}n1", "link", "set", "vth1", "mtu", "1300", "down"], check=True)


def _foreign(lab, path):
    lab.ip("netns", "add", f"{lab.p}n1")  # the user's, with the topology's names, unmarked
    subprocess.run(["ip", "-n", f"{lab.p}n1", "link", "add", "vth1", "type", "bridge"], check=True)


@pytest.mark.parametrize("state,diff_exit", [("absent", 2), ("partial", 2), ("drifted", 2), ("foreign", 1)])
def test_read_only_commands_write_nothing(lab, state, diff_exit):
    path = lab.write(SEED)
    {"absent": lambda *_: None, "partial": _partial, "drifted": _drifted, "foreign": _foreign}[state](lab, path)
    before = _everything()
    proc = lab.netlab("diff", path, check=diff_exit)
    assert "Traceback" not in proc.stderr and ("CONFLICT" in proc.stderr) == (state == "foreign")
    lab.netlab("diff", path, "-o", "json", check=diff_exit)
    lab.netlab("show", path, check=0)
    lab.netlab("show", path, "-o", "json", check=0)
    lab.netlab("validate", path, check=0)
    assert _everything() == before


def test_an_empty_leftover_mount_point_does_not_block_apply(lab):
    os.makedirs("/run/netns", exist_ok=True)
    open(f"/run/netns/{lab.p}n1", "w").close()  # what an interrupted `ip netns add` leaves
    path = lab.write(SEED)
    lab.netlab("apply", path, check=0)
    assert lab.ping(f"{lab.p}n1", "10.0.0.3")


def test_a_second_run_waits_for_the_lock_and_names_the_holder(lab):
    from netlab.lock import LOCK_PATH

    os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import fcntl, os, sys, time\n"
                                f"fd = os.open({LOCK_PATH!r}, os.O_RDWR | os.O_CREAT)\n"
                                "fcntl.flock(fd, fcntl.LOCK_EX); os.ftruncate(fd, 0); "
                                "os.pwrite(fd, f'{os.getpid()}\\n'.encode(), 0)\n"
                                "print('locked', flush=True); time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None  # stdout=PIPE
        assert holder.stdout.readline().strip() == "locked"
        path = lab.write(SEED)
        proc = lab.netlab("apply", path, "--lock-timeout", "0.5", check=1)
        assert "LOCKED" in proc.stderr and f"pid {holder.pid}" in proc.stderr
        assert lab.snapshot() == {"<host>": {}}
        lab.netlab("diff", path, check=2)  # diff never waits for the lock
    finally:
        holder.kill()
        holder.wait()
    lab.netlab("apply", path, "--lock-timeout", "5", check=0)  # the kernel released the dead holder's lock


@pytest.mark.parametrize("mtu", [9000, 1450])
def test_a_bridges_mtu_holds_from_the_first_apply(lab, mtu):
    """The kernel re-derives a bridge's MTU from its ports as they join unless it was set by RTM_SETLINK:
    given in the create, 9000 (above the ports' 1500) or 1450 ended the first apply NOT_CONVERGED."""
    p = lab.p
    path = lab.write(SEED.replace("br0:  {kind: bridge,", f"br0:  {{kind: bridge, mtu: {mtu},"))
    lab.netlab("apply", path, check=0)
    n0 = lab.links(f"{p}n0")
    assert n0["br0"]["mtu"] == mtu and n0["vth0"]["mtu"] == n0["vth2"]["mtu"] == 1500
    lab.netlab("diff", path, check=0)
    assert lab.ping(f"{p}n1", "10.0.0.3")


def test_destroy_refuses_to_take_a_users_links_with_a_namespace_unless_forced(lab):
    """The kernel destroys every virtual link of a deleted namespace, and a veth whose other end is in
    it: a user's bridge inside a netlab namespace, and a user's root-namespace veth whose other end the
    user moved into one, stop destroy (CONFLICT, naming them, nothing changed); --force takes them."""
    p = lab.p
    path = lab.write(SEED)
    lab.netlab("apply", path, check=0)
    subprocess.run(["ip", "-n", f"{p}n1", "link", "add", "ubr", "type", "bridge"], check=True)
    lab.ip("link", "add", f"{p}uv0", "type", "veth", "peer", "name", "uv1", "netns", f"{p}n2")
    before = lab.snapshot()
    err = lab.netlab("destroy", path, check=1).stderr
    assert "CONFLICT" in err and f"namespace {p}n1 holds ubr (bridge)" in err, err
    assert f"namespace {p}n2 holds uv1 (veth to host/{p}uv0)" in err and "--force" in err, err
    assert lab.snapshot() == before
    err = lab.netlab("apply", lab.write(SEED.replace('  "@n2":\n    interfaces:\n      vth3: {addresses: '
                                                     '[10.0.0.3/24]}\n', "").replace(
        '      vth2: {kind: veth, peer: "@n2/vth3", master: br0}\n', ""), "shrunk.yaml"), check=1).stderr
    assert f"namespace {p}n2 holds uv1" in err and lab.snapshot() == before  # an apply that deletes it too
    out = lab.netlab("destroy", path, "--force", check=0).stdout
    assert f"-   namespace {p}n1: not the topology's: ubr (bridge)  # destroy" in out, out
    assert f"not the topology's: uv1 (veth to host/{p}uv0)" in out and f"and with it host/{p}uv0" in out, out
    assert not [ns for ns in netns_names() if ns.startswith(p)]
    assert f"{p}uv0" not in lab.links()  # gone with its other end, and waited for
