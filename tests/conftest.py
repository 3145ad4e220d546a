"""Fixtures for tests against the real kernel.

Every kernel test works under a prefix of its own (`lab.p`, e.g. 't3f9a'), used in every namespace,
interface and topology name it creates, and its teardown removes whatever carries that prefix, even when
the test failed. Kernel tests need root: without it they are skipped on a developer's machine and fail in
CI (CI=true), where they must run.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
ROOT = Path(__file__).parent.parent


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
