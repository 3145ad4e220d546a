"""What the crash and interrupt suites share: a 40-namespace topology, a user's objects beside it that
must come through byte-identical, and moments spread over the span in which `netlab apply` writes."""

import os
import random
import subprocess
import time
from contextlib import contextmanager

from conftest import ip_json, netns_names
from test_kernel_reconcile import HOST_BRIDGE, SEED


def star(lab, n: int) -> str:
    """The seed topology plus a star of n namespaces on a root-namespace bridge (about 8n+40 steps)."""
    ports = "".join(f"      \"@v{i}\": {{kind: veth, peer: \"@s{i}/eth0\", master: \"@sbr\"}}\n" for i in range(n))
    host = "\n".join(HOST_BRIDGE.split("\n")[3:]).replace(
        '      "@h2"', '      "@sbr": {kind: bridge}\n' + ports + '      "@h2"')
    text = SEED + host.rstrip("\n") + "\n"
    text += "".join(f"  \"@s{i}\":\n    interfaces:\n      eth0: {{addresses: [10.9.0.{i + 1}/24]}}\n" for i in range(n))
    return lab.write(text)


def ours(lab) -> list[str]:
    """Namespaces and root-namespace links with the test's prefix, the user's objects left out."""
    names = [n for n in netns_names() if n.startswith(lab.p) and n != f"{lab.p}user"]
    links = [n for n in lab.links() if n.startswith(lab.p) and n != f"{lab.p}ubr"]
    return names + links


def _timed(lab, *args, check: int) -> float:
    start = time.perf_counter()
    lab.netlab(*args, check=check)
    return time.perf_counter() - start


@contextmanager
def spread_applies(lab, points: int, seed: int):
    """Yields (topology file, `points` offsets in seconds from the start of `netlab apply`, a function
    telling whether the user's namespace and bridge are as they were). The offsets cover the span from
    about when reading ends (a `diff` takes that long) to the end of a whole apply; with CI set they are
    the same on every run. The user's objects are removed afterwards."""
    path = star(lab, 30)
    subprocess.run(["ip", "netns", "add", f"{lab.p}user"], check=True)
    subprocess.run(["ip", "link", "add", f"{lab.p}ubr", "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", "192.0.2.1/24", "dev", f"{lab.p}ubr"], check=True)

    def user_objects():
        link = ip_json("-d", "addr", "show", f"{lab.p}ubr")[0]
        return (link["ifindex"], link["address"], [a["local"] for a in link["addr_info"]],
                f"{lab.p}user" in netns_names())

    before = user_objects()
    try:
        first_write = _timed(lab, "diff", path, check=2)
        full = _timed(lab, "apply", path, check=0)
        lab.netlab("destroy", path, check=0)
        rng = random.Random(seed if "CI" in os.environ else None)
        start = first_write * 0.9
        offsets = [start + (full - start) * (i + rng.random()) / points for i in range(points)]
        yield path, offsets, lambda: user_objects() == before
    finally:
        subprocess.run(["ip", "netns", "del", f"{lab.p}user"], check=False)
        subprocess.run(["ip", "link", "del", f"{lab.p}ubr"], check=False)
