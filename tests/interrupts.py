"""What the crash and interrupt suites share: a 40-namespace topology (routed: forwarding, default routes,
blackholes, a root-namespace route), and moments spread over the span in which `netlab apply` or `netlab
destroy` writes."""

import json
import os
import random
import subprocess
import sys
import time
from typing import Any

from conftest import ROOT, Lab, netns_names
from test_kernel_reconcile import HOST_BRIDGE, SEED


def star(lab: Lab, n: int, routed: bool = False) -> str:
    """The seed topology plus a star of n namespaces on a root-namespace bridge (about 8n+40 steps).
    `routed`: each of them also forwards (two sysctls), has IPv4 and IPv6 default routes through the
    bridge's addresses and a blackhole route, and the root namespace has a route through the first of
    them (about 13n+40 steps)."""
    ports = "".join(f"      \"@v{i}\": {{kind: veth, peer: \"@s{i}/eth0\", master: \"@sbr\"}}\n" for i in range(n))
    bridge = '{kind: bridge, addresses: [10.9.0.254/24, "fd09::fe/64"]}' if routed else "{kind: bridge}"
    host = "\n".join(HOST_BRIDGE.split("\n")[3:]).replace(
        '      "@h2"', f'      "@sbr": {bridge}\n' + ports + '      "@h2"')
    if routed:
        host = host.replace('  "@c1":', "    routes:\n      - {to: 10.77.0.0/16, via: 10.9.0.1}\n" + '  "@c1":')
    text = SEED + host.rstrip("\n") + "\n"
    for i in range(n):
        if routed:
            text += (f"  \"@s{i}\":\n    forwarding: true\n    interfaces:\n"
                     f"      eth0: {{addresses: [10.9.0.{i + 1}/24, \"fd09::{i + 1:x}/64\"]}}\n"
                     f"    routes:\n      - {{to: default, via: 10.9.0.254}}\n"
                     f"      - {{to: default6, via: \"fd09::fe\"}}\n"
                     f"      - {{to: 10.78.{i}.0/24, type: blackhole}}\n")
        else:
            text += f"  \"@s{i}\":\n    interfaces:\n      eth0: {{addresses: [10.9.0.{i + 1}/24]}}\n"
    return lab.write(text)


def ours(lab: Lab) -> list[str]:
    """Namespaces and root-namespace links with the test's prefix, the user's canaries (`<p>u...`) left
    out, and netlab's routes in the root namespace."""
    mine = lambda name: name.startswith(lab.p) and not name.startswith(f"{lab.p}u")  # noqa: E731
    routes = [json.loads(r) for r in lab.routes()]
    return [n for n in netns_names() if mine(n)] + [n for n in lab.links() if mine(n)] + [
        f"route {r['dst']} ({r.get('dev')})" for r in routes if r.get("protocol") == "201"]


def _timed(lab: Lab, *args: str, check: int) -> float:
    start = time.perf_counter()
    lab.netlab(*args, check=check)
    return time.perf_counter() - start


def spread(lab: Lab, command: str, points: int, seed: int, routed: bool = True) -> tuple[str, list[tuple[bool, float]]]:
    """(topology file, `points` moments in a run of `netlab <command>`, apply or destroy). A moment is
    (after the first write?, seconds): a third of them fall in the span before the first write (start-up,
    reading, planning: a `diff` takes that long), measured from the start; the rest in the span of the
    writes and the final check, measured from the first write, which `start` watches for. (Offsets from
    the start alone missed the writes on a loaded machine: they take a tenth of the run.) With CI set the
    moments are the same on every run."""
    path = star(lab, 30, routed)
    reading = _timed(lab, "diff", path, check=2)
    full = _timed(lab, "apply", path, check=0)
    if command == "destroy":
        full = _timed(lab, "destroy", path, check=0)
    else:
        lab.netlab("destroy", path, check=0)
    span = max(full - reading, 0.05)
    rng = random.Random(seed if "CI" in os.environ else None)
    early = points // 3
    return path, ([(False, reading * (i + rng.random()) / early) for i in range(early)]
                  + [(True, span * (i + rng.random()) / (points - early)) for i in range(points - early)])


def start(lab: Lab, path: str, command: str, moment: tuple[bool, float], **popen: Any) -> subprocess.Popen[Any]:
    """Start `netlab <command> <path>` and return once `moment` (see spread) has come. The first write is
    seen as a change in the topology's entries in /run/netns (apply creates namespaces first, destroy
    deletes them first)."""
    def netns():
        return {n for n in (os.listdir("/run/netns") if os.path.isdir("/run/netns") else [])
                if n.startswith(lab.p) and not n.startswith(f"{lab.p}u")}

    before = netns()
    proc = subprocess.Popen([sys.executable, "-m", "netlab", command, path], cwd=ROOT, **popen)
    after_write, delay = moment
    deadline = time.monotonic() + 60
    while after_write and netns() == before and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.0005)
    time.sleep(delay)
    return proc
