"""The command line: exit codes, privileges, read-only commands. Uses the real kernel where it must."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, _require_root

SEED = (ROOT / "topologies" / "seed.yaml").read_text()


def netlab(*args, prefix=(), cwd=ROOT):
    return subprocess.run([*prefix, sys.executable, "-m", "netlab", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60, check=False)


@pytest.fixture
def public_file():
    """A topology file that an unprivileged user can read."""
    d = tempfile.mkdtemp()
    os.chmod(d, 0o755)
    path = Path(d) / "topo.yaml"
    path.write_text(SEED.replace("name: seed", "name: tcli").replace("ns", "tclins"))
    path.chmod(0o644)
    yield str(path)
    path.unlink()
    os.rmdir(d)


def test_validate_ok_and_json(public_file):
    proc = netlab("validate", public_file)
    assert proc.returncode == 0 and "valid topology 'tcli'" in proc.stdout
    proc = netlab("validate", "-o", "json", public_file)
    assert proc.returncode == 0 and '"valid": true' in proc.stdout


def test_invalid_file_exits_1_with_one_message_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnamespaces:\n  ns0:\n    interfaces:\n      br0: {kind: brige}\n")
    for command in ("validate", "diff", "apply", "destroy"):
        proc = netlab(command, str(bad))
        assert proc.returncode == 1, command
        assert f"{bad}:5 namespaces.ns0.interfaces.br0.kind: unknown kind 'brige'" in proc.stderr
        assert "Traceback" not in proc.stderr


# A namespace with a veth looped to itself (e0 10.0.0.1/24, e1): routes start at line 8, sysctls at line 9.
L3 = ("name: x\nnamespaces:\n  n0:\n    interfaces:\n      e0: {kind: veth, peer: n0/e1, addresses: [10.0.0.1/24]}\n"
      "      e1: {}\n    routes:\n      - ROUTE\n    sysctls: {SYSCTL}\n")


@pytest.mark.parametrize("route, sysctl, line, where, says", [
    ("{to: 10.1.0.0/33, dev: e0}", "", 8, "namespaces.n0.routes.0.to", "is not a prefix"),
    ("{to: 10.1.0.0/16, via: '2001:db8::1'}", "", 8, "namespaces.n0.routes.0.via", "IPv6 gateway for an IPv4 route"),
    ("{to: 10.1.0.0/16, type: blackholes}", "", 8, "namespaces.n0.routes.0.type", "blackhole"),
    ("{to: 10.1.0.0/16, via: 10.0.0.2, gw: 10.0.0.2}", "", 8, "namespaces.n0.routes.0.gw", "unknown field 'gw'"),
    ("{to: 10.1.0.0/16, dev: n1/eth0}", "", 8, "namespaces.n0.routes.0.dev", "another namespace"),
    ("{to: 10.1.0.0/16, via: 10.9.0.1}", "", 8, "namespaces.n0.routes.0.via", "not reachable"),
    ("{to: 10.1.0.0/16, dev: e0}", "kernel.pid_max: 100", 9, "namespaces.n0.sysctls.kernel.pid_max",
     "not a network sysctl"),
    ("{to: 10.1.0.0/16, dev: e0}", "net.ipv4.ip_forward: [1]", 9, "namespaces.n0.sysctls.net.ipv4.ip_forward",
     "a number or a string"),
], ids=["prefix", "gateway-family", "type", "unknown-field", "dev-elsewhere", "unreachable", "sysctl-key",
        "sysctl-value"])
def test_validate_bad_l3_input_exits_1_with_file_line_and_field(tmp_path, route, sysctl, line, where, says):
    bad = tmp_path / "bad.yaml"
    bad.write_text(L3.replace("ROUTE", route).replace("SYSCTL", sysctl))
    proc = netlab("validate", str(bad))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{bad}:{line} {where}: " in proc.stderr and says in proc.stderr, proc.stderr
    proc = netlab("validate", "-o", "json", str(bad))
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)["error"]["problems"]
    assert any(p.startswith(f"{bad}:{line} {where}: ") and says in p for p in problems), problems
    # the same file is good with that line fixed
    good = tmp_path / "good.yaml"
    good.write_text(L3.replace("ROUTE", "{to: 10.1.0.0/16, via: 10.0.0.2}").replace("SYSCTL", ""))
    assert netlab("validate", str(good)).returncode == 0


ROUTED = """name: @
namespaces:
  @r:
    forwarding: true
    interfaces:
      e0: {kind: veth, peer: @h/e0, addresses: [10.0.1.1/24, "2001:db8:1::1/64"]}
  @h:
    interfaces:
      e0: {addresses: [10.0.1.2/24, "2001:db8:1::2/64"]}
    routes:
      - {to: default, via: 10.0.1.1}
      - {to: default6, via: "2001:db8:1::1"}
      - {to: 198.51.100.0/24, type: blackhole, metric: 10}
"""


@pytest.mark.kernel
def test_plan_and_show_json_carry_routes_and_sysctls(lab):
    path = lab.write(ROUTED)
    r, h = lab.p + "r", lab.p + "h"
    plan = json.loads(lab.netlab("diff", "-o", "json", path, check=2).stdout)["plan"]
    assert plan["format_version"] == 4
    assert {(c["object"], c["namespace"], c.get("name"), c["action"]) for c in plan["changes"]
            if c["object"] == "route"} == {("route", h, "default", "create"), ("route", h, "::/0", "create"),
                                           ("route", h, "198.51.100.0/24 metric 10", "create")}
    adds = {s["value"]["to"]: s["value"] for s in plan["steps"] if s["op"] == "add_route"}
    assert adds == {
        "0.0.0.0/0": {"to": "0.0.0.0/0", "metric": 0, "via": "10.0.1.1", "dev": "e0", "owner": lab.p},
        "::/0": {"to": "::/0", "metric": 1024, "via": "2001:db8:1::1", "dev": "e0", "owner": lab.p},
        "198.51.100.0/24": {"to": "198.51.100.0/24", "metric": 10, "type": "blackhole", "owner": lab.p}}
    assert all(s["undo"][0]["op"] == "delete_route" for s in plan["steps"] if s["op"] == "add_route")
    assert {(s["namespace"], s["name"], s["value"]) for s in plan["steps"] if s["op"] == "set_sysctl"} == {
        (r, "net/ipv4/ip_forward", "1"), (r, "net/ipv6/conf/all/forwarding", "1")}

    lab.netlab("apply", path, check=0)
    lab.ip("-n", h, "route", "add", "192.0.2.0/24", "dev", "e0")  # a user's route: shown, not netlab's
    state = json.loads(lab.netlab("show", "-o", "json", path, check=0).stdout)["state"]
    assert state[h]["routes"] == [
        {"to": "0.0.0.0/0", "metric": 0, "via": "10.0.1.1", "dev": "e0", "owner": lab.p},
        {"to": "192.0.2.0/24", "metric": 0, "dev": "e0"},
        {"to": "198.51.100.0/24", "metric": 10, "type": "blackhole", "owner": lab.p},
        {"to": "::/0", "metric": 1024, "via": "2001:db8:1::1", "dev": "e0", "owner": lab.p}]
    declared = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv6.conf.e0.forwarding")
    assert {k: state[r]["sysctls"].get(k) for k in declared} == dict.fromkeys(declared, "1")
    text = lab.netlab("show", path, check=0).stdout
    assert f"  route default: via 10.0.1.1 dev e0  (owner: {lab.p})" in text
    assert "  route 192.0.2.0/24: dev e0  (not netlab's)" in text
    assert "  sysctl net.ipv4.ip_forward = 1" in text
    lab.netlab("diff", path, check=0)  # the user's route is no drift
    lab.netlab("destroy", path, check=0)


def test_usage_errors_exit_1_not_2():
    assert netlab("frobnicate").returncode == 1
    assert netlab("apply").returncode == 1
    assert netlab("diff", "--help").returncode == 0


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def without(cap: str) -> list[str]:
    return ["setpriv", f"--bounding-set=-{cap}", f"--inh-caps=-{cap}"]


@pytest.mark.kernel  # setpriv can drop privileges only from root; reads /run/netns and the host's links
@pytest.mark.parametrize("prefix,missing", [
    (NOBODY, "CAP_NET_ADMIN and CAP_SYS_ADMIN"),
    (without("net_admin"), "CAP_NET_ADMIN"),
    (without("sys_admin"), "CAP_SYS_ADMIN"),
], ids=["non-root", "root-without-net_admin", "root-without-sys_admin"])
def test_without_a_capability_validate_works_and_the_rest_name_it_and_write_nothing(public_file, prefix,
                                                                                    missing):
    _require_root()
    before = (sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
              sorted(os.listdir("/sys/class/net")))
    proc = netlab("validate", public_file, prefix=prefix, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert netlab("diff", "--help", prefix=prefix, cwd="/").returncode == 0
    for command in ("apply", "diff", "destroy", "show"):
        proc = netlab(command, public_file, prefix=prefix, cwd="/")
        assert proc.returncode == 1, proc.stderr
        assert f"error: PERMISSION: missing capability {missing}:" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert (sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
            sorted(os.listdir("/sys/class/net"))) == before
