"""Fixtures for tests against the real kernel.

Every kernel test works under a prefix of its own (`lab.p`, e.g. 't3f9a'), used in every namespace,
interface and topology name it creates, and its teardown removes whatever carries that prefix, even when
the test failed. Kernel tests need root: without it they are skipped on a developer's machine and fail in
CI (CI=true), where they must run.

Tests marked `stock_kernel` need kernel features this machine's kernel lacks (dummy, 8021q, ipvlan, bridge
VLAN filtering, sch_netem): see STOCK_KERNEL below, and docs/testing.md ("Two lanes") for where they run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).parent.parent

# The two lanes (docs/testing.md). The host lane is plain `pytest` on this machine. The guest lane is
# .ci/stock-kernel: one pytest process inside Debian's stock kernel under QEMU, which sets these two.
STOCK_KERNEL_LANE = os.environ.get("NETLAB_STOCK_KERNEL_LANE") == "1"
# lab.netlab() runs the CLI inside the pytest process (netlab.cli.main, output captured) rather than as
# a new process: in the guest, under emulation, a new Python process spends 20-25 s importing netlab.
IN_PROCESS = os.environ.get("NETLAB_IN_PROCESS") == "1"
# The test files the guest lane runs whole, beside every test marked stock_kernel: the core reconcile
# suite, so that netlab is known to work on the older LTS kernel too.
GUEST_SUITES = ("test_kernel_reconcile.py",)

# What a `stock_kernel` test may ask for (`@pytest.mark.stock_kernel("dummy", "8021q")`; no argument: all),
# each with the `ip`/`tc` commands that make one in a scratch namespace (p0/p1: a veth pair, there first).
STOCK_KERNEL = {
    "dummy": "ip link add pd0 type dummy",
    "8021q": "ip link add link p0 name p0.10 type vlan id 10",
    "ipvlan": "ip link add link p0 name piv0 type ipvlan mode l3",
    "bridge_vlan_filtering": "ip link add pbr0 type bridge vlan_filtering 1",
    "sch_netem": "tc qdisc add dev p0 root netem delay 1ms",
}
_probed: dict[str, str | None] = {}


def kernel_lacks(feature: str) -> str | None:
    """Why the running kernel cannot make `feature` (a key of STOCK_KERNEL), or None if it can: found by
    making one in a scratch network namespace (unshare -n), as the kernel answers (module autoloading
    included). Asked once per feature per session."""
    if feature not in _probed:
        script = f"ip link add p0 type veth peer name p1 && {STOCK_KERNEL[feature]}"
        proc = subprocess.run(["unshare", "-n", "sh", "-c", script], capture_output=True, text=True,
                              timeout=120, check=False)
        _probed[feature] = None if proc.returncode == 0 else \
            f"`{STOCK_KERNEL[feature]}` failed: {' '.join(proc.stderr.split()) or f'exit {proc.returncode}'}"
    return _probed[feature]


def _stock_features(item: pytest.Item) -> list[str]:
    marker = item.get_closest_marker("stock_kernel")
    if marker is None:
        return []
    unknown = [f for f in marker.args if f not in STOCK_KERNEL]
    if unknown:
        raise pytest.UsageError(f"{item.nodeid}: stock_kernel({', '.join(unknown)}): "
                                f"not among {', '.join(STOCK_KERNEL)} (tests/conftest.py)")
    return list(marker.args or STOCK_KERNEL)


_lane_note = pytest.StashKey[str]()  # the line the terminal summary adds: what the lane deselected


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Which tests each lane runs. The guest lane: the tests marked stock_kernel and the GUEST_SUITES.
    The host lane in CI: everything else (the stock_kernel tests are deselected: they run in the guest,
    and .ci/stock-kernel fails if any of them did not run or skipped). Outside CI, everything is kept:
    a stock_kernel test is skipped at setup, with the reason, where the kernel lacks what it needs."""
    for item in items:
        _stock_features(item)  # an unknown feature name is a usage error, in every lane
    if STOCK_KERNEL_LANE:
        keep = [i for i in items if i.get_closest_marker("stock_kernel") or i.path.name in GUEST_SUITES]
    elif os.environ.get("CI"):
        keep = [i for i in items if not i.get_closest_marker("stock_kernel")]
    else:
        return
    dropped = [i for i in items if i not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        config.stash[_lane_note] = (f"{len(dropped)} tests deselected: " + (
            "the guest lane runs the stock_kernel tests and the core reconcile suite only" if STOCK_KERNEL_LANE
            else "marked stock_kernel, CI runs them on Debian's stock kernel under QEMU (.ci/stock-kernel)"))


def pytest_report_header(config: pytest.Config) -> str:
    lane = "guest (stock kernel" + (", CLI in process)" if IN_PROCESS else ")") if STOCK_KERNEL_LANE else "host"
    return f"netlab lane: {lane}; kernel {os.uname().release}"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    note = config.stash.get(_lane_note, None)
    if note:
        terminalreporter.write_line(note)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A stock_kernel test on a kernel that lacks what it needs: skipped with the reason on a developer's
    machine; in the guest lane (or anywhere with CI set) a failure, before the test starts."""
    features = _stock_features(item)
    if not features:
        return
    _require_root()
    missing = [f"{f} ({why})" for f in features if (why := kernel_lacks(f))]
    if not missing:
        return
    text = f"this kernel ({os.uname().release}) lacks {'; '.join(missing)}"
    if STOCK_KERNEL_LANE or os.environ.get("CI"):
        pytest.fail(f"{text}: the stock-kernel lane must not skip", pytrace=False)
    pytest.skip(f"{text}; CI runs this test on Debian's stock kernel under QEMU (.ci/stock-kernel)")


def _require_root():
    if os.geteuid() == 0 and os.path.isdir("/proc/self/ns"):
        return
    if os.environ.get("CI"):
        pytest.fail("kernel tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and must run in CI", pytrace=False)
    pytest.skip("kernel tests need root")


def ip_json(*args: str) -> Any:
    out = subprocess.run(["ip", "-j", *args], check=True, capture_output=True, text=True).stdout
    return json.loads(out) if out.strip() else []


def netns_names() -> list[str]:
    return [n["name"] for n in ip_json("netns", "list")]


class Lab:
    """A test's own corner of the kernel: names under a prefix, topologies written to tmp files."""

    def __init__(self, tmp_path: Path):
        self.p = "t" + secrets.token_hex(2)
        self.tmp = tmp_path
        self.topologies: set[str] = set()
        self.made_by_hand: list[tuple[str, str]] = []  # ("netns" | "link", name), what the test made as a user
        self.sysctls: list[str] = []  # paths under /proc/sys ('*' for any part) that snapshot() compares too

    def ip(self, *args: str) -> None:
        """Run `ip` as a user would; namespaces and root-namespace links it adds are removed at teardown
        (anything else left under the prefix is reported as a leftover)."""
        subprocess.run(["ip", *args], check=True)
        if args[0] in ("netns", "link") and args[1] == "add":
            self.made_by_hand.append((args[0], args[2]))

    def write(self, text: str, filename: str = "topo.yaml") -> str:
        """Write a topology; '@' in the text stands for this test's prefix."""
        path = self.tmp / filename
        text = text.replace("@", self.p)
        path.write_text(text)
        name = re.search(r'^name:\s*"?([^"\n]+)', text, re.M)
        self.topologies.add(name.group(1) if name else self.p)
        return str(path)

    def netlab(self, *args: str, check: int | None = None) -> subprocess.CompletedProcess[str]:
        if IN_PROCESS:
            proc = _netlab_in_process(*args)
        else:
            proc = subprocess.run([sys.executable, "-m", "netlab", *args], capture_output=True, text=True,
                                  cwd=ROOT, timeout=120, check=False)
        if check is not None:
            assert proc.returncode == check, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def run_in(self, ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, check=check,
                              timeout=30)

    def ping(self, ns: str, address: str) -> bool:
        return self.run_in(ns, "ping", "-c", "1", "-W", "2", address, check=False).returncode == 0

    def links(self, ns: str | None = None) -> dict[str, dict[str, Any]]:
        """iproute2's own view: name -> {kind, master, up, addresses, mtu}."""
        pre = ["-n", ns] if ns else []
        result = {}
        addrs = {a["ifname"]: a for a in ip_json(*pre, "addr", "show")}
        for link in ip_json(*pre, "-d", "link", "show"):
            name = link["ifname"]
            result[name] = {
                "kind": link.get("linkinfo", {}).get("info_kind", "loopback" if name == "lo" else "device"),
                "master": link.get("master"),
                "up": "UP" in link["flags"],
                "mtu": link["mtu"],
                "alias": link.get("ifalias"),
                "addresses": sorted(f"{a['local']}/{a['prefixlen']}" for a in addrs.get(name, {}).get("addr_info", [])
                                    if a.get("scope") != "link" and a["local"] not in ("127.0.0.1", "::1")),
            }
        return result

    def peer(self, ns: str, name: str) -> tuple[str, str]:
        """The other end of a veth, as iproute2 reports it: (namespace, name), by ifindex and nsid."""
        link = ip_json("-n", ns, "link", "show", name)[0]
        if "link_netnsid" not in link:
            other = ns
        else:
            ids = {i["nsid"]: i.get("name") for i in ip_json("-n", ns, "netns", "list-id")}
            other = ids[link["link_netnsid"]]
        by_index = {lk["ifindex"]: lk for lk in ip_json("-n", other, "link", "show")}
        peer = by_index[link["link_index"]]
        assert peer["link_index"] == link["ifindex"]
        return other, peer["ifname"]

    def routes(self, ns: str | None = None) -> list[str]:
        """iproute2's view of a namespace's routes, every table but `local` (what the kernel derives from
        addresses, which links() has), IPv4 and IPv6, each as sorted JSON, sorted. Normalized away: what
        varies by itself (an IPv6 route's `expires`, cache entries), the `linkdown` flag (a bridge gets
        its carrier a moment after its port forwards) and the kernel's fe80::/64 routes (made when the
        link-local address comes, as late). In the root namespace (`ns` None), only the routes through a
        link of this test's prefix, and netlab's (proto 201) wherever they go."""
        pre = ["-n", ns] if ns else []
        out = []
        for family in ("-4", "-6"):
            for route in ip_json(*pre, "-d", family, "route", "show", "table", "all"):
                flags = route.get("flags", [])
                if route.get("table") == "local" or "cache" in route or "cache" in flags:
                    continue
                if route.get("dst") == "fe80::/64" and route.get("protocol") == "kernel":
                    continue
                route = {k: v for k, v in route.items() if k != "expires"}
                route["flags"] = sorted(f for f in flags if f != "linkdown")
                hops = route.get("nexthops", [])
                route["nexthops"] = [{**h, "flags": sorted(f for f in h.get("flags", []) if f != "linkdown")}
                                     for h in hops]
                devices = {route.get("dev")} | {h.get("dev") for h in hops}
                if ns is None and route.get("protocol") != "201" and \
                        not any(d and d.startswith(self.p) for d in devices):
                    continue
                out.append(json.dumps(route, sort_keys=True))
        return sorted(out)

    def sysctl_values(self, ns: str | None = None) -> dict[str, str]:
        """The values of the sysctls the test named (`self.sysctls`) in a namespace, by path; in the root
        namespace (`ns` None), of its `all`, `default` and `lo` entries and of links under the prefix."""
        if not self.sysctls:
            return {}
        # the paths unquoted, for the shell to expand their '*'; a pattern that matches nothing stays as is
        script = "cd /proc/sys && for f in " + " ".join(self.sysctls) + \
            '; do [ -f "$f" ] && printf "%s=%s\\n" "$f" "$(cat "$f")"; done; true'
        cmd = ["sh", "-c", script]
        if ns:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        text = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30).stdout
        values = dict(line.split("=", 1) for line in text.splitlines())
        if ns is None:
            values = {k: v for k, v in values.items() if len(parts := k.split("/")) < 5 or parts[2] not in (
                "conf", "neigh") or parts[3] in ("all", "default", "lo") or parts[3].startswith(self.p)}
        return {k: " ".join(v.split()) for k, v in values.items()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Everything under this test's prefix, as iproute2 sees it: namespaces with their links, and links
        in the root namespace; and beside the links, under "<routes>", their routes (see routes()), and
        under "<sysctls>" the sysctls the test named (`lab.sysctls`), each only when there are any."""
        snap: dict[str, dict[str, Any]] = {}
        for ns in [n for n in netns_names() if n.startswith(self.p)] + [None]:
            links = self.links(ns)
            entry: dict[str, Any] = links if ns else {n: lk for n, lk in links.items() if n.startswith(self.p)}
            for key, value in (("<routes>", self.routes(ns)), ("<sysctls>", self.sysctl_values(ns))):
                if value:
                    entry[key] = value
            snap[ns or "<host>"] = entry
        return snap

    def cleanup(self) -> list[str]:
        from netlab import api

        left = []
        for kind, name in reversed(self.made_by_hand):
            subprocess.run(["ip", kind, "del", name], check=False, capture_output=True)
        for topo in self.topologies:
            try:
                api.destroy(topo)
            except Exception as exc:  # noqa: BLE001 (keep cleaning; the test reports it)
                left.append(f"destroy {topo} failed: {exc}")
        for ns in netns_names():
            if ns.startswith(self.p):
                left.append(f"namespace {ns}")
                subprocess.run(["ip", "netns", "del", ns], check=False)
        for name in self.links():
            if name.startswith(self.p):
                left.append(f"link {name}")
                subprocess.run(["ip", "link", "del", name], check=False)
        return left


def _netlab_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """`netlab ARGS` run by the CLI's own entry point (netlab.cli.main: argument parsing, printing, exit
    codes) inside this process, with its output captured: what `python -m netlab ARGS` does, less the
    process. What main() changes for the whole process is put back: the SIGINT/SIGTERM handlers, the
    collector's thresholds and frozen objects, sys.argv, the CLI's drift flag."""
    import gc

    from netlab import cli

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    thresholds, argv, cwd = gc.get_threshold(), sys.argv, os.getcwd()
    out, err = StringIO(), StringIO()
    cli._drift = False
    sys.argv = ["netlab", *args]
    code: int = 0
    try:
        os.chdir(ROOT)
        with redirect_stdout(out), redirect_stderr(err):
            cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1 if exc.code else 0
    finally:
        sys.argv = argv
        os.chdir(cwd)
        gc.set_threshold(*thresholds)
        gc.unfreeze()
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return subprocess.CompletedProcess(["netlab", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def figures():
    """What the reliability suites counted (faults injected, kills survived, canary checks...): a dict
    they add to, written as JSON to $NETLAB_REPORT at the end of the session (docs/reliability.md)."""
    counted: dict[str, int] = {}
    yield counted
    if os.environ.get("NETLAB_REPORT"):
        with open(os.environ["NETLAB_REPORT"], "w") as f:
            json.dump(counted, f, indent=1, sort_keys=True)


def count(figures: dict[str, int], key: str, n: int = 1) -> None:
    figures[key] = figures.get(key, 0) + n


@pytest.fixture
def lab(tmp_path):
    _require_root()
    lab = Lab(tmp_path)
    yield lab
    left = lab.cleanup()
    if left:
        pytest.fail(f"the test left objects behind: {left}", pytrace=False)


@pytest.fixture
def canaries(lab, figures):
    """A user's objects beside the test's topology (tests/canaries.py); the test checks them where it
    matters, and at teardown they must be as they were (a port freed by a destroy of its bridge aside)."""
    from canaries import Canaries

    made = Canaries(lab)
    yield made
    changed = made.changes(port_freed=True)
    count(figures, "canary checks (each of 10 objects compared)", made.checks)
    if changed:
        pytest.fail(f"a user's objects were changed: {changed}", pytrace=False)
