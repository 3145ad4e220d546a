"""Canaries: objects a user made by hand next to a test's topology, which every apply, destroy, rollback
and crash recovery must leave byte-identical (same ifindex, MAC, MTU, flags, master, addresses).

- in the root namespace, a user's bridge `<p>ubr` (with an address) and a user's veth `<p>uv0`/`<p>uv1`
  whose one end is a port of that bridge. (The issue asks for a dummy interface; this machine's kernel has
  no dummy driver, so the root-namespace canary is a bridge, a kind netlab makes itself.)
- a user's namespace `<p>user` holding unmarked links named as the topologies' own links are (`br0`,
  `eth0`, `vth1`), wired and addressed;
- a user's veth `<p>up0`/`<p>up1` that a test may make a port of one of the topology's bridges
  (`join`): it follows that bridge (a destroy frees it), and a rollback must give it back.

All their names start with `<p>u`, which no test topology uses.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

from conftest import ip_json, netns_names

SETUP = [
    "link add {p}ubr type bridge",
    "addr add 198.51.100.1/24 dev {p}ubr",
    "link add {p}uv0 type veth peer name {p}uv1",
    "link set {p}uv0 master {p}ubr",
    "link add {p}up0 type veth peer name {p}up1",
    "addr add 203.0.113.1/24 dev {p}up1",
    "link set {p}ubr up", "link set {p}uv0 up", "link set {p}uv1 up",
    "netns add {p}user",
    "-n {p}user link add br0 type bridge",
    "-n {p}user link add eth0 type veth peer name vth1",
    "-n {p}user link set vth1 master br0",
    "-n {p}user addr add 192.0.2.9/24 dev br0",
    "-n {p}user addr add 2001:db8::9/64 dev eth0 nodad",
    "-n {p}user link set br0 up", "-n {p}user link set eth0 up", "-n {p}user link set vth1 up",
]


def _fingerprint(links: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {lk["ifname"]: (lk["ifindex"], lk.get("address"), lk["mtu"], tuple(sorted(lk["flags"])), lk.get("master"),
                           lk.get("linkinfo", {}).get("info_kind"),
                           tuple(sorted((a["local"], a["prefixlen"]) for a in lk.get("addr_info", []))))
            for lk in links}


class Canaries:
    def __init__(self, lab):
        self.p = lab.p
        for command in SETUP:
            lab.ip(*command.format(p=lab.p).split())
        self.before = self._settled()
        self.checks = 0

    def _settled(self, timeout: float = 10.0) -> dict[str, dict[str, tuple[Any, ...]]]:
        """Their state once the kernel has finished with them: the user's bridge gets its carrier when its
        port is forwarding, and then an IPv6 link-local address, a moment after they are made (on a loaded
        machine, after the first comparison: a signal suite once saw it as a change)."""
        deadline = time.monotonic() + timeout
        state = self.state()
        while True:
            time.sleep(0.2)
            again = self.state()
            carrier = "NO-CARRIER" not in again[f"{self.p}user"]["br0"][3]
            if (again == state and carrier) or time.monotonic() > deadline:
                return again
            state = again

    def join(self, bridge: str) -> None:
        """Make the user's `<p>up0` a port of `bridge` (a root-namespace bridge of the topology)."""
        subprocess.run(["ip", "link", "set", f"{self.p}up0", "master", bridge], check=True)
        self.before = self.state()

    def state(self) -> dict[str, dict[str, tuple[Any, ...]]]:
        host = [lk for lk in ip_json("-d", "addr", "show") if lk["ifname"].startswith(f"{self.p}u")]
        inside = ip_json("-n", f"{self.p}user", "-d", "addr", "show") if f"{self.p}user" in netns_names() else []
        return {"<host>": _fingerprint(host), f"{self.p}user": _fingerprint(inside)}

    def changes(self, port_freed: bool = False) -> list[str]:
        """What differs from when they were made (or last joined). With `port_freed`, `<p>up0` having left
        the topology's bridge (destroyed with it) is expected: its master and flags are not compared."""
        self.checks += 1
        now, was = self.state(), self.before
        if port_freed:
            now, was = ({ns: {n: (f[:3] + f[5:] if n == f"{self.p}up0" else f) for n, f in links.items()}
                         for ns, links in s.items()} for s in (now, was))
        return [f"{ns}/{name}: {was[ns].get(name)} -> {now[ns].get(name)}"
                for ns in was for name in set(was[ns]) | set(now[ns]) if was[ns].get(name) != now[ns].get(name)]
